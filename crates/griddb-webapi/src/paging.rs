//! Row statements asked a page at a time, so that no answer nears the
//! WebAPI's `maxResponseSize` (past it, `/tql` answers 400 "Too many result"
//! for the whole statement).
//!
//! This module owns the statement rewriting and the page sizing (pure, no
//! I/O); `cromflag-store`'s `GriddbStore::paged_rows` sends the pages.
//!
//! - Keyset paging, for `SELECT *` (and column lists, which the plan sends
//!   as `*` plus a projection) on a container with a row key of an orderable
//!   type, whose ORDER BY is empty or the key alone: every page is the
//!   statement's head (`SELECT * [FROM c]`), its condition and the key past
//!   the last row's key, ordered by the key, with a LIMIT:
//!   `SELECT * WHERE (<cond>) AND "ts" > TO_TIMESTAMP_MS(…) ORDER BY "ts" ASC LIMIT n`.
//!   The statement's OFFSET goes on the first page only. A projection
//!   without the key gets it, and the rows returned lose it again.
//! - Offset paging, for every other row statement: the statement's ORDER BY
//!   (the row key added as a tie-break, so that pages do not overlap), with
//!   `LIMIT n OFFSET m` moving on.
//!
//! The statement's LIMIT (or the WebAPI's default, `MAX_LIMIT`) bounds the
//! rows returned over all pages. A page aims at half of `maxResponseSize`
//! by the WebAPI's own estimate (`responseSizeByte`): the first from the
//! schema, the next from what the last answer weighed per row; a "Too many
//! result" halves the page and asks again. An answer with fewer rows than
//! asked, or whose `total` says nothing is left, is the last: a statement
//! that fits one page costs one request, as unpaged.

use crate::wire::{self, TqlResult, MAX_LIMIT};
use cromflag_model::{tql_name, tql_string, Column, ColumnType, ContainerInfo, StoreError, Value};
use cromflag_tql::types::resolve_column;
use cromflag_tql::{self as tql, Selection, Statement};

/// A row statement as pages.
#[derive(Clone, Debug, PartialEq)]
pub struct Pages {
    /// `SELECT * [FROM c]`, comments blanked.
    head: String,
    /// The WHERE condition, comments blanked.
    filter: Option<String>,
    order: Order,
    /// The most rows returned, over all pages.
    limit: u64,
    /// The statement's OFFSET.
    offset: u64,
    /// The projection sent with every page (exact names); the row key is
    /// added for keyset paging when the statement's projection lacks it.
    pub columns: Option<Vec<String>>,
    /// The columns each page answers (the projection's, or all), for the
    /// first page's size.
    answered: Vec<Column>,
}

#[derive(Clone, Debug, PartialEq)]
enum Order {
    /// Past the last row's key.
    Key { name: String, descending: bool },
    /// `ORDER BY` as written plus the tie-break (empty: none), pages by OFFSET.
    Offset { order_by: String },
}

/// Where the next page starts.
#[derive(Clone, Debug, PartialEq)]
pub enum Position {
    /// The statement's first row (after its OFFSET).
    Start,
    /// Keyset: past this key.
    After(Value),
    /// Offset paging: past this many rows (after the statement's OFFSET).
    Skipped(u64),
}

