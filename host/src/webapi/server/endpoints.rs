//! Each endpoint's own work, once the pipeline (`super`) has routed a
//! request, mapped its body into a `Call` and checked the caller: `run`
//! hands the call to its endpoint, which answers as the WebAPI's Java
//! services do (the sections cited are the WebAPI reference's).

use super::sql::{check_statements, is_alter, is_ddl, parse_add_column};
use super::tql::{prepare_tql, rows_queries};
use super::{
    bad_request, container_missing, fail, json_reply, sql_refused, store_failure, too_many_result,
    Call, CreateBody, Failure, MultiPut, Reply, Server,
};
use crate::http_io;
use crate::store::tql::Selection;
use crate::store::{
    Column, ColumnType, ContainerInfo, ContainerKind, ContainerListing, ContainerPage, QueryResult,
    Row, Value,
};
use crate::webapi::wire::{
    self, AnswerZone, ColumnDto, ContainerDto, ContainerList, ContainerRows, PutCount, RowsQuery,
    RowsResult, SqlOutcome, SqlStatement, TqlQuery, TqlResult, UpdatedRows, AGGREGATION_RESULT,
    MAX_LIMIT, MAX_QUERIES,
};
use cromflag_logic::query::percent_decode;
use http::StatusCode;
use serde_json::Value as Json;
use std::collections::HashMap;

/// The WebAPI's `maxTotalResponseSize` default (2048 MB): the most the row
/// answers of one `/tql` request may weigh together.
const MAX_TOTAL_RESPONSE_BYTES: u64 = 2048 << 20;

impl Server {
    /// A mapped, authenticated call, run by its endpoint.
    pub(super) async fn run(&self, call: Call) -> Result<Reply, Failure> {
        match call {
            Call::CheckConnection => self.check_connection().await,
            Call::List(query) => self.list(query.as_deref()).await,
            Call::Create(body) => self.create(body).await,
            Call::Drop(names) => self.drop_containers(names).await,
            Call::Info(c) => self.info(&c).await,
            Call::PutRows(c, rows) => self.put_rows(&c, rows).await,
            Call::GetRows(c, query) => self.get_rows(&c, query).await,
            Call::DeleteRows(c, keys) => self.delete_rows(&c, keys).await,
            Call::MultiPut(entries) => self.multi_put(entries).await,
            Call::MultiGet => Err(bad_request(
                "Getting rows of several containers is not supported by this server",
            )),
            Call::Blob => Err(bad_request(
                "BLOB zip transfer is not supported by this server",
            )),
            Call::Tql(queries) => self.tql(queries).await,
            Call::SqlDdl(statements) => self.sql_ddl(statements).await,
            Call::SqlUpdate(statements) => self.sql_update(statements).await,
            Call::Sql => Err(sql_refused()),
        }
    }

    /// §2.1: the store answers (a listing of no names), so the connection is good.
    async fn check_connection(&self) -> Result<Reply, Failure> {
        let nothing = ContainerListing {
            kind: None,
            descending: false,
            offset: 0,
            limit: 0,
        };
        self.backend
            .list_container_page(&nothing)
            .await
            .map_err(store_failure)?;
        Ok(http_io::empty(StatusCode::OK))
    }

