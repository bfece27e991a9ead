//! cromflag-tql's TQL → SQL translation run on a real SQLite, laid out as
//! this store lays containers out: the SQL it writes must be valid and
//! select the rows TQL means (three-valued logic, GridDB's NULL ordering,
//! case-sensitive LIKE, the calendar). What needs no database (the SQL
//! text, parameters, plans and errors) is tested in cromflag-tql itself.

use super::codec;
use crate::tql::sql::{add_months_sql, month_diff_sql, translate, Plan, SqlQuery};
use crate::tql::{self, TimeUnit};
use crate::{ContainerInfo, StoreError};
use cromflag_tql::layout::{self, Storage};
use cromflag_tql::testing::{garbage, sample_collection, sample_device as device, XorShift};
use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;

/// 2024-01-01T00:00:00Z; row `i` is `i` hours later.
const BASE: i64 = 1_704_067_200_000;
const HOUR: i64 = 3_600_000;

/// The sample device, laid out as the embedded store lays it out: container
/// 3 in the shared series table, between containers 2 and 4, whose rows
/// (at the same instants, with other values) no query of 3 may see.
/// Row i: (motion, temperature, humidity, month, label).
fn device_db() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(layout::SERIES_DDL).unwrap();
    for index in 1..6 {
        conn.execute_batch(&layout::add_series_column_ddl(index))
            .unwrap();
    }
    type Row = (
        Option<bool>,
        Option<f64>,
        Option<f64>,
        i64,
        Option<&'static str>,
    );
    let rows: [Row; 6] = [
        (Some(true), Some(20.0), Some(40.0), 1, Some("a")),
        (Some(false), Some(22.5), None, 1, None),
        (None, Some(25.0), Some(50.0), 2, Some("b")),
        (Some(true), None, Some(55.0), 2, None),
        (Some(false), Some(18.0), Some(60.0), 3, Some("x")),
        (Some(true), Some(30.0), Some(45.0), 3, Some("x")),
    ];
    let insert = Storage::Series { container: 3 }.insert_sql(6, true);
    // Insert out of order: results must not depend on insertion order.
    for i in [3, 0, 5, 1, 4, 2] {
        let (motion, temperature, humidity, month, label) = rows[i];
        let at = BASE + i as i64 * HOUR;
        conn.execute(
            &insert,
            rusqlite::params![3, at, motion, temperature, humidity, month, label],
        )
        .unwrap();
        for neighbour in [2, 4] {
            conn.execute(
                &insert,
                rusqlite::params![neighbour, at, true, 99.0, 99.0, 99, "x"],
            )
            .unwrap();
        }
    }
    conn
}

fn translate_text(tql: &str, info: &ContainerInfo) -> Result<SqlQuery, StoreError> {
    let storage = Storage::of(3, info.kind);
    match translate(&tql::parse(tql)?, info, &storage, BASE + 2 * HOUR)? {
        Plan::Rows(query) => Ok(query),
        other => panic!("{tql}: not a row query: {other:?}"),
    }
}

