//! Property tests of TQL (`store/tql.rs`) and of running it on the embedded
//! store (`store/embedded`: parse, translate to SQL, execute).
//!
//! Why: TQL reaches the store from components and, through `--webapi`, from
//! any WebAPI client as raw text. Whatever the text, the store must answer
//! rows or `StoreError::Query` (a `TQL: ` message; a 400 from the WebAPI, as
//! `webapi/server` maps it), never panic and never report the client's
//! mistake as `StoreError::Backend` (a 500/503: "the store is down"). The
//! properties:
//!
//! - arbitrary text parses or fails with a `TQL: ` query error;
//! - statements from a small grammar of valid TQL (selections, aggregates,
//!   selection functions, time functions, WHERE, ORDER BY, LIMIT) parse;
//! - those statements with tokens replaced, dropped or repeated parse or fail
//!   with a query error, and run on a real embedded store with rows, they
//!   answer rows or a client error (query, invalid, not found), never a
//!   backend error.
//!
//! Failures are not persisted to files: a case found is kept as a plain test.

use cromflag::store::embedded::EmbeddedStore;
use cromflag::store::Value;
use cromflag::store::{tql, Backend, Column, ColumnType, ContainerInfo, ContainerKind, StoreError};
use proptest::prelude::*;
use proptest::test_runner::Config;
use std::sync::{Arc, OnceLock};

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn assert_query_error(result: Result<tql::Statement, StoreError>, text: &str) {
    match result {
        Ok(_) => {}
        Err(StoreError::Query(m)) if m.starts_with("TQL: ") => {}
        Err(other) => panic!("{text:?}: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// A grammar of TQL
// ---------------------------------------------------------------------------

fn column() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ts".to_owned()),
        Just("temp".to_owned()),
        Just("hum".to_owned()),
        Just("motion".to_owned()),
        Just("label".to_owned()),
        Just("\"Temp\"".to_owned()),
        Just("nope".to_owned()),
    ]
}

fn timestamp() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..=253_402_300_799_999i64).prop_map(|ms| format!("TO_TIMESTAMP_MS({ms})")),
        Just("TIMESTAMP('2020-02-18T17:25:38.255Z')".to_owned()),
        Just("TIMESTAMP('9999-12-31T23:59:59.999+00:00')".to_owned()),
        Just("NOW()".to_owned()),
        (unit(), -1000i64..1000).prop_map(|(unit, n)| format!("TIMESTAMPADD({unit}, NOW(), {n})")),
    ]
}

fn unit() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("YEAR"),
        Just("MONTH"),
        Just("DAY"),
        Just("HOUR"),
        Just("MINUTE"),
        Just("SECOND"),
        Just("MILLISECOND"),
    ]
}

/// The units of a fixed length, the only ones TIME_SAMPLING accepts.
fn fixed_unit() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("DAY"),
        Just("HOUR"),
        Just("MINUTE"),
        Just("SECOND"),
        Just("MILLISECOND"),
    ]
}

/// A literal or column, as an operand.
fn operand() -> impl Strategy<Value = String> {
    prop_oneof![
        column(),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:?}")),
        Just("'a''b'".to_owned()),
        Just("NULL".to_owned()),
        timestamp(),
        (unit(), timestamp(), timestamp())
            .prop_map(|(unit, a, b)| format!("TIMESTAMPDIFF({unit}, {a}, {b})")),
        timestamp().prop_map(|t| format!("TO_EPOCH_MS({t})")),
    ]
}

fn condition() -> impl Strategy<Value = String> {
    let op = prop_oneof![
        Just("="),
        Just("=="),
        Just("!="),
        Just("<>"),
        Just("<"),
        Just("<="),
        Just(">"),
        Just(">=")
    ];
    let leaf = prop_oneof![
        (operand(), op, operand()).prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        column().prop_map(|c| format!("{c} IS NOT NULL")),
        column().prop_map(|c| format!("{c} LIKE 'a%' ESCAPE '\\'")),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) AND ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} OR {b}")),
            inner.prop_map(|a| format!("NOT ({a})")),
        ]
    })
}