    /// §2.2.
    async fn list(&self, query: Option<&str>) -> Result<Reply, Failure> {
        let params = query_params(query);
        let param = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let number = |name: &str| -> Result<Option<u64>, Failure> {
            match param(name) {
                None | Some("") => Ok(None),
                Some(text) => text
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| bad_request(format!("'{name}' is invalid"))),
            }
        };
        let limit = number("limit")?.ok_or_else(|| bad_request("'limit' is required"))?;
        let offset = number("offset")?.unwrap_or(0);
        let kind = match param("type") {
            None | Some("") => None,
            Some("COLLECTION") => Some(ContainerKind::Collection),
            Some("TIME_SERIES") => Some(ContainerKind::TimeSeries),
            Some(_) => return Err(bad_request("'type' is invalid")),
        };
        let descending = match param("sort") {
            None | Some("") | Some("ASC") => false,
            Some("DESC") => true,
            Some(_) => return Err(bad_request("'sort' is invalid")),
        };
        let limit = limit.min(MAX_LIMIT);
        // One page from the backend: the type filter, the order (Java's
        // String.compareTo, code-unit order, is byte order for container
        // names), the offset and the limit are all its work.
        let listing = ContainerListing {
            kind,
            descending,
            offset,
            limit,
        };
        let ContainerPage { names, total } = self
            .backend
            .list_container_page(&listing)
            .await
            .map_err(store_failure)?;
        Ok(json_reply(
            StatusCode::OK,
            &ContainerList {
                names,
                total,
                offset,
                limit,
            },
        ))
    }

    /// §2.4: Validation.validateGWContainerInfo's checks in its order, then
    /// the columns this store can keep.
    async fn create(&self, body: CreateBody) -> Result<Reply, Failure> {
        let CreateBody {
            container_name,
            container_type,
            rowkey,
            columns,
        } = body;
        let container_name = container_name
            .filter(|name| !name.trim().is_empty())
            .ok_or_else(|| bad_request("Container name is invalid"))?;
        let container_type = container_type
            .filter(|kind| !kind.is_empty())
            .ok_or_else(|| bad_request("'container_type' is required"))?;
        let columns = columns
            .filter(|columns| !columns.is_empty())
            .ok_or_else(|| bad_request("'columns' is required"))?;
        if columns
            .iter()
            .any(|c| c.column_type.as_deref().is_none_or(str::is_empty))
        {
            return Err(bad_request("Empty column type"));
        }
        let dto = ContainerDto {
            container_name,
            container_type,
            rowkey: rowkey.unwrap_or(false),
            columns,
        };
        let info = dto.info().map_err(bad_request)?;
        if self
            .backend
            .get_container(&info.name)
            .await
            .map_err(store_failure)?
            .is_some()
        {
            return Err(fail(StatusCode::CONFLICT, 0, "Container already existed"));
        }
        self.backend
            .put_container(info)
            .await
            .map_err(store_failure)?;
        Ok(http_io::empty(StatusCode::CREATED))
    }

    /// §2.5: 204 whatever happened to each name.
    async fn drop_containers(&self, names: Vec<String>) -> Result<Reply, Failure> {
        for name in names {
            if let Err(e) = self.backend.drop_container(&name).await {
                tracing::warn!(container = %name, error = %e, "WebAPI: dropping a container failed");
            }
        }
        Ok(http_io::empty(StatusCode::NO_CONTENT))
    }

    /// §2.3.
    async fn info(&self, name: &str) -> Result<Reply, Failure> {
        let info = self.container(name).await?;
        let mut dto = ContainerDto::describe(&info);
        dto.columns = self.described(dto.columns);
        Ok(json_reply(StatusCode::OK, &dto))
    }

    /// Converts `rows` for `info` as WebAPIServiceImpl.setRowValue does, row
    /// by row: the values, then the running size (`size`, shared by every
    /// container of one request) against `maxRequestSize`.
    fn convert<'a>(
        &self,
        info: &ContainerInfo,
        rows: impl IntoIterator<Item = &'a [Json]>,
        size: &mut usize,
    ) -> Result<Vec<Row>, Failure> {
        let mut converted = Vec::new();
        for values in rows {
            let row = wire::decode_row(values, &info.columns).map_err(bad_request)?;
            *size = size.saturating_add(wire::estimated_size(&row));
            if *size > self.settings.max_request_bytes {
                return Err(bad_request("Too many rows data"));
            }
            converted.push(row);
        }
        Ok(converted)
    }

    /// §2.6: all rows converted and sized, then one `put_rows`.
    async fn put_rows(&self, name: &str, rows: Vec<Json>) -> Result<Reply, Failure> {
        if rows.is_empty() {
            return Err(bad_request("Rows data is empty"));
        }
        let info = self.container(name).await?;
        let rows = rows
            .iter()
            .map(|row| {
                row.as_array()
                    .map(Vec::as_slice)
                    .ok_or_else(|| bad_request("Row data is invalid"))
            })
            .collect::<Result<Vec<&[Json]>, Failure>>()?;
        let rows = self.convert(&info, rows, &mut 0)?;
        let count = rows.len() as u64;
        self.backend
            .put_rows(&info.name, rows)
            .await
            .map_err(store_failure)?;
        Ok(json_reply(StatusCode::OK, &PutCount { count }))
    }

    /// §2.8: each key converted as the key column's values are (a key that
    /// does not convert, or names no row, is passed over, as GridDB does),
    /// then one `delete_rows`; 204 either way.
    async fn delete_rows(&self, name: &str, keys: Vec<Json>) -> Result<Reply, Failure> {
        let info = self.container(name).await?;
        if !info.row_key {
            return Err(bad_request("Row key does not exist"));
        }
        let key_type = info.columns[0].column_type;
        let keys: Vec<_> = keys
            .iter()
            .filter_map(|key| wire::decode_value(key, key_type).ok())
            .filter(|key| key.column_type() == Some(key_type))
            .collect();
        if !keys.is_empty() {
            self.backend
                .delete_rows(&info.name, keys)
                .await
                .map_err(store_failure)?;
        }
        Ok(http_io::empty(StatusCode::NO_CONTENT))
    }

    /// §2.7.
    async fn get_rows(&self, name: &str, request: RowsQuery) -> Result<Reply, Failure> {
        let limit = request
            .limit
            .filter(|&l| l >= 1)
            .ok_or_else(|| bad_request("'limit' is invalid"))?;
        let offset = request.offset.unwrap_or(0);
        if offset < 0 {
            return Err(bad_request("'offset' is invalid"));
        }
        let info = self.container(name).await?;
        let limit = (limit as u64).min(MAX_LIMIT);
        let offset = offset as u64;
        let (rows_tql, count_tql) = rows_queries(
            request.condition.as_deref(),
            request.sort.as_deref(),
            limit,
            offset,
        );
        let result = self.query(&info.name, &rows_tql).await?;
        response_size(&result.rows, self.settings.max_response_bytes)?;
        let total = self.count(&info.name, &count_tql).await?;
        let columns = result
            .columns
            .iter()
            .map(|c| ColumnDto::describe(c, false))
            .collect();
        Ok(json_reply(
            StatusCode::OK,
            &RowsResult {
                columns: self.described(columns),
                rows: self.answer_rows(&result.rows),
                offset,
                limit,
                total: total.max(0) as u64,
            },
        ))
    }

    /// §2.11 PUT: the entries checked, looked up and converted in request
    /// order (any failure: nothing written; the size counted across them),
    /// then written as `webapi_multi_put` says. The answer lists every entry
    /// with its own row count.
    async fn multi_put(&self, entries: Vec<ContainerRows>) -> Result<Reply, Failure> {
        let mut answer = Vec::with_capacity(entries.len());
        let mut converted = Vec::with_capacity(entries.len());
        let mut size = 0usize;
        for entry in entries {
            if entry.container_name.trim().is_empty() {
                return Err(bad_request("The container is invalid"));
            }
            if entry.rows.is_empty() {
                return Err(bad_request("Row data is invalid"));
            }
            let info = self.container(&entry.container_name).await?;
            let rows = self.convert(&info, entry.rows.iter().map(Vec::as_slice), &mut size)?;
            answer.push(UpdatedRows {
                container_name: entry.container_name.clone(),
                updated_rows: rows.len() as u64,
            });
            converted.push((entry.container_name, info.name, rows));
        }
        match self.settings.multi_put {
            MultiPut::Griddb => {
                for (name, rows) in griddb_writes(converted) {
                    self.backend
                        .put_rows(&name, rows)
                        .await
                        .map_err(store_failure)?;
                }
            }
            MultiPut::Atomic if converted.is_empty() => {}
            MultiPut::Atomic => {
                let batches = converted
                    .into_iter()
                    .map(|(_, stored, rows)| (stored, rows))
                    .collect();
                self.backend
                    .multi_put(batches)
                    .await
                    .map_err(store_failure)?;
            }
        }
        Ok(json_reply(StatusCode::OK, &answer))
    }

    /// §2.9: the list and every statement checked (Validation.validateGWTQLInput),
    /// then the statements run in order, the first failure failing the request;
    /// the row answers together stay within `maxTotalResponseSize`.
    async fn tql(&self, queries: Vec<TqlQuery>) -> Result<Reply, Failure> {
        if queries.is_empty() {
            return Err(bad_request("List of TQL is empty"));
        }
        if queries.len() > MAX_QUERIES {
            return Err(bad_request("Exceed maximum of TQLs that can be executed"));
        }
        for query in &queries {
            if query.name.trim().is_empty() {
                return Err(bad_request("Container invalid"));
            }
            if query.stmt.trim().is_empty() {
                return Err(bad_request("Statement invalid"));
            }
            if query.stmt.contains('\0') {
                return Err(bad_request("Invalid character(s) found"));
            }
        }
        let mut answers = Vec::with_capacity(queries.len());
        let mut total = 0u64;
        for query in &queries {
            let answer = self.tql_one(query).await?;
            total = total.saturating_add(answer.response_size_byte.unwrap_or(0));
            answers.push(answer);
        }
        if total > MAX_TOTAL_RESPONSE_BYTES {
            return Err(too_many_result());
        }
        Ok(json_reply(StatusCode::OK, &answers))
    }

    async fn tql_one(&self, query: &TqlQuery) -> Result<TqlResult, Failure> {
        let info = self.container(&query.name).await?;
        let projection = query.columns.as_deref().unwrap_or_default();
        for name in projection {
            if !info.columns.iter().any(|c| &c.name == name) {
                return Err(bad_request(format!("Column '{name}' not existed")));
            }
        }
        let prepared = prepare_tql(&query.stmt)?;
        let mut result = self.query(&info.name, &prepared.text).await?;
        result
            .rows
            .truncate(usize::try_from(prepared.limit).unwrap_or(usize::MAX));
        let total = match (&prepared.statement.selection, &prepared.count) {
            (_, Some(count)) => self.count(&info.name, count).await?,
            (Selection::Aggregates(_), None) => 1,
            _ => -1,
        };
        // Rows sized as the WebAPI's getSelectedColumnsByTQL / rowSetToTqlResult
        // do: the projected values, "Too many result" past maxResponseSize.
        let rows_of =
            |columns: &[Column], rows: &[Row], total: i64| -> Result<TqlResult, Failure> {
                let size = response_size(rows, self.settings.max_response_bytes)?;
                let columns = columns
                    .iter()
                    .map(|c| ColumnDto::describe(c, false))
                    .collect();
                Ok(TqlResult {
                    columns: self.described(columns),
                    results: self.answer_rows(rows),
                    offset: Some(prepared.offset),
                    limit: Some(prepared.limit),
                    total: Some(total),
                    response_size_byte: Some(size),
                })
            };
        match &prepared.statement.selection {
            Selection::Aggregates(aggregates) if aggregates.len() == 1 => {
                let value = result.rows.first().and_then(|row| row.first());
                let column = result.columns.first();
                match (value, column) {
                    (Some(value), Some(column)) if !value.is_null() => {
                        let mut answer =
                            aggregation(value, column.column_type, self.settings.time_zone);
                        answer.columns = self.described(answer.columns);
                        Ok(answer)
                    }
                    // No value (AVG over no rows): the row shape, empty.
                    _ => rows_of(&info.columns, &[], total),
                }
            }
            // Our extension: several aggregates, one row; no projection.
            Selection::Aggregates(_) => rows_of(&result.columns, &result.rows, total),
            _ => {
                let (columns, rows) = project(result.columns, result.rows, projection)?;
                rows_of(&columns, &rows, total)
            }
        }
    }

    /// `sql/ddl` (5.7+): the list checked as ExecuteSqlServiceImpl does
    /// (every statement of the DDL kind, else "Statement is invalid"); of DDL,
    /// `ALTER TABLE <t> ADD [COLUMN] <c> <type>` only (any other: 400). Each
    /// statement answers `{status, message, stmt}`, status 0 for a failure.
    async fn sql_ddl(&self, statements: Vec<SqlStatement>) -> Result<Reply, Failure> {
        check_statements(&statements)?;
        if !statements.iter().all(|s| is_ddl(&s.stmt)) {
            return Err(bad_request("Statement is invalid"));
        }
        self.alter_all(statements, None).await
    }

    /// `sql/update` (5.5+): JDBC's `executeUpdate` of any statement in the
    /// WebAPI; here the ALTER that `sql/ddl` serves (any other statement:
    /// 400). Each statement answers `{updatedRows, status, message, stmt}`:
    /// `updatedRows` 0 (what executeUpdate counts for DDL, and the Java
    /// default when it fails), status 1, or status 0 with the message.
    async fn sql_update(&self, statements: Vec<SqlStatement>) -> Result<Reply, Failure> {
        check_statements(&statements)?;
        self.alter_all(statements, Some(0)).await
    }

    /// Runs statements that must all be `ALTER TABLE … ADD [COLUMN] …` (else
    /// 400 before any runs), one outcome each, `updated_rows` as given.
    async fn alter_all(
        &self,
        statements: Vec<SqlStatement>,
        updated_rows: Option<i64>,
    ) -> Result<Reply, Failure> {
        if !statements.iter().all(|s| is_alter(&s.stmt)) {
            return Err(sql_refused());
        }
        let mut answers = Vec::with_capacity(statements.len());
        for statement in statements {
            let outcome = self.alter(&statement.stmt).await;
            answers.push(SqlOutcome {
                updated_rows,
                status: i64::from(outcome.is_ok()),
                message: outcome.err(),
                stmt: statement.stmt,
            });
        }
        Ok(json_reply(StatusCode::OK, &answers))
    }

    /// Runs one `ALTER TABLE … ADD [COLUMN] …`; the failure's message otherwise.
    async fn alter(&self, stmt: &str) -> Result<(), String> {
        let (table, column) = parse_add_column(stmt)?;
        self.add_column(&table, column).await
    }

    async fn add_column(&self, table: &str, column: Column) -> Result<(), String> {
        let mut info = self
            .backend
            .get_container(table)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("Table '{table}' not found"))?;
        if info.column_index(&column.name).is_some() {
            return Err(format!("Column '{}' already exists", column.name));
        }
        info.columns.push(column);
        self.backend
            .put_container(info)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn container(&self, name: &str) -> Result<ContainerInfo, Failure> {
        self.backend
            .get_container(name)
            .await
            .map_err(store_failure)?
            .ok_or_else(container_missing)
    }

    async fn query(&self, container: &str, tql: &str) -> Result<QueryResult, Failure> {
        self.backend
            .query(container, tql)
            .await
            .map_err(store_failure)
    }

    /// `select count(*) …` as a number.
    async fn count(&self, container: &str, tql: &str) -> Result<i64, Failure> {
        let result = self.query(container, tql).await?;
        match result.rows.first().and_then(|row| row.first()) {
            Some(Value::Long(n)) => Ok(*n),
            Some(other) => Ok(other.as_f64().unwrap_or(0.0) as i64),
            None => Ok(0),
        }
    }

    /// Column descriptions as the emulated release writes them: no
    /// `timePrecision` before 5.5 (GWColumnInfo and GWTQLColumnInfo had none).
    fn described(&self, mut columns: Vec<ColumnDto>) -> Vec<ColumnDto> {
        if !self.settings.release.has_time_precision() {
            for column in &mut columns {
                column.time_precision = None;
            }
        }
        columns
    }

    /// Rows as answers write them: timestamps in the `timeZone` setting.
    fn answer_rows(&self, rows: &[Row]) -> Vec<Vec<Json>> {
        rows.iter()
            .map(|row| wire::encode_answer_row(row, self.settings.time_zone))
            .collect()
    }
}

