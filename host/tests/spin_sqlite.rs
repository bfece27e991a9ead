//! The `spin-sqlite-store` component against the embedded store: the same
//! requests through `cromflag_logic::api` and `report` over both must get
//! the same answers.
//!
//! The component runs under a harness that stands in for Spin: WASI p2,
//! Spin's variables (every one undefined) and `fermyon:spin/sqlite@2.0.0`
//! implemented the way Spin 4.0.2's host does it (factor-sqlite's label
//! check, sqlite-inproc's `execute` over rusqlite: `prepare_cached`, values
//! bound in order, cells read back by storage class, every rusqlite error
//! an `io` with its text). Each `cromflag_logic::Store` call is one typed
//! call of the component's export, as a component importing the store
//! would make it.

use bindings::exports::cromflag::iot::store as wit;
use bindings::fermyon::spin::{sqlite, variables};
use chrono::{DateTime, Utc};
use cromflag_logic::api::{self, Request, Response};
use cromflag_logic::insert::Receipt;
use cromflag_logic::report::{self, body::ReportKind, settings::Settings};
use cromflag_model::{
    from_columns, Column, ColumnData, ColumnType, ColumnValues, ContainerInfo, ContainerKind,
    KeyRange, QueryResult, RangeAggregates, Row, Store, StoreError, Value,
};
use cromflag_store::embedded::EmbeddedStore;
use cromflag_store::Backend;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::{Component, HasData, Linker, Resource, ResourceTable};
use wasmtime::{Engine, Store as WasmStore};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "spin-sqlite-store-component",
    });
}

/// One instance's host state.
struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Where Spin puts the `default` database: `<app>/.spin/sqlite_db.db`.
    default_db: PathBuf,
    /// The component's `sqlite_databases`.
    allowed: Vec<String>,
    /// The open `connection` resources, by handle, as Spin keeps them.
    connections: HashMap<u32, rusqlite::Connection>,
    next_connection: u32,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

struct HostData;

impl HasData for HostData {
    type Data<'a> = &'a mut Host;
}

impl bindings::cromflag::iot::types::Host for Host {}

impl variables::Host for Host {
    fn get(&mut self, name: String) -> Result<String, variables::Error> {
        Err(variables::Error::Undefined(name))
    }
}

/// Spin's message for any rusqlite error.
fn io(e: rusqlite::Error) -> sqlite::Error {
    sqlite::Error::Io(e.to_string())
}

impl sqlite::Host for Host {}

impl sqlite::HostConnection for Host {
    /// factor-sqlite: a label the component does not list is denied; the
    /// `default` label is the application's file.
    fn open(&mut self, database: String) -> Result<Resource<sqlite::Connection>, sqlite::Error> {
        if !self.allowed.contains(&database) {
            return Err(sqlite::Error::AccessDenied);
        }
        if database != "default" {
            return Err(sqlite::Error::NoSuchDatabase);
        }
        let conn = rusqlite::Connection::open(&self.default_db).map_err(io)?;
        self.next_connection += 1;
        self.connections.insert(self.next_connection, conn);
        Ok(Resource::new_own(self.next_connection))
    }