impl Pages {
    /// `statement` (parsed from `text`, a `*` or column-list selection) as
    /// pages over `info`; `projection` is the column list's stored columns.
    pub fn new(
        text: &str,
        statement: &Statement,
        info: &ContainerInfo,
        projection: Option<&[Column]>,
    ) -> Result<Pages, StoreError> {
        debug_assert!(matches!(
            statement.selection,
            Selection::All | Selection::Columns(_)
        ));
        // The pieces reused in every page, comments blanked (the statement's
        // spans still cut the same pieces from it).
        let text = tql::blank_comments(text)?;
        let span = &statement.selection_span;
        let head = format!(
            "{} * {}",
            text[..span.start].trim(),
            text[span.end..statement.clauses_start].trim()
        )
        .trim_end()
        .to_owned();
        let filter = statement
            .filter_span
            .clone()
            .map(|span| text[span].trim().to_owned());
        let sorted: Vec<usize> = statement
            .order_by
            .iter()
            .map(|key| resolve_column(info, &key.column))
            .collect::<Result<_, _>>()?;
        let key = (info.row_key && is_literal_type(info.columns[0].column_type))
            .then(|| info.columns[0].name.clone());
        let order = match (&key, sorted.as_slice()) {
            (Some(name), []) => Order::Key {
                name: name.clone(),
                descending: false,
            },
            (Some(name), [0]) => Order::Key {
                name: name.clone(),
                descending: statement.order_by[0].descending,
            },
            _ => {
                let mut keys: Vec<String> = statement
                    .order_by
                    .iter()
                    .map(|key| {
                        let direction = if key.descending { "DESC" } else { "ASC" };
                        format!("{} {direction}", key.column)
                    })
                    .collect();
                if info.row_key && !sorted.contains(&0) {
                    keys.push(format!("{} ASC", tql_name(&info.columns[0].name)));
                }
                Order::Offset {
                    order_by: keys.join(", "),
                }
            }
        };
        let mut columns: Option<Vec<String>> =
            projection.map(|p| p.iter().map(|c| c.name.clone()).collect());
        if let (Order::Key { name, .. }, Some(names)) = (&order, &mut columns) {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let answered = match &columns {
            Some(names) => names
                .iter()
                .filter_map(|n| info.columns.iter().find(|c| &c.name == n).cloned())
                .collect(),
            None => info.columns.clone(),
        };
        Ok(Pages {
            head,
            filter,
            order,
            limit: statement.limit.map_or(MAX_LIMIT, |l| l.count),
            offset: statement.limit.and_then(|l| l.offset).unwrap_or(0),
            columns,
            answered,
        })
    }

    /// The most rows the statement returns.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The text of the page of at most `rows` rows at `position`.
    pub fn statement(&self, position: &Position, rows: u64) -> String {
        let mut text = self.head.clone();
        let past_key = match (&self.order, position) {
            (Order::Key { name, descending }, Position::After(key)) => Some(format!(
                "{} {} {}",
                tql_name(name),
                if *descending { "<" } else { ">" },
                literal(key).expect("keyset paging is chosen for literal keys only")
            )),
            _ => None,
        };
        match (&self.filter, past_key) {
            (Some(filter), Some(past_key)) => {
                text += &format!(" WHERE ({filter}) AND {past_key}");
            }
            (Some(filter), None) => text += &format!(" WHERE {filter}"),
            (None, Some(past_key)) => text += &format!(" WHERE {past_key}"),
            (None, None) => {}
        }
        match &self.order {
            Order::Key { name, descending } => {
                let direction = if *descending { "DESC" } else { "ASC" };
                text += &format!(" ORDER BY {} {direction}", tql_name(name));
            }
            Order::Offset { order_by } if !order_by.is_empty() => {
                text += &format!(" ORDER BY {order_by}");
            }
            Order::Offset { .. } => {}
        }
        text += &format!(" LIMIT {rows}");
        let offset = self.skipped_before(position);
        if offset > 0 {
            text += &format!(" OFFSET {offset}");
        }
        text
    }

    /// Rows of the matching set before the page at `position`, as its OFFSET says.
    fn skipped_before(&self, position: &Position) -> u64 {
        match position {
            Position::Start => self.offset,
            Position::After(_) => 0,
            Position::Skipped(n) => self.offset + n,
        }
    }

    /// Where the page after `answer` (the page at `position`, `asked` rows
    /// asked) starts; `None` when it was the last: fewer rows than asked, or
    /// none left by the answer's `total` (the matching rows before LIMIT).
    pub fn next(
        &self,
        position: &Position,
        asked: u64,
        answer: &TqlResult,
    ) -> Result<Option<Position>, String> {
        let got = answer.results.len() as u64;
        if got < asked || got == 0 {
            return Ok(None);
        }
        if let Some(total) = answer.total.and_then(|t| u64::try_from(t).ok()) {
            if total <= self.skipped_before(position) + got {
                return Ok(None);
            }
        }
        match (&self.order, position) {
            (Order::Key { name, .. }, _) => {
                let at = answer
                    .columns
                    .iter()
                    .position(|c| &c.name == name)
                    .ok_or_else(|| format!("the WebAPI's page lacks the row key `{name}`"))?;
                let column = answer.columns[at].column()?;
                let last = answer.results.last().expect("got > 0");
                let json = last
                    .get(at)
                    .ok_or_else(|| "a row shorter than its columns".to_owned())?;
                let key = wire::read_value(json, column.column_type)?;
                literal(&key).ok_or_else(|| format!("row key {key:?} cannot be written in TQL"))?;
                Ok(Some(Position::After(key)))
            }
            (Order::Offset { .. }, Position::Skipped(n)) => Ok(Some(Position::Skipped(n + got))),
            (Order::Offset { .. }, _) => Ok(Some(Position::Skipped(got))),
        }
    }

    /// The first page's estimate of one answered row's size.
    pub fn estimated_row_bytes(&self) -> u64 {
        estimated_row_bytes(&self.answered)
    }
}

/// How many rows a page asks, learning each answer's size per row.
#[derive(Clone, Debug, PartialEq)]
pub struct PageSize {
    /// Bytes a page aims at: half of `maxResponseSize`.
    target: u64,
    /// Bytes per row: the schema's estimate, then the last answer's.
    per_row: u64,
    /// Rows a page may ask at most: halved below each "Too many result".
    cap: u64,
}

impl PageSize {
    pub fn new(max_response_bytes: u64, estimated_row_bytes: u64) -> PageSize {
        PageSize {
            target: (max_response_bytes / 2).max(1),
            per_row: estimated_row_bytes.max(1),
            cap: MAX_LIMIT,
        }
    }

