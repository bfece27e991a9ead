//! The translation's cases that need no database: the SQL and parameters it
//! writes, the plans it makes, and every error it reports. Running the SQL
//! on SQLite is tested in the store (`embedded/sql_tests.rs`).

use super::*;
use crate::parse;
use crate::testing::{
    garbage, sample_collection, sample_device as device, XorShift, SAMPLE_STORAGE as STORAGE,
};

/// 2024-01-01T00:00:00Z; NOW() is two hours later.
const BASE: i64 = 1_704_067_200_000;
const HOUR: i64 = 3_600_000;

fn plan_text(tql: &str, info: &ContainerInfo) -> Result<Plan, StoreError> {
    translate(&parse(tql)?, info, &STORAGE, BASE + 2 * HOUR)
}

fn translate_text(tql: &str, info: &ContainerInfo) -> Result<SqlQuery, StoreError> {
    match plan_text(tql, info)? {
        Plan::Rows(query) => Ok(query),
        other => panic!("{tql}: not a row query: {other:?}"),
    }
}

/// Each `(query, needle)`: translating it for `info` fails with a `TQL: `
/// message containing the needle.
fn fails_all(info: &ContainerInfo, cases: &[(&str, &str)]) {
    for &(tql, needle) in cases {
        match plan_text(tql, info) {
            Err(StoreError::Query(m)) => assert!(
                m.starts_with("TQL: ") && m.contains(needle),
                "{tql}: {m:?} lacks {needle:?}"
            ),
            other => panic!("{tql}: expected an error, got {other:?}"),
        }
    }
}

/// Each `(query, SQL, parameters)`: the row query's SQL and its parameters.
fn writes(cases: &[(&str, &str, Vec<SqlParam>)]) {
    for (tql, sql, params) in cases {
        let q = translate_text(tql, &device()).unwrap_or_else(|e| panic!("{tql}: {e}"));
        assert_eq!(&q.sql, sql, "{tql}");
        assert_eq!(&q.params, params, "{tql}");
    }
}

#[test]
fn sql_shape_and_parameters() {
    writes(&[
        (
            "select temperature, label where label = 'a' and month > 1 limit 5 offset 2",
            "SELECT c2, c5 FROM _cromflag_series WHERE container = ? AND ((c5 = ?) AND (c4 > ?)) \
             ORDER BY c0 LIMIT ? OFFSET ?",
            vec![
                SqlParam::Integer(3),
                SqlParam::Text("a".into()),
                SqlParam::Integer(1),
                SqlParam::Integer(5),
                SqlParam::Integer(2),
            ],
        ),
        (
            "select * where motion",
            "SELECT c0, c1, c2, c3, c4, c5 FROM _cromflag_series WHERE container = ? AND (c1 <> 0) \
             ORDER BY c0",
            vec![SqlParam::Integer(3)],
        ),
        (
            "select * order by timestamp desc limit 10",
            "SELECT c0, c1, c2, c3, c4, c5 FROM _cromflag_series WHERE container = ? \
             ORDER BY c0 DESC LIMIT ?",
            vec![SqlParam::Integer(3), SqlParam::Integer(10)],
        ),
    ]);
    let q = translate_text(
        "select temperature, label where label = 'a' and month > 1 limit 5 offset 2",
        &device(),
    )
    .unwrap();
    assert_eq!(q.columns, [2, 5]);
}

#[test]
fn like_patterns_become_exact_globs() {
    // (pattern, escape, GLOB)
    for (pattern, escape, expected) in [
        ("dev%", None, "dev*"),
        ("_a_", None, "?a?"),
        ("a*b?c[d]", None, "a[*]b[?]c[[]d]"),
        ("100\\%", Some('\\'), "100%"),
        ("x!_!!%", Some('!'), "x_!*"),
        ("!*", Some('!'), "[*]"),
    ] {
        assert_eq!(
            like_to_glob(pattern, escape).unwrap(),
            expected,
            "{pattern:?} ESCAPE {escape:?}"
        );
    }
    assert!(like_to_glob("abc!", Some('!')).is_err());
    let q = translate_text("select * where label like 'a%' escape '!'", &device()).unwrap();
    assert!(q.sql.contains("(c5 GLOB ?)"), "{}", q.sql);
    assert_eq!(
        q.params,
        [SqlParam::Integer(3), SqlParam::Text("a*".into())]
    );
}

