//! The SQL layout of a key-container store on SQLite: which tables hold the
//! catalog and the rows, their DDL, and the statements that write rows.
//!
//! Plain text and no SQLite, so that every SQLite store shares it: the
//! embedded store and a store adapter that is itself a component (Spin's
//! SQLite). [`sql`](crate::sql) translates queries for this layout.
//!
//! - The catalog, `_cromflag_containers`: one row per container (its name,
//!   kind, row key and columns as JSON), keyed by a numeric id.
//! - Time series, which a fleet has one of per device, share one table,
//!   [`SERIES_TABLE`]: `(container, c0, c1, …)`, keyed by `(container, c0)`
//!   (the container's id and its TIMESTAMP key) WITHOUT ROWID, so a device's
//!   rows sit together in key order. Creating a device is a catalog insert,
//!   not DDL, and the schema does not grow with the fleet. Container column
//!   `i` is `c{i}`; the columns past `c0` are untyped (the values' own
//!   storage classes, as the store binds them), so devices of any schemas
//!   share them, and the table is as wide as the widest device: a device
//!   with more columns adds them with `ALTER TABLE … ADD COLUMN`, and the
//!   cells past a device's own columns stay NULL and are never read.
//! - Collections (the `devices` list, `_rejected`, reports: a few per
//!   installation) keep a table each, `t_{id}`, typed; a row-keyed one keyed
//!   by `c0`, and read in `rowid` order.
//!
//! Every identifier here is built from numbers, never from user text.

use cromflag_model::{Column, ColumnType, ContainerInfo, ContainerKind};

/// The catalog table.
pub const CATALOG_DDL: &str = "CREATE TABLE IF NOT EXISTS _cromflag_containers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    kind TEXT NOT NULL,
    row_key INTEGER NOT NULL,
    columns TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS _cromflag_containers_by_name
    ON _cromflag_containers (name COLLATE BINARY)";

/// The table every time series' rows live in.
pub const SERIES_TABLE: &str = "_cromflag_series";

/// [`SERIES_TABLE`] with its key and no other column yet.
pub const SERIES_DDL: &str = "CREATE TABLE IF NOT EXISTS _cromflag_series (
    container INTEGER NOT NULL,
    c0 INTEGER NOT NULL,
    PRIMARY KEY (container, c0)
) WITHOUT ROWID";

/// The version `PRAGMA user_version` holds once a database has this layout
/// (older databases, 0, kept a table per time series).
pub const LAYOUT_VERSION: i64 = 2;

/// One container as the catalog holds it: its catalog id, its schema, and
/// where its rows are (which the id and kind decide).
#[derive(Debug)]
pub struct Entry {
    pub id: i64,
    pub info: ContainerInfo,
    pub storage: Storage,
}

impl Entry {
    pub fn new(id: i64, info: ContainerInfo) -> Entry {
        Entry {
            storage: Storage::of(id, info.kind),
            id,
            info,
        }
    }
}

/// Where one container's rows are, and so what a query reads them from.
#[derive(Clone, Debug, PartialEq)]
pub enum Storage {
    /// A time series: its rows in [`SERIES_TABLE`], under its id.
    Series { container: i64 },
    /// A collection: its own table, `t_{id}`.
    Table { id: i64 },
}

impl Storage {
    /// Where the container with catalog id `id` and kind `kind` keeps its rows.
    pub fn of(id: i64, kind: ContainerKind) -> Storage {
        match kind {
            ContainerKind::TimeSeries => Storage::Series { container: id },
            ContainerKind::Collection => Storage::Table { id },
        }
    }

    /// The table's name, quoted where it needs to be.
    pub fn table(&self) -> String {
        match self {
            Storage::Series { .. } => SERIES_TABLE.to_string(),
            Storage::Table { id } => format!("\"t_{id}\""),
        }
    }

    /// The container's id when its table is shared: every statement on the
    /// table then says `container = ?` with it.
    pub fn shared_by(&self) -> Option<i64> {
        match self {
            Storage::Series { container } => Some(*container),
            Storage::Table { .. } => None,
        }
    }