    /// sqlite-inproc's `execute`.
    fn execute(
        &mut self,
        connection: Resource<sqlite::Connection>,
        statement: String,
        parameters: Vec<sqlite::Value>,
    ) -> Result<sqlite::QueryResult, sqlite::Error> {
        let conn = self
            .connections
            .get(&connection.rep())
            .ok_or(sqlite::Error::InvalidConnection)?;
        let mut prepared = conn.prepare_cached(&statement).map_err(io)?;
        let columns: Vec<String> = prepared
            .column_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let count = columns.len();
        let parameters = parameters.into_iter().map(|v| match v {
            sqlite::Value::Null => rusqlite::types::Value::Null,
            sqlite::Value::Integer(i) => rusqlite::types::Value::Integer(i),
            sqlite::Value::Real(r) => rusqlite::types::Value::Real(r),
            sqlite::Value::Text(t) => rusqlite::types::Value::Text(t),
            sqlite::Value::Blob(b) => rusqlite::types::Value::Blob(b),
        });
        let rows = prepared
            .query_map(rusqlite::params_from_iter(parameters), |row| {
                let values = (0..count)
                    .map(|i| {
                        Ok(match row.get_ref(i)? {
                            rusqlite::types::ValueRef::Null => sqlite::Value::Null,
                            rusqlite::types::ValueRef::Integer(i) => sqlite::Value::Integer(i),
                            rusqlite::types::ValueRef::Real(r) => sqlite::Value::Real(r),
                            rusqlite::types::ValueRef::Text(t) => {
                                sqlite::Value::Text(String::from_utf8_lossy(t).into_owned())
                            }
                            rusqlite::types::ValueRef::Blob(b) => sqlite::Value::Blob(b.to_vec()),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(sqlite::RowResult { values })
            })
            .map_err(io)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(io)?;
        Ok(sqlite::QueryResult { columns, rows })
    }

    fn drop(&mut self, connection: Resource<sqlite::Connection>) -> wasmtime::Result<()> {
        self.connections.remove(&connection.rep());
        Ok(())
    }
}

/// The component, built by host/build.rs.
fn component_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/components/wasm32-wasip2/component/spin_sqlite_store.wasm")
}

/// One instance of the component over the database `default_db`, as a
/// `cromflag_logic::Store`.
struct SpinStore {
    store: WasmStore<Host>,
    instance: bindings::SpinSqliteStoreComponent,
}

impl SpinStore {
    fn new(engine: &Engine, default_db: &Path, allowed: &[&str]) -> SpinStore {
        let component = Component::from_file(engine, component_path())
            .expect("spin_sqlite_store.wasm (built by `cargo build --release`)");
        let mut linker: Linker<Host> = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("WASI");
        bindings::SpinSqliteStoreComponent::add_to_linker::<Host, HostData>(&mut linker, |h| h)
            .expect("Spin's imports");
        let host = Host {
            wasi: WasiCtx::builder().inherit_stderr().build(),
            table: ResourceTable::new(),
            default_db: default_db.to_owned(),
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
            connections: HashMap::new(),
            next_connection: 0,
        };
        let mut store = WasmStore::new(engine, host);
        let instance =
            bindings::SpinSqliteStoreComponent::instantiate(&mut store, &component, &linker)
                .expect("instantiate");
        SpinStore { store, instance }
    }

    fn call<T>(
        &mut self,
        call: impl FnOnce(&wit::Guest, &mut WasmStore<Host>) -> wasmtime::Result<Result<T, wit::Error>>,
    ) -> Result<T, StoreError> {
        call(self.instance.cromflag_iot_store(), &mut self.store)
            .expect("the component trapped")
            .map_err(error_from_wit)
    }
}

impl Store for SpinStore {
    fn put_container(&mut self, info: ContainerInfo) -> Result<ContainerInfo, StoreError> {
        let info = info_to_wit(info);
        self.call(|g, s| g.call_put_container(s, &info))
            .map(info_from_wit)
    }
    fn get_container(&mut self, name: &str) -> Result<Option<ContainerInfo>, StoreError> {
        self.call(|g, s| g.call_get_container(s, name))
            .map(|i| i.map(info_from_wit))
    }
    fn list_containers(&mut self) -> Result<Vec<String>, StoreError> {
        self.call(|g, s| g.call_list_containers(s))
    }
    fn put_rows(&mut self, container: &str, rows: Vec<Row>) -> Result<u64, StoreError> {
        let rows: Vec<_> = rows.into_iter().map(row_to_wit).collect();
        self.call(|g, s| g.call_put_rows(s, container, &rows))
    }
    fn multi_put(&mut self, batches: Vec<(String, Vec<Row>)>) -> Result<u64, StoreError> {
        let batches: Vec<_> = batches
            .into_iter()
            .map(|(container, rows)| wit::ContainerRows {
                container,
                rows: rows.into_iter().map(row_to_wit).collect(),
            })
            .collect();
        self.call(|g, s| g.call_multi_put(s, &batches))
    }
    fn query(&mut self, container: &str, tql: &str) -> Result<QueryResult, StoreError> {
        self.call(|g, s| g.call_query(s, container, tql))
            .map(|r| QueryResult {
                columns: r.columns.into_iter().map(column_from_wit).collect(),
                rows: from_columns(r.data.into_iter().map(column_data_from_wit).collect()),
            })
    }
    fn aggregate_ranges(
        &mut self,
        container: &str,
        aggregates: &str,
        ranges: &[KeyRange],
    ) -> Result<RangeAggregates, StoreError> {
        let ranges: Vec<wit::KeyRange> = ranges
            .iter()
            .map(|r| wit::KeyRange {
                start: r.start,
                end: r.end,
            })
            .collect();
        self.call(|g, s| g.call_aggregate_ranges(s, container, aggregates, &ranges))
            .map(|r| RangeAggregates {
                columns: r.columns.into_iter().map(column_from_wit).collect(),
                rows: range_rows_from_wit(r.rows),
            })
    }
}

/// The embedded store, blocking on each call as a component does (as in
/// host/benches/insert.rs).
struct Embedded {
    backend: Arc<EmbeddedStore>,
    runtime: tokio::runtime::Runtime,
}

impl Embedded {
    fn open(path: &Path) -> Embedded {
        let runtime = tokio::runtime::Runtime::new().expect("tokio");
        let backend = Arc::new(EmbeddedStore::open(path).expect("embedded store"));
        Embedded { backend, runtime }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.runtime.block_on(self.backend.close());
    }
}

impl Store for Embedded {
    fn put_container(&mut self, info: ContainerInfo) -> Result<ContainerInfo, StoreError> {
        self.runtime.block_on(self.backend.put_container(info))
    }
    fn get_container(&mut self, name: &str) -> Result<Option<ContainerInfo>, StoreError> {
        self.runtime.block_on(self.backend.get_container(name))
    }
    fn list_containers(&mut self) -> Result<Vec<String>, StoreError> {
        self.runtime.block_on(self.backend.list_containers())
    }
    fn put_rows(&mut self, container: &str, rows: Vec<Row>) -> Result<u64, StoreError> {
        self.runtime
            .block_on(self.backend.put_rows(container, rows))
    }
    fn multi_put(&mut self, batches: Vec<(String, Vec<Row>)>) -> Result<u64, StoreError> {
        self.runtime.block_on(self.backend.multi_put(batches))
    }
    fn query(&mut self, container: &str, tql: &str) -> Result<QueryResult, StoreError> {
        self.runtime.block_on(self.backend.query(container, tql))
    }
    fn aggregate_ranges(
        &mut self,
        container: &str,
        aggregates: &str,
        ranges: &[KeyRange],
    ) -> Result<RangeAggregates, StoreError> {
        self.runtime
            .block_on(self.backend.aggregate_ranges(container, aggregates, ranges))
    }
}

fn engine() -> Engine {
    Engine::default()
}

/// One answer, for comparing: what it was, status, headers and body.
#[derive(Debug, PartialEq)]
struct Answer {
    what: String,
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn answer(what: &str, response: Response) -> Answer {
    Answer {
        what: what.to_owned(),
        status: response.status,
        headers: response.headers,
        body: String::from_utf8_lossy(&response.body).into_owned(),
    }
}

fn get(path: &str) -> Request<'_> {
    Request {
        method: "GET",
        path_with_query: path,
        content_type: None,
        accept: None,
        body: b"",
    }
}

fn seed() -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/seed/sample-insert.json"),
    )
    .or_else(|_| std::fs::read("/work/shared/seed/sample-insert.json"))
    .expect("the seed document")
}

fn at(rfc3339: &str) -> DateTime<Utc> {
    rfc3339.parse().expect("an RFC 3339 instant")
}

/// The seed's rows are on 2020-02-18 (UTC), from 17:25:38.255, 10 s apart.
const FIRST_MS: i64 = 1_582_046_738_255;

/// Everything a user of the components does, in order: inserts, fetches
/// (a cursor's pages, aggregated buckets, the device list, the latest row),
/// TQL straight at the store (an aggregate and a row function, which read
/// through different plans), and reports (a run of each kind, then the
/// list and one report). Every answer, for comparing.
fn scenario(store: &mut impl Store) -> Vec<Answer> {
    let mut answers = Vec::new();
    let body = seed();
    let insert = |store: &mut dyn FnMut(&Request, Receipt) -> Response, body: &[u8], n| {
        let request = Request {
            method: "POST",
            path_with_query: "/insert/sample",
            content_type: Some("application/json"),
            accept: None,
            body,
        };
        store(
            &request,
            Receipt {
                received_ms: FIRST_MS + 60_000 * n as i64,
                transport: "http",
                nonce: n,
            },
        )
    };
    let mut inserting = |request: &Request, receipt| {
        api::handle_insert(store, &mut cromflag_logic::NoTransforms, request, receipt)
    };
    answers.push(answer("insert", insert(&mut inserting, &body, 1)));
    // The same document a day later, with a column more: an upsert of new
    // keys and a schema that grows.
    let later = String::from_utf8(body.clone()).expect("UTF-8").replace(
        "\"timestamp\": 15820",
        "\"pressure\": 1013.5, \"timestamp\": 15821",
    );
    assert_ne!(later.as_bytes(), &body[..], "the second document differs");
    answers.push(answer(
        "insert later",
        insert(&mut inserting, later.as_bytes(), 2),
    ));
    // A bad document: the same 4xx from both.
    answers.push(answer(
        "insert bad",
        insert(&mut inserting, b"{\"tsdata\": 7}", 3),
    ));

    let fetch = |store: &mut _, path: &str| api::handle_fetch(store, &get(path), 100_000);
    // A cursor: two rows a page, following x-next-cursor to the end.
    let mut path = "/fetch/sample?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let response = fetch(store, &path);
        let next = response
            .headers
            .iter()
            .find(|(name, _)| *name == "x-next-cursor")
            .map(|(_, cursor)| cursor.clone());
        answers.push(answer(&format!("page {pages}"), response));
        pages += 1;
        match next {
            Some(cursor) => path = format!("/fetch/sample?limit=2&cursor={cursor}"),
            None => break,
        }
        assert!(pages < 20, "the cursor never ends");
    }
    assert!(pages >= 6, "12 rows in pages of 2 are 6 pages, not {pages}");
    for path in [
        "/fetch/sample?agg=avg&interval=1h",
        "/fetch/sample?agg=max&interval=1d&columns=temperature,pressure",
        "/fetch/sample?agg=count&interval=10m&fill=null&from=1582046400000&to=1582050000000",
        "/fetch/sample?order=desc&limit=3&columns=humidity,motion",
        "/fetch/devices",
        "/fetch/nobody",
    ] {
        answers.push(answer(path, fetch(store, path)));
    }
    for path in ["/devices/sample/latest", "/devices/sample/schema"] {
        answers.push(answer(path, api::handle_devices(store, &get(path))));
    }
    for tql in [
        "SELECT AVG(temperature), MIN(humidity), COUNT(*) WHERE pressure IS NULL",
        "SELECT TIME_SAMPLING(temperature, TIMESTAMP('2020-02-18T17:25:40Z'), \
         TIMESTAMP('2020-02-18T17:26:30Z'), 15, SECOND)",
        "SELECT MAX_ROWS(illuminance)",
        "SELECT * WHERE temperature > 79 AND pressure IS NOT NULL ORDER BY temperature DESC LIMIT 2",
    ] {
        answers.push(Answer {
            what: tql.to_owned(),
            status: 0,
            headers: Vec::new(),
            body: format!("{:?}", store.query("sample", tql)),
        });
    }

