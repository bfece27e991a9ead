//! The containers: the layout's catalog table (`cromflag_tql::layout`, the
//! embedded store's), read and changed with plain statements, and rows
//! written where the layout puts them.
//!
//! Nothing is cached: several instances (Spin runs one per request) share
//! the database, and one indexed read per call is cheaper than a stale
//! schema. Every change runs inside the caller's transaction.

use crate::db::{cell, value_to_sql, Db};
use crate::fermyon::spin::sqlite::Value as Sql;
use cromflag_model::{
    added_columns, check_rows, ColumnType, ContainerInfo, Row, StoreError, Value,
};
use cromflag_tql::exec::value_from_cell;
use cromflag_tql::layout::Entry;
use cromflag_tql::layout::{self, Storage, CATALOG_DDL, LAYOUT_VERSION, SERIES_DDL, SERIES_TABLE};

/// Creates the layout's tables in a new database. A database of an older
/// layout (a table per time series) came from an old embedded store: it is
/// refused, since moving it is the embedded store's (`cromflag up` on it
/// once), not something to do half-way inside a request.
pub fn setup(db: &Db) -> Result<(), StoreError> {
    let version = db.execute("PRAGMA user_version", &[])?;
    if let Some(Sql::Integer(v)) = version.first().and_then(|row| row.first()) {
        if *v >= LAYOUT_VERSION {
            return Ok(());
        }
    }
    db.transaction(|db| {
        // Spin runs one statement per call; the DDL texts hold several.
        for statement in CATALOG_DDL.split(';').chain(SERIES_DDL.split(';')) {
            if !statement.trim().is_empty() {
                db.execute(statement, &[])?;
            }
        }
        let old = db.execute(
            "SELECT COUNT(*) FROM _cromflag_containers c \
             JOIN sqlite_schema s ON s.type = 'table' AND s.name = 't_' || c.id \
             WHERE c.kind = 'TIME_SERIES'",
            &[],
        )?;
        if !matches!(
            old.first().and_then(|row| row.first()),
            Some(Sql::Integer(0))
        ) {
            return Err(StoreError::Backend(
                "spin-sqlite-store: this database has an older cromflag layout; \
                 open it once with `cromflag up` to move it"
                    .to_owned(),
            ));
        }
        db.execute(&format!("PRAGMA user_version = {LAYOUT_VERSION}"), &[])?;
        Ok(())
    })
}

fn corrupt(name: &str, what: &str) -> StoreError {
    StoreError::Backend(format!("catalog entry `{name}`: bad {what}"))
}

/// The container named `name` (in any case), if it exists.
pub fn read(db: &Db, name: &str) -> Result<Option<Entry>, StoreError> {
    let rows = db.execute(
        "SELECT id, name, kind, row_key, columns FROM _cromflag_containers WHERE name = ?1",
        &[Sql::Text(name.to_owned())],
    )?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    let [Sql::Integer(id), Sql::Text(name), Sql::Text(kind), Sql::Integer(row_key), Sql::Text(columns)] =
        &row[..]
    else {
        return Err(corrupt(name, "row"));
    };
    let (kind, columns) =
        layout::read_catalog_entry(kind, columns).map_err(|what| corrupt(name, what))?;
    let info = ContainerInfo {
        name: name.clone(),
        kind,
        columns,
        row_key: *row_key != 0,
    };
    Ok(Some(Entry::new(*id, info)))
}

/// Every container's name in plain string (byte) order, as the embedded
/// store lists them.
pub fn list(db: &Db) -> Result<Vec<String>, StoreError> {
    db.execute(
        "SELECT name FROM _cromflag_containers ORDER BY name COLLATE BINARY ASC",
        &[],
    )?
    .iter()
    .map(|row| match row.first().map(cell) {
        Some(name) => match value_from_cell(name, ColumnType::String)? {
            Value::String(name) => Ok(name),
            _ => Err(corrupt("?", "name")),
        },
        None => Err(corrupt("?", "name")),
    })
    .collect()
}