#[test]
fn now_and_time_functions_are_folded() {
    // NOW() is BASE + 2h here.
    writes(&[
        (
            "select * where timestamp >= TIMESTAMPADD(HOUR, NOW(), -1)",
            "SELECT c0, c1, c2, c3, c4, c5 FROM _cromflag_series WHERE container = ? AND (c0 >= ?) \
             ORDER BY c0",
            vec![SqlParam::Integer(3), SqlParam::Integer(BASE + HOUR)],
        ),
        (
            "select * where TIMESTAMPDIFF(MINUTE, NOW(), TO_TIMESTAMP_MS(0)) > TO_EPOCH_MS(timestamp)",
            "SELECT c0, c1, c2, c3, c4, c5 FROM _cromflag_series WHERE container = ? AND (? > c0) \
             ORDER BY c0",
            vec![
                SqlParam::Integer(3),
                SqlParam::Integer((BASE + 2 * HOUR) / 60_000),
            ],
        ),
    ]);
}

#[test]
fn plan_shapes() {
    let Plan::Aggregates(plan) = plan_text(
        "select count(*), variance(temperature), max(timestamp) where month > 1 limit 3",
        &device(),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(
        plan.sql,
        "WITH f AS (SELECT * FROM _cromflag_series WHERE container = ? AND (c4 > ?)) SELECT COUNT(*), \
         CASE WHEN COUNT(c2) = 1 THEN 0.0 ELSE SUM((c2 - m0.a) * (c2 - m0.a)) / (COUNT(c2) - 1) END, \
         MAX(c0) FROM f, (SELECT AVG(c2) AS a FROM f) AS m0"
    );
    assert_eq!(plan.params, [SqlParam::Integer(3), SqlParam::Integer(1)]);
    assert!(!plan.single);
    assert_eq!(plan.limit.map(|l| l.count), Some(3));
    let types: Vec<ColumnType> = plan.outputs.iter().map(|o| o.column.column_type).collect();
    assert_eq!(
        types,
        [ColumnType::Long, ColumnType::Double, ColumnType::Timestamp]
    );

    let Plan::Select(plan) = plan_text(
        "select time_sampling(temperature, TIMESTAMPADD(HOUR, NOW(), -2), NOW(), 30, MINUTE) where motion order by humidity desc",
        &device(),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(
        plan.function,
        RowFunction::Sampling {
            column: Some(2),
            start: Some(BASE),
            end: Some(BASE + 2 * HOUR),
            step: Some(HOUR / 2),
        }
    );
    assert_eq!(
        plan.filter,
        Some((
            "container = ? AND (c1 <> 0)".to_string(),
            vec![SqlParam::Integer(3)]
        ))
    );
    assert_eq!(plan.table, "_cromflag_series");
    assert_eq!(plan.order_by, [(3, true)]);
    assert_eq!(plan.natural_order, "c0");
}

/// A collection has a table of its own: no container condition, and its
/// natural order (the tie-breaker) is the table's.
#[test]
fn a_collection_reads_its_own_table() {
    let people = sample_collection();
    let storage = Storage::Table { id: 7 };
    let plan = |tql: &str| translate(&parse(tql).unwrap(), &people, &storage, BASE).unwrap();
    let Plan::Rows(q) = plan("select * where age > 3 order by age desc") else {
        panic!()
    };
    assert_eq!(
        q.sql,
        "SELECT c0, c1 FROM \"t_7\" WHERE (c1 > ?) ORDER BY (c1 IS NULL) DESC, c1 DESC, rowid"
    );
    assert_eq!(q.params, [SqlParam::Integer(3)]);
    let Plan::Select(select) = plan("select max_rows(age)") else {
        panic!()
    };
    assert_eq!((select.table.as_str(), select.filter), ("\"t_7\"", None));
    assert_eq!(select.natural_order, "rowid");
}

#[test]
fn unknown_names_and_containers() {
    for (tql, columns) in [
        ("select humidity, TEMPERATURE where Month = 3", vec![3, 2]),
        (
            "select \"label\", label, \"timestamp\" where \"motion\" and \"humidity\" > 50",
            vec![5, 5, 0],
        ),
    ] {
        assert_eq!(
            translate_text(tql, &device()).unwrap().columns,
            columns,
            "{tql}"
        );
    }
    fails_all(
        &device(),
        &[
            (
                "select \"Temperature\"",
                "unknown column \"Temperature\" in container 'device1' (a quoted name must match exactly",
            ),
            (
                "select * where pressure > 1",
                "unknown column pressure in container 'device1'",
            ),
            ("select * where true", "unknown column true"),
            ("select * order by nope", "unknown column nope"),
            (
                "select * from device2",
                "FROM names container 'device2', but the query is on container 'device1'",
            ),
            // A quoted name is only ever looked up, never written into the SQL.
            (
                "select * where \"label\"\"); DROP TABLE t_3; --\" = 'x'",
                "unknown column",
            ),
        ],
    );
}

#[test]
fn literals_are_parameters_never_sql() {
    let tql = "select * where label = 'x'' OR 1=1 --'";
    let q = translate_text(tql, &device()).unwrap();
    assert_eq!(
        q.params,
        [SqlParam::Integer(3), SqlParam::Text("x' OR 1=1 --".into())]
    );
    assert!(!q.sql.contains("OR 1=1"), "{}", q.sql);
}

#[test]
fn type_errors() {
    fails_all(
        &device(),
        &[
            (
                "select * where timestamp > '2024-01-01T00:00:00Z'",
                "binary operation '>' is not defined for TIMESTAMP and STRING (wrap the literal in TIMESTAMP('...'))",
            ),
            (
                "select * where '2024' <= timestamp",
                "'<=' is not defined for STRING and TIMESTAMP (wrap the literal",
            ),
            (
                "select * where label > 'a'",
                "binary operation '>' is not defined for STRING and STRING",
            ),
            (
                "select * where motion < motion",
                "binary operation '<' is not defined for BOOL and BOOL",
            ),
            (
                "select * where (month > 1) >= motion",
                "'>=' is not defined for BOOL and BOOL",
            ),
            (
                "select * where label = 1",
                "'=' is not defined for STRING and LONG",
            ),
            (
                "select * where motion = 1",
                "'=' is not defined for BOOL and LONG",
            ),
            (
                "select * where timestamp = 5",
                "'=' is not defined for TIMESTAMP and LONG",
            ),
            (
                "select * where timestamp > month",
                "'>' is not defined for TIMESTAMP and LONG",
            ),
            (
                "select * where label = now()",
                "'=' is not defined for STRING and TIMESTAMP",
            ),
            (
                "select * where -label = 'a'",
                "unary operator '-' is not defined for STRING",
            ),
            (
                "select * where -timestamp < 0",
                "unary operator '-' is not defined for TIMESTAMP",
            ),
            (
                "select * where temperature",
                "WHERE requires a boolean condition, but column temperature is FLOAT",
            ),
            (
                "select * where 1",
                "WHERE requires a boolean condition, but the literal is LONG",
            ),
            (
                "select * where motion and month",
                "AND requires a boolean condition, but column month is LONG",
            ),
            (
                "select * where label or motion",
                "OR requires a boolean condition, but column label is STRING",
            ),
            (
                "select * where not -temperature",
                "NOT requires a boolean condition, but the expression is FLOAT",
            ),
        ],
    );
}

#[test]
fn blob_columns() {
    let info = ContainerInfo {
        name: "files".into(),
        kind: ContainerKind::Collection,
        columns: vec![
            Column::new("name", ColumnType::String),
            Column::new("data", ColumnType::Blob),
        ],
        row_key: false,
    };
    fails_all(
        &info,
        &[
            (
                "select * where data = data",
                "'=' is not defined for BLOB and BLOB",
            ),
            (
                "select * where data = null",
                "'=' is not defined for BLOB and NULL",
            ),
            (
                "select * order by data",
                "ORDER BY is not defined for BLOB column data",
            ),
        ],
    );
    assert!(translate_text("select * where data is not null", &info).is_ok());
}

/// Whatever parses either translates or fails with a `TQL: ` query error;
/// the store's own garbage test also runs what translates on SQLite.
#[test]
fn garbage_never_panics() {
    let info = device();
    let mut rng = XorShift(0xA076_1D64_78BD_642F);
    for _ in 0..20_000 {
        let text = format!("select * where {}", garbage(&mut rng));
        let Ok(stmt) = parse(&text) else {
            continue;
        };
        match translate(&stmt, &info, &STORAGE, BASE) {
            Ok(_) => {}
            Err(StoreError::Query(m)) => assert!(m.starts_with("TQL: "), "{text:?}: {m}"),
            Err(other) => panic!("{text:?}: {other:?}"),
        }
    }
}