    let settings = Settings::read(|_| None).expect("default settings");
    for (kind, when) in [
        (ReportKind::Daily, "2020-02-19T00:00:01Z"),
        (ReportKind::Weekly, "2020-02-24T00:00:01Z"),
        (ReportKind::Invoice, "2020-03-01T00:00:01Z"),
    ] {
        let outcome = report::run_kind(store, kind, at(when), &settings, FIRST_MS + 86_400_000);
        answers.push(Answer {
            what: format!("run {}", kind.name()),
            status: 0,
            headers: Vec::new(),
            body: format!("{outcome:?}"),
        });
    }
    let listed = api::handle_reports(store, &get("/reports"));
    let ids: Vec<String> = serde_json::from_slice::<serde_json::Value>(&listed.body)
        .ok()
        .and_then(|v| {
            let reports = v.get("reports").or(Some(&v))?.as_array()?.clone();
            Some(
                reports
                    .iter()
                    .filter_map(|r| r.get("id")?.as_str().map(str::to_owned))
                    .collect(),
            )
        })
        .unwrap_or_default();
    answers.push(answer("/reports", listed));
    assert!(ids.len() >= 3, "a report of each kind is listed: {ids:?}");
    for id in &ids {
        let path = format!("/reports/{id}");
        answers.push(answer(&path, api::handle_reports(store, &get(&path))));
    }
    answers.push(Answer {
        what: "containers".to_owned(),
        status: 0,
        headers: Vec::new(),
        body: format!("{:?}", store.list_containers()),
    });
    answers
}