/// `put-container`: creates the container, or checks the schema and adds
/// the missing columns (as nullable columns at the end).
pub fn put(db: &Db, info: ContainerInfo) -> Result<ContainerInfo, StoreError> {
    let Some(existing) = read(db, &info.name)? else {
        return create(db, info);
    };
    let stored = existing.info;
    let added = added_columns(&stored, &info)?;
    if added.is_empty() {
        return Ok(stored);
    }
    let mut columns = stored.columns.clone();
    columns.extend(added);
    match existing.storage {
        // The shared table may already be wide enough: other devices' cells
        // there are theirs, and this device's rows have NULL.
        Storage::Series { .. } => widen_series(db, columns.len())?,
        Storage::Table { id } => {
            for (index, column) in columns.iter().enumerate().skip(stored.columns.len()) {
                db.execute(
                    &layout::add_collection_column_ddl(id, index, column.column_type),
                    &[],
                )?;
            }
        }
    }
    db.execute(
        "UPDATE _cromflag_containers SET columns = ?1 WHERE id = ?2",
        &[
            Sql::Text(layout::columns_json(&columns)),
            Sql::Integer(existing.id),
        ],
    )?;
    Ok(ContainerInfo { columns, ..stored })
}

/// A new container: a catalog row, and for a time series no DDL unless it
/// is wider than every one before it.
fn create(db: &Db, info: ContainerInfo) -> Result<ContainerInfo, StoreError> {
    cromflag_model::check_new_container(&info)?;
    let inserted = db.execute(
        "INSERT INTO _cromflag_containers (name, kind, row_key, columns) \
         VALUES (?1, ?2, ?3, ?4) RETURNING id",
        &[
            Sql::Text(info.name.clone()),
            Sql::Text(info.kind.name().to_owned()),
            Sql::Integer(i64::from(info.row_key)),
            Sql::Text(layout::columns_json(&info.columns)),
        ],
    )?;
    let Some(Sql::Integer(id)) = inserted.first().and_then(|row| row.first()) else {
        return Err(StoreError::Backend(
            "SQLite gave no id for a new container".to_owned(),
        ));
    };
    let entry = Entry::new(*id, info);
    match entry.storage {
        Storage::Series { .. } => widen_series(db, entry.info.columns.len())?,
        Storage::Table { id } => {
            db.execute(&layout::collection_ddl(id, &entry.info), &[])?;
        }
    }
    Ok(entry.info)
}

/// Adds columns to the shared series table until it holds `width` of them.
fn widen_series(db: &Db, width: usize) -> Result<(), StoreError> {
    let counted = db.execute(
        &format!("SELECT COUNT(*) FROM pragma_table_info('{SERIES_TABLE}')"),
        &[],
    )?;
    let Some(Sql::Integer(columns)) = counted.first().and_then(|row| row.first()) else {
        return Err(StoreError::Backend(format!(
            "cannot count {SERIES_TABLE}'s columns"
        )));
    };
    // Less the `container` column.
    let have = usize::try_from(columns - 1).unwrap_or(0);
    for index in have..width {
        db.execute(&layout::add_series_column_ddl(index), &[])?;
    }
    Ok(())
}

/// Checks every row against the schema, then writes them where the layout
/// keeps the container's rows; the number written.
pub fn put_rows(db: &Db, container: &str, rows: &[Row]) -> Result<u64, StoreError> {
    let entry = read(db, container)?
        .ok_or_else(|| StoreError::NotFound(format!("container `{container}` does not exist")))?;
    check_rows(&entry.info, rows)?;
    let width = entry.info.columns.len();
    let sql = entry.storage.insert_sql(width, entry.info.row_key);
    // A shared table's rows start with their container's id.
    let id = entry.storage.shared_by().map(Sql::Integer);
    for row in rows {
        let cells = (0..width).map(|i| row.get(i).map_or(Sql::Null, value_to_sql));
        let params: Vec<Sql> = id.clone().into_iter().chain(cells).collect();
        db.execute(&sql, &params)?;
    }
    Ok(rows.len() as u64)
}
