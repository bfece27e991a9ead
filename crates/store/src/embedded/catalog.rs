//! The catalog: which containers exist, their schemas and their SQLite tables.
//!
//! It is persisted in the `_cromflag_containers` table and held in memory, so
//! `get-container` and `list-containers` never touch SQLite. Only the writer
//! thread changes it, inside its transaction (see `writer`).

use super::codec::sql_type;
use crate::{
    added_columns, check_column_name, Column, ColumnType, ContainerInfo, ContainerKind, StoreError,
};
use cromflag_model::is_valid_container_name;
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::Arc;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS _cromflag_containers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    kind TEXT NOT NULL,
    row_key INTEGER NOT NULL,
    columns TEXT NOT NULL
)";

/// One container and the table that holds it.
#[derive(Debug)]
pub struct Entry {
    pub id: i64,
    pub info: ContainerInfo,
}

impl Entry {
    /// The quoted table name; built from the numeric id only, never from user text.
    pub fn table(&self) -> String {
        format!("\"t_{}\"", self.id)
    }
}

/// Container names are case-insensitive (as in GridDB), so entries are keyed by
/// the lower-cased name; each keeps the case it was created with.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    entries: HashMap<String, Arc<Entry>>,
}

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl Catalog {
    /// Creates the catalog table if needed and loads every entry.
    pub fn load(conn: &Connection) -> Result<Catalog, StoreError> {
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        let mut stmt = conn
            .prepare("SELECT id, name, kind, row_key, columns FROM _cromflag_containers")
            .map_err(db_err)?;
        let mut rows = stmt.query([]).map_err(db_err)?;
        let mut catalog = Catalog::default();
        while let Some(row) = rows.next().map_err(db_err)? {
            let (id, name, kind, row_key, columns): (i64, String, String, bool, String) = (
                row.get(0).map_err(db_err)?,
                row.get(1).map_err(db_err)?,
                row.get(2).map_err(db_err)?,
                row.get(3).map_err(db_err)?,
                row.get(4).map_err(db_err)?,
            );
            let corrupt =
                |what: &str| StoreError::Backend(format!("catalog entry `{name}`: bad {what}"));
            let kind = match kind.as_str() {
                "COLLECTION" => ContainerKind::Collection,
                "TIME_SERIES" => ContainerKind::TimeSeries,
                _ => return Err(corrupt("kind")),
            };
            let columns: Vec<(String, String)> =
                serde_json::from_str(&columns).map_err(|_| corrupt("columns"))?;
            let columns = columns
                .into_iter()
                .map(|(n, t)| Some(Column::new(n, ColumnType::from_name(&t)?)))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| corrupt("column type"))?;
            let info = ContainerInfo {
                name,
                kind,
                columns,
                row_key,
            };
            catalog.insert(Entry { id, info });
        }
        Ok(catalog)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Entry>> {
        self.entries.get(&name.to_ascii_lowercase())
    }

    /// Names in plain string order, as GridDB's WebAPI lists them.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries.values().map(|e| e.info.name.clone()).collect();
        names.sort();
        names
    }

    fn insert(&mut self, entry: Entry) {
        self.entries
            .insert(entry.info.name.to_ascii_lowercase(), Arc::new(entry));
    }

    /// `put-container` inside the caller's transaction: creates the table, or
    /// checks the schema and adds the missing columns. The in-memory catalog
    /// changes only after every statement succeeded.
    pub fn put(
        &mut self,
        conn: &Connection,
        info: ContainerInfo,
    ) -> Result<ContainerInfo, StoreError> {
        let Some(existing) = self.get(&info.name).cloned() else {
            return self.create(conn, info);
        };
        let stored = &existing.info;
        let added = added_columns(stored, &info)?;
        if added.is_empty() {
            return Ok(stored.clone());
        }
        let mut columns = stored.columns.clone();
        columns.extend(added);
        let table = existing.table();
        for (index, column) in columns.iter().enumerate().skip(stored.columns.len()) {
            let ddl = format!(
                "ALTER TABLE {table} ADD COLUMN c{index} {}",
                sql_type(column.column_type)
            );
            conn.execute(&ddl, []).map_err(db_err)?;
        }
        let info = ContainerInfo {
            columns,
            ..stored.clone()
        };
        conn.execute(
            "UPDATE _cromflag_containers SET columns = ?1 WHERE id = ?2",
            (columns_json(&info.columns), existing.id),
        )
        .map_err(db_err)?;
        self.insert(Entry {
            id: existing.id,
            info: info.clone(),
        });
        Ok(info)
    }

    /// Drops the container's table and entry; says whether it existed.
    pub fn drop(&mut self, conn: &Connection, name: &str) -> Result<bool, StoreError> {
        let Some(existing) = self.get(name).cloned() else {
            return Ok(false);
        };
        conn.execute(&format!("DROP TABLE {}", existing.table()), [])
            .map_err(db_err)?;
        conn.execute(
            "DELETE FROM _cromflag_containers WHERE id = ?1",
            [existing.id],
        )
        .map_err(db_err)?;
        self.entries.remove(&name.to_ascii_lowercase());
        Ok(true)
    }

    fn create(
        &mut self,
        conn: &Connection,
        info: ContainerInfo,
    ) -> Result<ContainerInfo, StoreError> {
        validate_new(&info)?;
        conn.execute(
            "INSERT INTO _cromflag_containers (name, kind, row_key, columns) VALUES (?1, ?2, ?3, ?4)",
            (&info.name, info.kind.name(), info.row_key, columns_json(&info.columns)),
        )
        .map_err(db_err)?;
        let entry = Entry {
            id: conn.last_insert_rowid(),
            info,
        };
        let columns: Vec<String> = entry
            .info
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| match (i, entry.info.row_key) {
                // A TIMESTAMP or integer key becomes SQLite's rowid: key order is scan order.
                (0, true) => format!("c0 {} PRIMARY KEY NOT NULL", sql_type(c.column_type)),
                _ => format!("c{i} {}", sql_type(c.column_type)),
            })
            .collect();
        conn.execute(
            &format!("CREATE TABLE {} ({})", entry.table(), columns.join(", ")),
            [],
        )
        .map_err(db_err)?;
        let info = entry.info.clone();
        self.insert(entry);
        Ok(info)
    }
}