/// Answers that say something: the inserts went in and the reads found them.
fn check_answers(answers: &[Answer]) {
    let find = |what: &str| {
        answers
            .iter()
            .find(|a| a.what == what)
            .unwrap_or_else(|| panic!("no answer for {what}"))
    };
    assert_eq!(
        (find("insert").status, find("insert").body.as_str()),
        (200, "True")
    );
    assert_eq!(find("insert later").status, 200);
    assert!((400..500).contains(&find("insert bad").status));
    let first = find("page 0");
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(
        first.body.contains("1582046738255") || first.body.contains("2020-02-18T17:25:38.255"),
        "{}",
        first.body
    );
    let avg = find("/fetch/sample?agg=avg&interval=1h");
    assert_eq!(avg.status, 200, "{}", avg.body);
    assert!(avg.body.contains("temperature"), "{}", avg.body);
    assert_eq!(find("/fetch/nobody").status, 404);
    for answer in answers.iter().filter(|a| a.what.starts_with("SELECT")) {
        assert!(
            answer.body.starts_with("Ok(QueryResult"),
            "{}: {}",
            answer.what,
            answer.body
        );
        assert!(
            answer.body.contains("Timestamp(") || answer.body.contains("Double("),
            "rows: {}",
            answer.body
        );
    }
    for what in ["run daily", "run weekly", "run invoice"] {
        assert!(
            find(what).body.starts_with("Ok("),
            "{what}: {}",
            find(what).body
        );
    }
}

