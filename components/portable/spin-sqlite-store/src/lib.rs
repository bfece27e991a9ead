//! `cromflag:iot/store` over Spin's SQLite (`fermyon:spin/sqlite@2.0.0`), as
//! a component: what Spin plugs into the insert, fetch and report
//! components' `store` import, so that `spin up` runs the application with
//! nothing else installed.
//!
//! The database is the embedded store's: the layout of
//! `cromflag_tql::layout` (the catalog table, every time series in the
//! shared series table, a table per collection, `PRAGMA user_version`),
//! queries translated by `cromflag_tql::sql` and run by `cromflag_tql::exec`,
//! rows checked by the model's `check_rows`. So the answers are the embedded
//! store's (host/tests/spin_sqlite.rs compares them), and a database written
//! here opens in the `cromflag` host and the other way round.
//!
//! `db` is the connection (values in and out, transactions), `catalog` the
//! containers and their rows. Spin commits each statement on its own, so
//! every write that must stand or fall whole runs in an explicit
//! transaction.

mod catalog;
mod db;

use cromflag_guest::convert;
use cromflag_model as m;
use db::Db;
use exports::cromflag::iot::store as wit;
use std::cell::OnceCell;
use std::time::{SystemTime, UNIX_EPOCH};

wit_bindgen::generate!({
    path: "../../../wit",
    world: "spin-sqlite-store-component",
    with: {
        "cromflag:iot/types@0.1.0": cromflag_guest::cromflag::iot::types,
        "fermyon:spin/variables@2.0.0": cromflag_guest::fermyon::spin::variables,
        // Its package is partly the guest's: the rest is said outright.
        "fermyon:spin/sqlite@2.0.0": generate,
    },
});

thread_local! {
    /// This instance's connection, opened (and the layout made) on the
    /// first call.
    static DB: OnceCell<Result<Db, m::StoreError>> = const { OnceCell::new() };
}

/// Runs `call` on this instance's database; one that could not be opened
/// is a backend error on every call (the components answer 503 with it).
fn with_db<T>(call: impl FnOnce(&Db) -> Result<T, m::StoreError>) -> Result<T, wit::Error> {
    DB.with(|cell| {
        let db = cell.get_or_init(|| {
            let db = Db::open()?;
            catalog::setup(&db)?;
            Ok(db)
        });
        match db {
            Ok(db) => call(db),
            Err(e) => Err(e.clone()),
        }
    })
    .map_err(error_to_wit)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Rows into containers, all in one transaction: every row or none.
fn write(db: &Db, batches: &[(String, Vec<m::Row>)]) -> Result<u64, m::StoreError> {
    db.transaction(|db| {
        batches.iter().try_fold(0u64, |written, (container, rows)| {
            Ok::<u64, m::StoreError>(written + catalog::put_rows(db, container, rows)?)
        })
    })
}

struct SpinSqliteStore;

impl wit::Guest for SpinSqliteStore {
    fn put_container(info: wit::ContainerInfo) -> Result<wit::ContainerInfo, wit::Error> {
        let info = info_from_wit(info);
        with_db(|db| db.transaction(|db| catalog::put(db, info))).map(info_to_wit)
    }

    fn get_container(name: String) -> Result<Option<wit::ContainerInfo>, wit::Error> {
        with_db(|db| catalog::read(db, &name)).map(|e| e.map(|e| info_to_wit(e.info)))
    }

    fn list_containers() -> Result<Vec<String>, wit::Error> {
        with_db(catalog::list)
    }

    fn put_rows(container: String, rows: Vec<wit::Row>) -> Result<u64, wit::Error> {
        let rows = rows.into_iter().map(convert::row_from_wit).collect();
        with_db(|db| write(db, &[(container, rows)]))
    }

    fn multi_put(batches: Vec<wit::ContainerRows>) -> Result<u64, wit::Error> {
        let batches: Vec<(String, Vec<m::Row>)> = batches
            .into_iter()
            .map(|b| {
                let rows = b.rows.into_iter().map(convert::row_from_wit).collect();
                (b.container, rows)
            })
            .collect();
        with_db(|db| write(db, &batches))
    }

    fn query(container: String, tql: String) -> Result<wit::QueryResult, wit::Error> {
        with_db(|db| {
            let entry = catalog::read(db, &container)?.ok_or_else(|| {
                m::StoreError::NotFound(format!("container `{container}` does not exist"))
            })?;
            let statement = cromflag_tql::parse(&tql)?;
            let plan =
                cromflag_tql::sql::translate(&statement, &entry.info, &entry.storage, now_ms())?;
            cromflag_tql::exec::run(db, &entry.info, &plan)
        })
        .map(|result| wit::QueryResult {
            columns: result
                .columns
                .into_iter()
                .map(convert::column_to_wit)
                .collect(),
            rows: result.rows.into_iter().map(convert::row_to_wit).collect(),
        })
    }
}

fn info_to_wit(info: m::ContainerInfo) -> wit::ContainerInfo {
    wit::ContainerInfo {
        name: info.name,
        kind: match info.kind {
            m::ContainerKind::Collection => wit::ContainerKind::Collection,
            m::ContainerKind::TimeSeries => wit::ContainerKind::TimeSeries,
        },
        columns: info
            .columns
            .into_iter()
            .map(convert::column_to_wit)
            .collect(),
        row_key: info.row_key,
    }
}

fn info_from_wit(info: wit::ContainerInfo) -> m::ContainerInfo {
    m::ContainerInfo {
        name: info.name,
        kind: match info.kind {
            wit::ContainerKind::Collection => m::ContainerKind::Collection,
            wit::ContainerKind::TimeSeries => m::ContainerKind::TimeSeries,
        },
        columns: info
            .columns
            .into_iter()
            .map(convert::column_from_wit)
            .collect(),
        row_key: info.row_key,
    }
}

fn error_to_wit(e: m::StoreError) -> wit::Error {
    match e {
        m::StoreError::NotFound(m) => wit::Error::NotFound(m),
        m::StoreError::Invalid(m) => wit::Error::Invalid(m),
        m::StoreError::SchemaConflict(m) => wit::Error::SchemaConflict(m),
        m::StoreError::Query(m) => wit::Error::Query(m),
        m::StoreError::Backend(m) => wit::Error::Backend(m),
    }
}

export!(SpinSqliteStore);