fn columns_json(columns: &[Column]) -> String {
    let pairs: Vec<(&str, &str)> = columns
        .iter()
        .map(|c| (c.name.as_str(), c.column_type.name()))
        .collect();
    serde_json::to_string(&pairs).expect("strings always serialize")
}

fn validate_new(info: &ContainerInfo) -> Result<(), StoreError> {
    if !is_valid_container_name(&info.name) {
        return Err(StoreError::Invalid(format!(
            "invalid container name `{}`: use 1 to 256 ASCII letters, digits or `_`, not starting with a digit",
            info.name
        )));
    }
    let Some(first) = info.columns.first() else {
        return Err(StoreError::Invalid(format!(
            "container `{}` has no columns",
            info.name
        )));
    };
    for (i, column) in info.columns.iter().enumerate() {
        check_column_name(&column.name, &info.columns[..i])?;
    }
    match info.kind {
        ContainerKind::TimeSeries
            if !info.row_key || first.column_type != ColumnType::Timestamp =>
        {
            Err(StoreError::Invalid(format!(
                "time series `{}` needs a TIMESTAMP row key as its first column",
                info.name
            )))
        }
        ContainerKind::Collection
            if info.row_key
                && !matches!(
                    first.column_type,
                    ColumnType::String
                        | ColumnType::Integer
                        | ColumnType::Long
                        | ColumnType::Timestamp
                ) =>
        {
            Err(StoreError::Invalid(format!(
                "a row key must be STRING, INTEGER, LONG or TIMESTAMP, not {}",
                first.column_type
            )))
        }
        _ => Ok(()),
    }
}