fn same(spin: &[Answer], embedded: &[Answer]) {
    for (s, e) in spin.iter().zip(embedded) {
        assert_eq!(s, e, "the component and the embedded store differ");
    }
    assert_eq!(spin.len(), embedded.len());
}

#[test]
fn the_component_answers_as_the_embedded_store_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spin_db = dir.path().join("spin/.spin/sqlite_db.db");
    std::fs::create_dir_all(spin_db.parent().unwrap()).unwrap();
    let engine = engine();
    let spin = scenario(&mut SpinStore::new(&engine, &spin_db, &["default"]));
    let embedded = scenario(&mut Embedded::open(&dir.path().join("embedded.db")));
    check_answers(&embedded);
    same(&spin, &embedded);

    // The component's database is the embedded store's layout: the
    // `cromflag` host opens it and reads the same rows (and the other way
    // round: a new instance of the component on it reads them too).
    let paths = [
        "/fetch/sample?limit=100",
        "/fetch/sample?agg=avg&interval=1h",
        "/fetch/devices",
    ];
    let read = |store: &mut dyn FnMut(&str) -> Response| -> Vec<Answer> {
        paths.iter().map(|p| answer(p, store(p))).collect()
    };
    let again = {
        let mut component = SpinStore::new(&engine, &spin_db, &["default"]);
        read(&mut |p| api::handle_fetch(&mut component, &get(p), 100_000))
    };
    let opened = {
        let mut host = Embedded::open(&spin_db);
        read(&mut |p| api::handle_fetch(&mut host, &get(p), 100_000))
    };
    assert_eq!(again[0].status, 200, "{}", again[0].body);
    same(&again, &opened);
}