/// The query string's parameters, decoded. Unlike the stack's own API (strict
/// `query::parse`), unknown parameters are ignored, as Spring does.
fn query_params(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

/// The estimated size of the rows of one answer, refused with "Too many
/// result" as soon as the running sum exceeds `max`, as the WebAPI's
/// `rowSetToTqlResult` adds and checks row by row.
fn response_size<'a>(rows: impl IntoIterator<Item = &'a Row>, max: usize) -> Result<u64, Failure> {
    let mut size = 0usize;
    for row in rows {
        size = size.saturating_add(wire::estimated_size(row));
        if size > max {
            return Err(too_many_result());
        }
    }
    Ok(size as u64)
}

/// What `griddb` mode writes for a multi-put: one entry per container name
/// as given (`HashMap` in BulkMultipleContainerServiceImpl, so a repeated
/// name keeps its last entry's rows), in a random order. Each item is the
/// name given, the stored name, and the rows.
fn griddb_writes(entries: Vec<(String, String, Vec<Row>)>) -> Vec<(String, Vec<Row>)> {
    let mut by_name: HashMap<String, (String, Vec<Row>)> = HashMap::new();
    for (given, stored, rows) in entries {
        by_name.insert(given, (stored, rows));
    }
    let mut writes: Vec<(String, Vec<Row>)> = by_name.into_values().collect();
    fastrand::shuffle(&mut writes);
    writes
}