fn selection() -> impl Strategy<Value = String> {
    let aggregate = (
        prop_oneof![
            Just("COUNT"),
            Just("AVG"),
            Just("MIN"),
            Just("MAX"),
            Just("SUM"),
            Just("STDDEV"),
            Just("VARIANCE"),
        ],
        column(),
    )
        .prop_map(|(f, c)| format!("{f}({c})"));
    prop_oneof![
        Just("*".to_owned()),
        proptest::collection::vec(column(), 1..4).prop_map(|c| c.join(", ")),
        proptest::collection::vec(aggregate, 1..4).prop_map(|a| a.join(", ")),
        Just("COUNT(*)".to_owned()),
        column().prop_map(|c| format!("MAX_ROWS({c})")),
        timestamp().prop_map(|t| format!("TIME_NEXT(*, {t})")),
        timestamp().prop_map(|t| format!("TIME_PREV_ONLY(*, {t})")),
        (column(), timestamp()).prop_map(|(c, t)| format!("TIME_INTERPOLATED({c}, {t})")),
        (column(), timestamp(), timestamp(), 1..100i64, fixed_unit())
            .prop_map(|(c, a, b, n, unit)| format!("TIME_SAMPLING({c}, {a}, {b}, {n}, {unit})")),
    ]
}

/// A statement the grammar allows: it may still name an unknown column or
/// put a function where the store refuses it, but it is well-formed.
fn statement() -> impl Strategy<Value = String> {
    (
        selection(),
        proptest::option::of(condition()),
        proptest::option::of((column(), any::<bool>())),
        proptest::option::of((0..1000u64, proptest::option::of(0..1000u64))),
    )
        .prop_map(|(selection, filter, order, limit)| {
            let mut text = format!("SELECT {selection}");
            if let Some(filter) = filter {
                text += &format!(" WHERE {filter}");
            }
            if let Some((column, descending)) = order {
                text += &format!(
                    " ORDER BY {column} {}",
                    if descending { "DESC" } else { "ASC" }
                );
            }
            if let Some((count, offset)) = limit {
                text += &format!(" LIMIT {count}");
                if let Some(offset) = offset {
                    text += &format!(" OFFSET {offset}");
                }
            }
            text
        })
}

/// What a token of a statement becomes.
#[derive(Clone, Debug)]
enum Edit {
    Keep,
    Drop,
    Twice,
    Replace(String),
}

fn edit() -> impl Strategy<Value = Edit> {
    let stray = prop_oneof![
        Just("("),
        Just(")"),
        Just(","),
        Just("'"),
        Just("\""),
        Just("-"),
        Just("--"),
        Just("/*"),
        Just("SELECT"),
        Just("WHERE"),
        Just("LIMIT"),
        Just("NOT"),
        Just("9223372036854775808"),
        Just("-9223372036854775808"),
        Just("1e999"),
        Just("TO_TIMESTAMP_MS(-1)"),
        Just("TIMESTAMP('2020-02-30T00:00:00Z')"),
        Just("é"),
    ]
    .prop_map(str::to_owned);
    prop_oneof![
        12 => Just(Edit::Keep),
        1 => Just(Edit::Drop),
        1 => Just(Edit::Twice),
        1 => stray.prop_map(Edit::Replace),
    ]
}

/// A statement with some of its space-separated tokens dropped, doubled or replaced.
fn near_valid_statement() -> impl Strategy<Value = String> {
    (statement(), proptest::collection::vec(edit(), 64)).prop_map(|(text, edits)| {
        let mut out = Vec::new();
        for (token, edit) in text.split(' ').zip(edits.iter().cycle()) {
            match edit {
                Edit::Keep => out.push(token.to_owned()),
                Edit::Drop => {}
                Edit::Twice => out.extend([token.to_owned(), token.to_owned()]),
                Edit::Replace(other) => out.push(other.clone()),
            }
        }
        out.join(" ")
    })
}