    /// The statement writing one row of `width` columns. With a row key a
    /// put replaces the whole row, as GridDB's does; the container's id, when
    /// the table is shared, is the first parameter.
    pub fn insert_sql(&self, width: usize, row_key: bool) -> String {
        let verb = if row_key {
            "INSERT OR REPLACE"
        } else {
            "INSERT"
        };
        let mut names: Vec<String> = (0..width).map(|i| format!("c{i}")).collect();
        if self.shared_by().is_some() {
            names.insert(0, "container".to_string());
        }
        let slots = vec!["?"; names.len()].join(", ");
        format!(
            "{verb} INTO {} ({}) VALUES ({slots})",
            self.table(),
            names.join(", ")
        )
    }

    /// The statement deleting one row by its row key (the key its last
    /// parameter; in the shared table, the container's id its first).
    pub fn delete_key_sql(&self) -> String {
        match self.shared_by() {
            Some(_) => format!("DELETE FROM {SERIES_TABLE} WHERE container = ? AND c0 = ?"),
            None => format!("DELETE FROM {} WHERE c0 = ?", self.table()),
        }
    }

    /// The statement removing the container's rows: its rows from the
    /// shared table (the container's id its one parameter), or its own
    /// table.
    pub fn drop_sql(&self) -> String {
        match self {
            Storage::Series { .. } => format!("DELETE FROM {SERIES_TABLE} WHERE container = ?"),
            Storage::Table { .. } => format!("DROP TABLE {}", self.table()),
        }
    }
}

/// The DDL of a collection's own table: `c{i}` typed by its column, a row
/// key that is TIMESTAMP or integral becomes SQLite's rowid (key order is
/// scan order).
pub fn collection_ddl(id: i64, info: &ContainerInfo) -> String {
    let columns: Vec<String> = info
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| match (i, info.row_key) {
            (0, true) => format!("c0 {} PRIMARY KEY NOT NULL", sql_type(c.column_type)),
            _ => format!("c{i} {}", sql_type(c.column_type)),
        })
        .collect();
    format!(
        "CREATE TABLE {} ({})",
        Storage::Table { id }.table(),
        columns.join(", ")
    )
}

/// The DDL adding column `c{index}`, untyped, to the shared series table.
pub fn add_series_column_ddl(index: usize) -> String {
    format!("ALTER TABLE {SERIES_TABLE} ADD COLUMN c{index}")
}

/// The DDL adding column `c{index}` of type `ty` to collection `id`'s table.
pub fn add_collection_column_ddl(id: i64, index: usize, ty: ColumnType) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN c{index} {}",
        Storage::Table { id }.table(),
        sql_type(ty)
    )
}

/// The declared SQL type (the affinity) of a collection's column. Values are
/// bound in their own storage class anyway: BOOL → INTEGER 0/1; STRING →
/// TEXT; BYTE/SHORT/INTEGER/LONG → INTEGER; FLOAT/DOUBLE → REAL; TIMESTAMP →
/// INTEGER epoch ms; BLOB → BLOB.
pub fn sql_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::String => "TEXT",
        ColumnType::Float | ColumnType::Double => "REAL",
        ColumnType::Blob => "BLOB",
        ColumnType::Bool
        | ColumnType::Byte
        | ColumnType::Short
        | ColumnType::Integer
        | ColumnType::Long
        | ColumnType::Timestamp => "INTEGER",
    }
}
/// A catalog entry's columns as the catalog stores them:
/// `[["name","TYPE"],…]`, in schema order.
pub fn columns_json(columns: &[Column]) -> String {
    let pairs: Vec<(&str, &str)> = columns
        .iter()
        .map(|c| (c.name.as_str(), c.column_type.name()))
        .collect();
    serde_json::to_string(&pairs).expect("strings always serialize")
}

/// A catalog entry's kind and columns read back; `Err` names the part
/// that is not what [`columns_json`] and `ContainerKind::name` write.
pub fn read_catalog_entry(
    kind: &str,
    columns: &str,
) -> Result<(ContainerKind, Vec<Column>), &'static str> {
    let kind = match kind {
        "COLLECTION" => ContainerKind::Collection,
        "TIME_SERIES" => ContainerKind::TimeSeries,
        _ => return Err("kind"),
    };
    let columns: Vec<(String, String)> = serde_json::from_str(columns).map_err(|_| "columns")?;
    let columns = columns
        .into_iter()
        .map(|(n, t)| Some(Column::new(n, ColumnType::from_name(&t)?)))
        .collect::<Option<Vec<_>>>()
        .ok_or("column type")?;
    Ok((kind, columns))
}