/// One aggregate's answer (§2.9): `aggregationResult`, DOUBLE (COUNT 6 → 6.0),
/// or TIMESTAMP for MIN/MAX over a timestamp (written in `zone`).
fn aggregation(value: &Value, column_type: ColumnType, zone: AnswerZone) -> TqlResult {
    let (type_name, json) = match (column_type, value.as_f64()) {
        (ColumnType::Timestamp, _) | (_, None) => {
            (column_type.name(), wire::encode_answer(value, zone))
        }
        (_, Some(v)) => (
            ColumnType::Double.name(),
            wire::encode_answer(&Value::Double(v), zone),
        ),
    };
    TqlResult {
        columns: vec![ColumnDto::typed(AGGREGATION_RESULT, type_name, false)],
        results: vec![vec![json]],
        offset: None,
        limit: None,
        total: None,
        response_size_byte: None,
    }
}

/// The `columns` projection of `/tql`: the named columns, in the order given,
/// matched exactly; none named → all of them.
fn project(
    columns: Vec<Column>,
    rows: Vec<Row>,
    names: &[String],
) -> Result<(Vec<Column>, Vec<Row>), Failure> {
    if names.is_empty() {
        return Ok((columns, rows));
    }
    let picks = names
        .iter()
        .map(|name| {
            columns
                .iter()
                .position(|c| &c.name == name)
                .ok_or_else(|| bad_request(format!("Column '{name}' not existed")))
        })
        .collect::<Result<Vec<usize>, Failure>>()?;
    let projected = picks.iter().map(|&i| columns[i].clone()).collect();
    let rows = rows
        .into_iter()
        .map(|row| picks.iter().map(|&i| row[i].clone()).collect())
        .collect();
    Ok((projected, rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            query_params(Some("limit=10&type=TIME_SERIES&x&sort=%41SC&a+b=c+d")),
            [
                ("limit".to_owned(), "10".to_owned()),
                ("type".to_owned(), "TIME_SERIES".to_owned()),
                ("x".to_owned(), String::new()),
                ("sort".to_owned(), "ASC".to_owned()),
                ("a b".to_owned(), "c d".to_owned()),
            ]
        );
        assert!(query_params(None).is_empty());
    }

    #[test]
    fn answers_are_sized_row_by_row() {
        // 8 (TIMESTAMP) + 8 (DOUBLE) + 4 ("abcd") = 20 a row; null counts 0.
        let row = vec![
            Value::Timestamp(0),
            Value::Double(1.0),
            Value::String("abcd".into()),
            Value::Null,
        ];
        let rows = vec![row.clone(), row.clone(), row];
        assert_eq!(response_size(&rows[..2], 40).unwrap(), 40);
        assert_eq!(response_size(&rows, 60).unwrap(), 60);
        let refused = response_size(&rows, 59).unwrap_err();
        assert_eq!(
            (
                refused.status,
                refused.body.error_code,
                refused.body.error_message.as_str()
            ),
            (StatusCode::BAD_REQUEST, 0, "Too many result")
        );
        assert_eq!(response_size(&[], 0).unwrap(), 0);
    }

    #[test]
    fn aggregates_answer_a_double_or_a_timestamp() {
        let json = |r: &TqlResult| serde_json::to_string(r).unwrap();
        assert_eq!(
            json(&aggregation(
                &Value::Long(6),
                ColumnType::Long,
                AnswerZone::Utc
            )),
            r#"{"columns":[{"name":"aggregationResult","type":"DOUBLE"}],"results":[[6.0]]}"#
        );
        assert_eq!(
            json(&aggregation(
                &Value::Timestamp(0),
                ColumnType::Timestamp,
                AnswerZone::Utc
            )),
            r#"{"columns":[{"name":"aggregationResult","type":"TIMESTAMP","timePrecision":"MILLISECOND"}],"results":[["1970-01-01T00:00:00.000Z"]]}"#
        );
        let tokyo = AnswerZone::parse("+09:00").unwrap();
        assert_eq!(
            aggregation(&Value::Timestamp(0), ColumnType::Timestamp, tokyo).results,
            [[json!("1970-01-01T09:00:00.000+09:00")]]
        );
    }

    #[test]
    fn griddb_multi_puts_keep_the_last_entry_of_a_name() {
        let row = |v: i64| vec![Value::Long(v)];
        let writes = griddb_writes(vec![
            ("a".into(), "a".into(), vec![row(1)]),
            ("b".into(), "b".into(), vec![row(2)]),
            ("a".into(), "a".into(), vec![row(3), row(4)]),
            // Another spelling of a stored name is another entry, as in Java's map.
            ("A".into(), "a".into(), vec![row(5)]),
        ]);
        let mut writes: Vec<(String, Vec<Row>)> = writes;
        writes.sort_by_key(|(_, rows)| match rows[0][0] {
            Value::Long(v) => v,
            _ => 0,
        });
        assert_eq!(
            writes,
            [
                ("b".to_owned(), vec![row(2)]),
                ("a".to_owned(), vec![row(3), row(4)]),
                ("a".to_owned(), vec![row(5)]),
            ]
        );
    }
}