#[test]
fn a_multi_put_with_one_bad_row_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine();
    let mut spin = SpinStore::new(&engine, &dir.path().join("sqlite_db.db"), &["default"]);
    let mut embedded = Embedded::open(&dir.path().join("embedded.db"));
    let series = |name: &str| ContainerInfo {
        name: name.to_owned(),
        kind: ContainerKind::TimeSeries,
        columns: vec![
            Column::new("timestamp", ColumnType::Timestamp),
            Column::new("v", ColumnType::Double),
        ],
        row_key: true,
    };
    let row = |t: i64, v: Value| vec![Value::Timestamp(t), v];
    let mut outcomes = Vec::new();
    for store in [&mut spin as &mut dyn Store, &mut embedded] {
        store.put_container(series("a")).expect("a");
        store.put_container(series("b")).expect("b");
        let written = store.multi_put(vec![
            (
                "a".to_owned(),
                vec![row(1, Value::Double(1.0)), row(2, Value::Double(2.0))],
            ),
            (
                "b".to_owned(),
                vec![
                    row(1, Value::Double(1.0)),
                    row(2, Value::String("two".into())),
                ],
            ),
        ]);
        assert!(
            matches!(written, Err(StoreError::Invalid(_))),
            "{written:?}"
        );
        let a = store.query("a", "SELECT *").expect("a");
        let b = store.query("b", "SELECT *").expect("b");
        assert_eq!((a.rows.len(), b.rows.len()), (0, 0), "nothing was written");
        // A row for a container that does not exist fails the whole call too.
        let missing = store.multi_put(vec![
            ("a".to_owned(), vec![row(3, Value::Double(3.0))]),
            ("nowhere".to_owned(), vec![row(3, Value::Double(3.0))]),
        ]);
        assert!(
            matches!(missing, Err(StoreError::NotFound(_))),
            "{missing:?}"
        );
        assert_eq!(store.query("a", "SELECT *").expect("a").rows.len(), 0);
        // And a good call writes everything.
        let good = store.multi_put(vec![
            ("a".to_owned(), vec![row(4, Value::Double(4.0))]),
            (
                "b".to_owned(),
                vec![row(4, Value::Double(4.0)), row(5, Value::Null)],
            ),
        ]);
        assert_eq!(good, Ok(3));
        outcomes.push((written, missing, store.query("b", "SELECT *")));
    }
    assert_eq!(
        outcomes[0], outcomes[1],
        "the same errors and rows from both"
    );
}