// ---------------------------------------------------------------------------
// A real embedded store with rows
// ---------------------------------------------------------------------------

/// One embedded store, with a time series `sensor` of a few rows, shared by
/// every case (opening one per case would dominate the run time).
struct Sensor {
    runtime: tokio::runtime::Runtime,
    store: Arc<EmbeddedStore>,
    _dir: tempfile::TempDir,
}

fn sensor() -> &'static Sensor {
    static SENSOR: OnceLock<Sensor> = OnceLock::new();
    SENSOR.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::TempDir::new().unwrap();
        let store = Arc::new(EmbeddedStore::open(&dir.path().join("db")).unwrap());
        let column = Column::new;
        let info = ContainerInfo {
            name: "sensor".into(),
            kind: ContainerKind::TimeSeries,
            columns: vec![
                column("ts", ColumnType::Timestamp),
                column("temp", ColumnType::Float),
                column("hum", ColumnType::Long),
                column("motion", ColumnType::Bool),
                column("label", ColumnType::String),
            ],
            row_key: true,
        };
        let rows = (0..20i64)
            .map(|i| {
                vec![
                    Value::Timestamp(1_582_046_738_255 + i * 60_000),
                    Value::Float(i as f32 / 3.0),
                    Value::Long(i),
                    Value::Bool(i % 2 == 0),
                    Value::String(format!("row {i}")),
                ]
            })
            .collect();
        runtime.block_on(async {
            store.put_container(info).await.unwrap();
            store.put_rows("sensor", rows).await.unwrap();
        });
        Sensor {
            runtime,
            store,
            _dir: dir,
        }
    })
}

/// Runs `text` on the store: rows, or an error that is the client's.
fn run_on_store(text: &str) {
    let sensor = sensor();
    let result = sensor.runtime.block_on(sensor.store.query("sensor", text));
    match result {
        Ok(_) | Err(StoreError::Query(_) | StoreError::Invalid(_) | StoreError::NotFound(_)) => {}
        Err(other) => panic!("{text:?}: {other:?}"),
    }
}

proptest! {
    #![proptest_config(config(4096))]

    #[test]
    fn arbitrary_text_parses_or_is_a_query_error(text in ".{0,80}") {
        assert_query_error(tql::parse(&text), &text);
    }
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn grammar_statements_parse(text in statement()) {
        if let Err(err) = tql::parse(&text) {
            prop_assert!(false, "{text:?}: {err:?}");
        }
    }

    #[test]
    fn near_valid_statements_parse_or_are_a_query_error(text in near_valid_statement()) {
        assert_query_error(tql::parse(&text), &text);
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn statements_on_the_store_answer_rows_or_a_client_error(
        text in prop_oneof![statement(), near_valid_statement()],
    ) {
        run_on_store(&text);
    }
}

/// Known, not fixed here: a SUM that overflows a LONG is SQLite's "integer
/// overflow", which the embedded store reports as `StoreError::Backend`, so
/// the WebAPI answers 500 and `/fetch?agg=sum` 503 "store unavailable". It is
/// the data's and the query's matter, not the store being down.
#[test]
#[ignore = "an overflowing SUM is reported as a backend error (issue 14 follow-up)"]
fn an_overflowing_sum_is_not_a_backend_error() {
    let sensor = sensor();
    let info = ContainerInfo {
        name: "big".into(),
        kind: ContainerKind::TimeSeries,
        columns: vec![
            Column::new("ts", ColumnType::Timestamp),
            Column::new("n", ColumnType::Long),
        ],
        row_key: true,
    };
    let rows = vec![
        vec![Value::Timestamp(1), Value::Long(i64::MAX)],
        vec![Value::Timestamp(2), Value::Long(1)],
    ];
    let result = sensor.runtime.block_on(async {
        sensor.store.put_container(info).await.unwrap();
        sensor.store.put_rows("big", rows).await.unwrap();
        sensor.store.query("big", "SELECT SUM(n)").await
    });
    assert!(!matches!(result, Err(StoreError::Backend(_))), "{result:?}");
}