/// Runs `query` as the store does (its parameters bound by `codec`).
fn run(conn: &Connection, query: &SqlQuery) -> Vec<Vec<SqlValue>> {
    let mut statement = conn.prepare(&query.sql).unwrap();
    let width = statement.column_count();
    assert_eq!(width, query.columns.len(), "{}", query.sql);
    let params = rusqlite::params_from_iter(query.params.iter().map(codec::param_to_sql));
    statement
        .query_map(params, |row| {
            (0..width).map(|i| row.get::<_, SqlValue>(i)).collect()
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The row numbers (hours after BASE) that `select * …` returns, in order.
fn rows(tql: &str) -> Vec<i64> {
    let query = translate_text(tql, &device()).unwrap_or_else(|e| panic!("{tql}: {e}"));
    run(&device_db(), &query)
        .into_iter()
        .map(|row| match row[0] {
            SqlValue::Integer(ms) => (ms - BASE) / HOUR,
            ref other => panic!("c0 is {other:?}"),
        })
        .collect()
}

/// Each `(query, rows)`: the query selects those rows of the sample device
/// (as hours after BASE), in that order.
fn rows_are(cases: &[(&str, &[i64])]) {
    for &(tql, expected) in cases {
        assert_eq!(rows(tql), expected, "{tql}");
    }
}

#[test]
fn like_matches_case_sensitively() {
    // GLOB is case-sensitive where SQLite's LIKE is not.
    rows_are(&[
        ("select * where label like 'X'", &[]),
        ("select * where label like 'x'", &[4, 5]),
        ("select * where label not like '_'", &[]),
    ]);
}

#[test]
fn time_functions_run() {
    // NOW() is BASE + 2h here.
    rows_are(&[
        (
            "select * where timestamp >= TIMESTAMPADD(HOUR, NOW(), -1)",
            &[1, 2, 3, 4, 5],
        ),
        (
            "select * where TIMESTAMPDIFF(HOUR, timestamp, NOW()) = -1",
            &[1],
        ),
        (
            "select * where TIMESTAMPADD(DAY, timestamp, null) is null",
            &[0, 1, 2, 3, 4, 5],
        ),
    ]);
}

/// SQLite's calendar (used when a column is involved) and chrono's (used
/// when folding constants) must agree on every month end and leap day.
#[test]
fn sql_and_rust_calendars_agree() {
    use chrono::{NaiveDate, NaiveTime};
    let mut instants = Vec::new();
    for year in [1970, 1999, 2000, 2023, 2024, 2100] {
        for month in 1..=12 {
            for day in [1, 15, 28, 29, 30, 31] {
                let Some(date) = NaiveDate::from_ymd_opt(year, month, day) else {
                    continue;
                };
                for (h, m, s, ms) in [(0, 0, 0, 0), (10, 0, 0, 250), (23, 59, 59, 999)] {
                    let time = NaiveTime::from_hms_milli_opt(h, m, s, ms).unwrap();
                    instants.push(date.and_time(time).and_utc().timestamp_millis());
                }
            }
        }
    }
    let conn = Connection::open_in_memory().unwrap();
    let eval = |sql: &str| -> i64 {
        conn.query_row(&format!("SELECT {sql}"), [], |row| row.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    for &t in &instants {
        for months in [-25, -13, -12, -1, 0, 1, 2, 11, 12, 13] {
            let Some(expected) = tql::timestamp_add(TimeUnit::Month, t, months) else {
                continue;
            };
            let sql = add_months_sql(&t.to_string(), &months.to_string(), &t.to_string());
            assert_eq!(eval(&sql), expected, "{t} + {months} months");
        }
    }
    // Every 7th instant against every 5th: thousands of pairs, both signs.
    for &l in instants.iter().step_by(7) {
        for &r in instants.iter().step_by(5) {
            let expected = tql::timestamp_diff(TimeUnit::Month, l, r);
            let sql = month_diff_sql(&l.to_string(), &r.to_string());
            assert_eq!(eval(&sql), expected, "{l} - {r} in months");
        }
    }
}

#[test]
fn everything_in_default_order() {
    rows_are(&[
        ("select *", &[0, 1, 2, 3, 4, 5]),
        ("select * from DEVICE1", &[0, 1, 2, 3, 4, 5]),
        ("select * from \"device1\";", &[0, 1, 2, 3, 4, 5]),
    ]);
}

#[test]
fn timestamp_ranges() {
    rows_are(&[
        // 1704070800000 and 1704078000000 are BASE + 1h and BASE + 3h.
        (
            "select * where timestamp >= TO_TIMESTAMP_MS(1704070800000) \
             and timestamp < to_timestamp_ms(1704078000000)",
            &[1, 2],
        ),
        (
            "select * where timestamp > TIMESTAMP('2024-01-01T02:00:00Z')",
            &[3, 4, 5],
        ),
        (
            "select * where timestamp >= timestamp('2024-01-01T02:00:00.001Z')",
            &[3, 4, 5],
        ),
        // 10:00 in UTC+9 is 01:00Z.
        (
            "select * where timestamp = TIMESTAMP('2024-01-01T10:00:00+09:00')",
            &[1],
        ),
        (
            "select * where timestamp <= TIMESTAMP('2024-01-01T10:00:00+0900')",
            &[0, 1],
        ),
        (
            "select * where timestamp > TIMESTAMP('2023-12-31T23:00:00-05:00')",
            &[5],
        ),
        // NOW() is the `now_ms` passed in: BASE + 2h here.
        ("select * where timestamp < now()", &[0, 1]),
        ("select * where now() = timestamp", &[2]),
    ]);
    assert_eq!(BASE + HOUR, 1_704_070_800_000);
    assert_eq!(BASE + 3 * HOUR, 1_704_078_000_000);
}

#[test]
fn three_valued_logic() {
    rows_are(&[
        // Row 1 has no humidity, row 3 no temperature: their comparisons are NULL.
        ("select * where temperature > 19 and humidity > 41", &[2, 5]),
        (
            "select * where humidity > 41 or temperature > 21",
            &[1, 2, 3, 4, 5],
        ),
        // NOT NULL is NULL, so rows 1 and 3 never pass either way.
        ("select * where not (humidity > 41)", &[0]),
        (
            "select * where not (humidity > 100 or temperature > 100)",
            &[0, 2, 4, 5],
        ),
        // FALSE AND NULL is FALSE; TRUE OR NULL is TRUE.
        (
            "select * where not (temperature > 100 and humidity > 0)",
            &[0, 1, 2, 4, 5],
        ),
        // A NULL literal makes every comparison NULL; WHERE NULL passes nothing.
        ("select * where temperature = null", &[]),
        ("select * where null", &[]),
        ("select * where null or month = 3", &[4, 5]),
        // Mixed numeric widths: LONG column against a float literal.
        ("select * where month < 1.5", &[0, 1]),
        ("select * where -month = -2", &[2, 3]),
        ("select * where month <> 2 and month != 3", &[0, 1]),
        ("select * where month == 2", &[2, 3]),
    ]);
}

#[test]
fn null_tests() {
    rows_are(&[
        ("select * where label is null", &[1, 3]),
        ("select * where label IS NOT NULL", &[0, 2, 4, 5]),
        ("select * where motion is null", &[2]),
        ("select * where not temperature is null", &[0, 1, 2, 4, 5]),
        ("select * where (humidity > 41) is null", &[1]),
    ]);
}

#[test]
fn bool_predicates() {
    rows_are(&[
        ("select * where motion", &[0, 3, 5]),
        ("select * where not motion", &[1, 4]),
        ("select * where motion and label = 'x'", &[5]),
        ("select * where motion or month = 2", &[0, 2, 3, 5]),
        // BOOL = BOOL, where the right side is a comparison's 0/1/NULL.
        ("select * where motion = (temperature > 21)", &[4, 5]),
        ("select * where motion <> motion", &[]),
    ]);
}

#[test]
fn ordering_with_nulls() {
    rows_are(&[
        // NULL is the largest value: last ascending, first descending.
        ("select * order by temperature", &[4, 0, 1, 2, 5, 3]),
        ("select * order by temperature asc", &[4, 0, 1, 2, 5, 3]),
        ("select * order by temperature desc", &[3, 5, 2, 1, 0, 4]),
        // Ties fall back to the timestamp key.
        ("select * order by label", &[0, 2, 4, 5, 1, 3]),
        ("select * order by label desc", &[1, 3, 4, 5, 2, 0]),
        (
            "select * order by month desc, humidity",
            &[5, 4, 2, 3, 0, 1],
        ),
        ("select * order by timestamp desc", &[5, 4, 3, 2, 1, 0]),
        ("select * order by motion", &[1, 4, 0, 3, 5, 2]),
    ]);
}

#[test]
fn limit_and_offset() {
    rows_are(&[
        ("select * limit 2", &[0, 1]),
        ("select * limit 2 offset 1", &[1, 2]),
        ("select * limit 0", &[]),
        ("select * limit 10 offset 5", &[5]),
        (
            "select * where motion order by temperature desc limit 2",
            &[3, 5],
        ),
        ("select * limit 9223372036854775807 offset 4", &[4, 5]),
    ]);
}

#[test]
fn column_lists_and_names() {
    let conn = device_db();
    // (query, result rows)
    let cases = [
        (
            "select humidity, TEMPERATURE where Month = 3",
            vec![
                vec![SqlValue::Real(60.0), SqlValue::Real(18.0)],
                vec![SqlValue::Real(45.0), SqlValue::Real(30.0)],
            ],
        ),
        (
            "select \"label\", label, \"timestamp\" where \"motion\" and \"humidity\" > 50",
            vec![vec![
                SqlValue::Null,
                SqlValue::Null,
                SqlValue::Integer(BASE + 3 * HOUR),
            ]],
        ),
    ];
    for (tql, expected) in cases {
        let q = translate_text(tql, &device()).unwrap();
        assert_eq!(run(&conn, &q), expected, "{tql}");
    }
}

#[test]
fn injection_attempt_matches_nothing() {
    rows_are(&[
        ("select * where label = 'x'' OR 1=1 --'", &[]),
        // The real 'x' rows are there, so the empty result is not an accident.
        ("select * where label = 'x'", &[4, 5]),
    ]);
}

#[test]
fn collections_keep_insertion_order() {
    let info = sample_collection();
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "CREATE TABLE \"t_3\" (c0 TEXT PRIMARY KEY NOT NULL, c1 INTEGER);
         INSERT INTO \"t_3\" VALUES ('carol', 30), ('alice', 30), ('bob', NULL), ('dave', 25);",
    )
    .unwrap();
    let names = |tql: &str| -> Vec<String> {
        let q = translate_text(tql, &info).unwrap();
        run(&conn, &q)
            .into_iter()
            .map(|row| match &row[0] {
                SqlValue::Text(s) => s.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    for (tql, expected) in [
        ("select name", &["carol", "alice", "bob", "dave"][..]),
        ("select * order by age", &["dave", "carol", "alice", "bob"]),
        ("select * order by age desc limit 2", &["bob", "carol"]),
        (
            "select * where age >= 30 order by name",
            &["alice", "carol"],
        ),
    ] {
        assert_eq!(names(tql), expected, "{tql}");
    }
}

#[test]
fn garbage_never_panics() {
    let conn = device_db();
    let info = device();
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    let mut translated = 0;
    for _ in 0..20_000 {
        let text = format!("select * where {}", garbage(&mut rng));
        let Ok(stmt) = tql::parse(&text) else {
            continue;
        };
        match translate(&stmt, &info, &Storage::Series { container: 3 }, BASE) {
            Ok(Plan::Rows(query)) => {
                translated += 1;
                // Whatever translates must also be valid SQL for SQLite.
                let mut statement = conn
                    .prepare(&query.sql)
                    .unwrap_or_else(|e| panic!("{text:?} → {}: {e}", query.sql));
                let params = query.params.iter().map(codec::param_to_sql);
                let rows = statement.query(rusqlite::params_from_iter(params));
                assert!(rows.is_ok(), "{text:?} → {}", query.sql);
            }
            Ok(other) => panic!("{text:?} is not a row query: {other:?}"),
            Err(StoreError::Query(m)) => assert!(m.starts_with("TQL: "), "{m}"),
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(translated > 0, "the generator never produced a valid query");
}

#[test]
fn deepest_accepted_expressions_run() {
    // The parser's limits keep every accepted query within SQLite's own.
    let conn = device_db();
    let nested = format!(
        "select * where {}motion{}",
        "not (".repeat(30),
        ")".repeat(30)
    );
    let q = translate_text(&nested, &device()).unwrap();
    assert_eq!(run(&conn, &q).len(), 3);
    let chain = format!("select * where month = 0{}", " or month = 1".repeat(199));
    let q = translate_text(&chain, &device()).unwrap();
    assert_eq!(run(&conn, &q).len(), 2);
}