    pub fn rows(&self) -> u64 {
        (self.target / self.per_row).clamp(1, self.cap)
    }

    /// An answer of `rows` rows weighed `bytes` (its `responseSizeByte`).
    pub fn observe(&mut self, rows: usize, bytes: Option<u64>) {
        if let (Some(bytes), Ok(rows @ 1..)) = (bytes, u64::try_from(rows)) {
            self.per_row = bytes.div_ceil(rows).max(1);
        }
    }

    /// A page of `asked` rows was "Too many result": ask half from now on.
    /// `false` when it was one row, which no page size can help.
    pub fn shrink(&mut self, asked: u64) -> bool {
        if asked <= 1 {
            return false;
        }
        self.cap = asked / 2;
        true
    }
}

/// Bytes a STRING value is guessed to weigh before any answer says.
const STRING_GUESS: u64 = 64;
/// Bytes a BLOB value (as base64) is guessed to weigh before any answer says.
const BLOB_GUESS: u64 = 4096;

/// One row of `columns` by the WebAPI's estimate (`wire::fixed_size`),
/// strings and blobs guessed.
pub fn estimated_row_bytes(columns: &[Column]) -> u64 {
    columns
        .iter()
        .map(|c| match wire::fixed_size(c.column_type) {
            Some(size) => size as u64,
            None if c.column_type == ColumnType::Blob => BLOB_GUESS,
            None => STRING_GUESS,
        })
        .sum::<u64>()
        .max(1)
}

/// A key as a TQL literal; `None` for types a row key cannot have here.
fn literal(key: &Value) -> Option<String> {
    Some(match key {
        Value::Timestamp(ms) => format!("TO_TIMESTAMP_MS({ms})"),
        Value::Byte(v) => v.to_string(),
        Value::Short(v) => v.to_string(),
        Value::Integer(v) => v.to_string(),
        Value::Long(v) => v.to_string(),
        Value::String(s) => tql_string(s),
        _ => return None,
    })
}

/// Whether [`literal`] writes values of `ty`: the row key types.
fn is_literal_type(ty: ColumnType) -> bool {
    matches!(
        ty,
        ColumnType::Timestamp
            | ColumnType::Byte
            | ColumnType::Short
            | ColumnType::Integer
            | ColumnType::Long
            | ColumnType::String
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cromflag_model::ContainerKind;
    use serde_json::json;

    fn sensor() -> ContainerInfo {
        ContainerInfo {
            name: "Sensor".into(),
            kind: ContainerKind::TimeSeries,
            columns: vec![
                Column::new("ts", ColumnType::Timestamp),
                Column::new("Temp", ColumnType::Double),
                Column::new("note", ColumnType::String),
            ],
            row_key: true,
        }
    }

    fn pages(text: &str, info: &ContainerInfo) -> Pages {
        let statement = tql::parse(text).unwrap();
        let projection: Option<Vec<Column>> = match &statement.selection {
            Selection::Columns(names) => Some(
                names
                    .iter()
                    .map(|n| info.columns[resolve_column(info, n).unwrap()].clone())
                    .collect(),
            ),
            _ => None,
        };
        Pages::new(text, &statement, info, projection.as_deref()).unwrap()
    }

    fn answer(
        columns: &[(&str, &str)],
        rows: Vec<Vec<serde_json::Value>>,
        total: i64,
    ) -> TqlResult {
        serde_json::from_value(json!({
            "columns": columns.iter().map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>(),
            "results": rows,
            "offset": 0, "limit": 2, "total": total, "responseSizeByte": 16
        }))
        .unwrap()
    }

    #[test]
    fn keyset_pages_continue_past_the_last_key() {
        let p = pages(
            "select * from Sensor where temp > 1 or note = 'a''b' limit 10 offset 3",
            &sensor(),
        );
        assert_eq!(
            p.statement(&Position::Start, 2),
            "select * from Sensor WHERE temp > 1 or note = 'a''b' ORDER BY \"ts\" ASC LIMIT 2 OFFSET 3"
        );
        let first = answer(
            &[("ts", "TIMESTAMP"), ("Temp", "DOUBLE"), ("note", "STRING")],
            vec![
                vec![json!("2024-05-01T12:00:00.000Z"), json!(2.0), json!(null)],
                vec![
                    json!("2024-05-01T21:00:00.001+09:00"),
                    json!(3.0),
                    json!(null),
                ],
            ],
            20,
        );
        let next = p.next(&Position::Start, 2, &first).unwrap().unwrap();
        assert_eq!(next, Position::After(Value::Timestamp(1_714_564_800_001)));
        // The OFFSET was the first page's only.
        assert_eq!(
            p.statement(&next, 2),
            "select * from Sensor WHERE (temp > 1 or note = 'a''b') AND \"ts\" > TO_TIMESTAMP_MS(1714564800001) ORDER BY \"ts\" ASC LIMIT 2"
        );
        assert_eq!(p.limit(), 10);
        // No condition: the key's alone; DESC pages downwards.
        let p = pages("SELECT * ORDER BY ts DESC", &sensor());
        assert_eq!(
            p.statement(&Position::After(Value::Timestamp(5)), 100),
            "SELECT * WHERE \"ts\" < TO_TIMESTAMP_MS(5) ORDER BY \"ts\" DESC LIMIT 100"
        );
        assert_eq!(p.limit(), MAX_LIMIT);
    }

    #[test]
    fn a_projection_without_the_key_gets_it_for_paging() {
        let p = pages("SELECT temp WHERE temp > 1", &sensor());
        assert_eq!(p.columns, Some(vec!["Temp".into(), "ts".into()]));
        assert_eq!(
            p.statement(&Position::Start, 7),
            "SELECT * WHERE temp > 1 ORDER BY \"ts\" ASC LIMIT 7"
        );
        let p = pages("SELECT ts, temp", &sensor());
        assert_eq!(p.columns, Some(vec!["ts".into(), "Temp".into()]));
    }

    #[test]
    fn key_literals_are_written_by_type() {
        assert_eq!(literal(&Value::Long(-5)).unwrap(), "-5");
        assert_eq!(literal(&Value::Integer(7)).unwrap(), "7");
        assert_eq!(literal(&Value::String("it's".into())).unwrap(), "'it''s'");
        assert_eq!(
            literal(&Value::Timestamp(1_714_564_800_123)).unwrap(),
            "TO_TIMESTAMP_MS(1714564800123)"
        );
        assert_eq!(literal(&Value::Double(1.0)), None);
        let devices = ContainerInfo {
            name: "devices".into(),
            kind: ContainerKind::Collection,
            columns: vec![
                Column::new("id", ColumnType::String),
                Column::new("fw", ColumnType::String),
            ],
            row_key: true,
        };
        let p = pages("select *", &devices);
        assert_eq!(
            p.statement(&Position::After(Value::String("o'k".into())), 3),
            "select * WHERE \"id\" > 'o''k' ORDER BY \"id\" ASC LIMIT 3"
        );
    }

    #[test]
    fn other_orders_and_keyless_containers_page_by_offset() {
        let p = pages(
            "SELECT * WHERE ts > TO_TIMESTAMP_MS(0) ORDER BY temp DESC, \"note\" LIMIT 5 OFFSET 2",
            &sensor(),
        );
        assert_eq!(
            p.statement(&Position::Start, 2),
            "SELECT * WHERE ts > TO_TIMESTAMP_MS(0) ORDER BY temp DESC, \"note\" ASC, \"ts\" ASC LIMIT 2 OFFSET 2"
        );
        let page = answer(&[("ts", "TIMESTAMP")], vec![vec![json!(null)]; 2], 9);
        let next = p.next(&Position::Start, 2, &page).unwrap().unwrap();
        assert_eq!(next, Position::Skipped(2));
        assert_eq!(
            p.statement(&next, 2),
            "SELECT * WHERE ts > TO_TIMESTAMP_MS(0) ORDER BY temp DESC, \"note\" ASC, \"ts\" ASC LIMIT 2 OFFSET 4"
        );
        assert_eq!(p.next(&next, 2, &page).unwrap(), Some(Position::Skipped(4)));
        let mut log = sensor();
        log.row_key = false;
        log.kind = ContainerKind::Collection;
        let p = pages("select * where temp > 1", &log);
        assert_eq!(
            p.statement(&Position::Skipped(10), 5),
            "select * WHERE temp > 1 LIMIT 5 OFFSET 10"
        );
    }

    #[test]
    fn the_last_page_is_known_without_asking_again() {
        let p = pages("select * limit 10", &sensor());
        let row = || vec![json!("2024-05-01T12:00:00.000Z"), json!(1.0), json!("x")];
        let columns = [("ts", "TIMESTAMP"), ("Temp", "DOUBLE"), ("note", "STRING")];
        // Fewer rows than asked.
        let short = answer(&columns, vec![row()], 1);
        assert_eq!(p.next(&Position::Start, 2, &short).unwrap(), None);
        // A full page whose total says it was all.
        let all = answer(&columns, vec![row(), row()], 2);
        assert_eq!(p.next(&Position::Start, 2, &all).unwrap(), None);
        // A full page with more to come (or no total to tell).
        let more = answer(&columns, vec![row(), row()], 3);
        assert!(p.next(&Position::Start, 2, &more).unwrap().is_some());
        let unknown = answer(&columns, vec![row(), row()], -1);
        assert!(p.next(&Position::Start, 2, &unknown).unwrap().is_some());
    }

    #[test]
    fn comments_do_not_swallow_the_clauses_added() {
        let text = "select * -- every column\n from Sensor /* here */ where temp > 1 -- warm\n order by ts";
        let p = pages(text, &sensor());
        assert_eq!(
            p.statement(&Position::After(Value::Timestamp(1)), 4),
            "select * from Sensor WHERE (temp > 1) AND \"ts\" > TO_TIMESTAMP_MS(1) ORDER BY \"ts\" ASC LIMIT 4"
        );
    }

    #[test]
    fn pages_aim_at_half_the_response_limit_and_learn() {
        let p = pages("select *", &sensor());
        // 8 + 8 + a guessed string.
        assert_eq!(p.estimated_row_bytes(), 16 + STRING_GUESS);
        let mut size = PageSize::new(20 << 20, p.estimated_row_bytes());
        assert_eq!(size.rows(), (10 << 20) / 80);
        // The answer says 40 bytes a row: twice as many next time.
        size.observe(1000, Some(40_000));
        assert_eq!(size.rows(), (10 << 20) / 40);
        // Never past the WebAPI's LIMIT cap.
        size.observe(10, Some(1));
        assert_eq!(size.rows(), MAX_LIMIT);
        // "Too many result": half of what was asked, and no more from then on.
        assert!(size.shrink(1000));
        assert_eq!(size.rows(), 500);
        size.observe(10, Some(10));
        assert_eq!(size.rows(), 500);
        assert!(size.shrink(2));
        assert_eq!(size.rows(), 1);
        // One row too many: no page size helps.
        assert!(!size.shrink(1));
    }
}