#[test]
fn a_database_the_component_may_not_use_is_a_backend_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spin = SpinStore::new(&engine(), &dir.path().join("sqlite_db.db"), &[]);
    match spin.list_containers() {
        Err(StoreError::Backend(message)) => {
            assert!(message.contains("sqlite_databases"), "{message}")
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
}

fn info_to_wit(info: ContainerInfo) -> wit::ContainerInfo {
    wit::ContainerInfo {
        name: info.name,
        kind: match info.kind {
            ContainerKind::Collection => wit::ContainerKind::Collection,
            ContainerKind::TimeSeries => wit::ContainerKind::TimeSeries,
        },
        columns: info.columns.into_iter().map(column_to_wit).collect(),
        row_key: info.row_key,
    }
}

fn info_from_wit(info: wit::ContainerInfo) -> ContainerInfo {
    ContainerInfo {
        name: info.name,
        kind: match info.kind {
            wit::ContainerKind::Collection => ContainerKind::Collection,
            wit::ContainerKind::TimeSeries => ContainerKind::TimeSeries,
        },
        columns: info.columns.into_iter().map(column_from_wit).collect(),
        row_key: info.row_key,
    }
}

use bindings::cromflag::iot::types as t;

fn column_to_wit(c: Column) -> t::Column {
    let type_ = match c.column_type {
        ColumnType::Bool => t::ColumnType::Bool,
        ColumnType::String => t::ColumnType::String,
        ColumnType::Byte => t::ColumnType::Byte,
        ColumnType::Short => t::ColumnType::Short,
        ColumnType::Integer => t::ColumnType::Integer,
        ColumnType::Long => t::ColumnType::Long,
        ColumnType::Float => t::ColumnType::Float,
        ColumnType::Double => t::ColumnType::Double,
        ColumnType::Timestamp => t::ColumnType::Timestamp,
        ColumnType::Blob => t::ColumnType::Blob,
    };
    t::Column {
        name: c.name,
        type_,
    }
}

fn column_from_wit(c: t::Column) -> Column {
    let ty = match c.type_ {
        t::ColumnType::Bool => ColumnType::Bool,
        t::ColumnType::String => ColumnType::String,
        t::ColumnType::Byte => ColumnType::Byte,
        t::ColumnType::Short => ColumnType::Short,
        t::ColumnType::Integer => ColumnType::Integer,
        t::ColumnType::Long => ColumnType::Long,
        t::ColumnType::Float => ColumnType::Float,
        t::ColumnType::Double => ColumnType::Double,
        t::ColumnType::Timestamp => ColumnType::Timestamp,
        t::ColumnType::Blob => ColumnType::Blob,
    };
    Column::new(c.name, ty)
}

fn row_to_wit(row: Row) -> t::Row {
    row.into_iter()
        .map(|v| match v {
            Value::Null => t::Value::Null,
            Value::Bool(v) => t::Value::Bool(v),
            Value::String(v) => t::Value::String(v),
            Value::Byte(v) => t::Value::Byte(v),
            Value::Short(v) => t::Value::Short(v),
            Value::Integer(v) => t::Value::Integer(v),
            Value::Long(v) => t::Value::Long(v),
            Value::Float(v) => t::Value::Float(v),
            Value::Double(v) => t::Value::Double(v),
            Value::Timestamp(v) => t::Value::Timestamp(v),
            Value::Blob(v) => t::Value::Blob(v),
        })
        .collect()
}

/// A result column as the component sent it, in the model's types.
fn column_data_from_wit(data: t::ColumnData) -> ColumnData {
    use t::ColumnValues as W;
    use ColumnValues as M;
    ColumnData {
        values: match data.values {
            W::Bool(v) => M::Bool(v),
            W::String(v) => M::String(v),
            W::Byte(v) => M::Byte(v),
            W::Short(v) => M::Short(v),
            W::Integer(v) => M::Integer(v),
            W::Long(v) => M::Long(v),
            W::Float(v) => M::Float(v),
            W::Double(v) => M::Double(v),
            W::Timestamp(v) => M::Timestamp(v),
            W::Blob(v) => M::Blob(v),
        },
        nulls: data.nulls,
    }
}

fn range_rows_from_wit(rows: Vec<Option<t::Row>>) -> Vec<Option<Row>> {
    rows.into_iter()
        .map(|row| {
            row.map(|row| {
                row.into_iter()
                    .map(|v| match v {
                        t::Value::Null => Value::Null,
                        t::Value::Bool(v) => Value::Bool(v),
                        t::Value::String(v) => Value::String(v),
                        t::Value::Byte(v) => Value::Byte(v),
                        t::Value::Short(v) => Value::Short(v),
                        t::Value::Integer(v) => Value::Integer(v),
                        t::Value::Long(v) => Value::Long(v),
                        t::Value::Float(v) => Value::Float(v),
                        t::Value::Double(v) => Value::Double(v),
                        t::Value::Timestamp(v) => Value::Timestamp(v),
                        t::Value::Blob(v) => Value::Blob(v),
                    })
                    .collect()
            })
        })
        .collect()
}

fn error_from_wit(e: wit::Error) -> StoreError {
    match e {
        wit::Error::NotFound(m) => StoreError::NotFound(m),
        wit::Error::Invalid(m) => StoreError::Invalid(m),
        wit::Error::SchemaConflict(m) => StoreError::SchemaConflict(m),
        wit::Error::Query(m) => StoreError::Query(m),
        wit::Error::Backend(m) => StoreError::Backend(m),
    }
}
