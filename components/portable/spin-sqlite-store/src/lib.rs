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

use cromflag_model as m;
use cromflag_store_export::{Exported, ModelStore};
use db::Db;
use std::cell::OnceCell;
use std::time::{SystemTime, UNIX_EPOCH};

wit_bindgen::generate!({
    path: "../../../wit",
    world: "spin-sqlite-client",
    generate_all,
});

thread_local! {
    /// This instance's connection, opened (and the layout made) on the
    /// first call.
    static DB: OnceCell<Result<Db, m::StoreError>> = const { OnceCell::new() };
}

/// Runs `call` on this instance's database; one that could not be opened
/// is a backend error on every call (the components answer 503 with it).
fn with_db<T>(call: impl FnOnce(&Db) -> Result<T, m::StoreError>) -> Result<T, m::StoreError> {
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

impl ModelStore for SpinSqliteStore {
    fn put_container(info: m::ContainerInfo) -> Result<m::ContainerInfo, m::StoreError> {
        with_db(|db| db.transaction(|db| catalog::put(db, info)))
    }

    fn get_container(name: &str) -> Result<Option<m::ContainerInfo>, m::StoreError> {
        with_db(|db| catalog::read(db, name)).map(|e| e.map(|e| e.info))
    }

    fn list_containers() -> Result<Vec<String>, m::StoreError> {
        with_db(catalog::list)
    }

    fn multi_put(batches: Vec<(String, Vec<m::Row>)>) -> Result<u64, m::StoreError> {
        with_db(|db| write(db, &batches))
    }

    fn query(container: &str, tql: &str) -> Result<m::QueryResult, m::StoreError> {
        with_db(|db| {
            let entry = catalog::read(db, container)?.ok_or_else(|| {
                m::StoreError::NotFound(format!("container `{container}` does not exist"))
            })?;
            let statement = cromflag_tql::parse(tql)?;
            let plan =
                cromflag_tql::sql::translate(&statement, &entry.info, &entry.storage, now_ms())?;
            cromflag_tql::exec::run(db, &entry.info, &plan)
        })
    }

    /// Every range in one SQL statement, as the embedded store does.
    fn aggregate_ranges(
        container: &str,
        aggregates: &str,
        ranges: &[m::KeyRange],
    ) -> Result<m::RangeAggregates, m::StoreError> {
        with_db(|db| {
            let entry = catalog::read(db, container)?.ok_or_else(|| {
                m::StoreError::NotFound(format!("container `{container}` does not exist"))
            })?;
            let statement = cromflag_tql::parse(aggregates)?;
            let plan = cromflag_tql::sql::translate_ranges(
                &statement,
                &entry.info,
                &entry.storage,
                now_ms(),
                ranges,
            )?;
            cromflag_tql::exec::run_ranges(db, &plan)
        })
    }
}

type Store = Exported<SpinSqliteStore>;
cromflag_store_export::export!(Store with_types_in cromflag_store_export);
