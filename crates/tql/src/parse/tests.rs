//! The parser's cases: what each construct parses to, and what every refusal says.
//! Most are tables of (query, expected) walked by one loop; a failure names its query.

use super::*;

fn message(text: &str) -> String {
    match parse(text) {
        Err(StoreError::Query(m)) => m,
        other => panic!("expected a query error for {text:?}, got {other:?}"),
    }
}

/// Asserts that parsing fails with a `TQL: ` message containing `needle`.
fn fails(text: &str, needle: &str) {
    let m = message(text);
    assert!(m.starts_with("TQL: "), "{m}");
    assert!(m.contains(needle), "{text:?}: {m:?} lacks {needle:?}");
}

/// Each `(query, needle)`: parsing fails with a message containing the needle.
fn fails_all(cases: &[(&str, &str)]) {
    for &(text, needle) in cases {
        fails(text, needle);
    }
}

fn filter(text: &str) -> Expr {
    let stmt = parse(&format!("select * where {text}")).unwrap_or_else(|e| panic!("{text}: {e}"));
    stmt.filter.unwrap()
}

/// Each `(condition, tree)`: `select * where <condition>` parses to the tree.
fn filters(cases: Vec<(&str, Expr)>) {
    for (text, expected) in cases {
        assert_eq!(filter(text), expected, "where {text}");
    }
}

fn name(text: &str, quoted: bool) -> Name {
    Name {
        text: text.into(),
        quoted,
    }
}

fn col(name: &str) -> Box<Expr> {
    Box::new(Expr::Column(Name {
        text: name.into(),
        quoted: false,
    }))
}

fn int(n: i64) -> Box<Expr> {
    Box::new(Expr::Literal(Literal::Integer(n)))
}

fn float(f: f64) -> Expr {
    Expr::Literal(Literal::Float(f))
}

fn string(s: &str) -> Box<Expr> {
    Box::new(Expr::Literal(Literal::String(s.into())))
}

fn cmp(op: CompareOp, left: Box<Expr>, right: Box<Expr>) -> Expr {
    Expr::Compare { op, left, right }
}

#[test]
fn minimal_select() {
    let stmt = parse("select *").unwrap();
    assert_eq!(
        stmt,
        Statement {
            selection: Selection::All,
            from: None,
            filter: None,
            order_by: vec![],
            limit: None,
            selection_span: 7..8,
            clauses_start: 8,
            filter_span: None,
        }
    );
    // Only the spans move with the spacing.
    for (text, selection_span, clauses_start) in
        [("SELECT * ;", 7..9, 9), ("  SeLeCt\n*\t", 9..11, 11)]
    {
        assert_eq!(
            parse(text).unwrap(),
            Statement {
                selection_span,
                clauses_start,
                ..stmt.clone()
            },
            "{text:?}"
        );
    }
    let text = "SELECT * FROM d WHERE a > 1 OR b ORDER BY a LIMIT 2";
    let stmt = parse(text).unwrap();
    assert_eq!(
        &text[stmt.clauses_start..],
        "WHERE a > 1 OR b ORDER BY a LIMIT 2"
    );
    assert_eq!(&text[stmt.filter_span.unwrap()], "a > 1 OR b ");
}

#[test]
fn full_statement() {
    let stmt = parse(
        "SELECT a, \"B c\" FROM device1 WHERE a > 1 ORDER BY a DESC, b ASC, c LIMIT 10 OFFSET 5;",
    )
    .unwrap();
    assert_eq!(
        stmt.selection,
        Selection::Columns(vec![name("a", false), name("B c", true)])
    );
    assert_eq!(stmt.from.unwrap().text, "device1");
    assert_eq!(stmt.filter.unwrap(), cmp(CompareOp::Gt, col("a"), int(1)));
    let order: Vec<_> = stmt
        .order_by
        .iter()
        .map(|k| (k.column.text.as_str(), k.descending))
        .collect();
    assert_eq!(order, [("a", true), ("b", false), ("c", false)]);
    assert_eq!(
        stmt.limit,
        Some(Limit {
            count: 10,
            offset: Some(5)
        })
    );
}

fn agg(function: AggregateFn, column: Option<&str>, offset: usize) -> Aggregate {
    Aggregate {
        function,
        column: column.map(|c| name(c, false)),
        offset,
    }
}

#[test]
fn aggregations() {
    let stmt = parse("select COUNT(*), avg(temperature), Max(\"h\") where a > 1 limit 5").unwrap();
    let Selection::Aggregates(aggs) = &stmt.selection else {
        panic!("{stmt:?}")
    };
    assert_eq!(aggs[0], agg(AggregateFn::Count, None, 7));
    assert_eq!(aggs[1], agg(AggregateFn::Avg, Some("temperature"), 17));
    assert_eq!(aggs[2].function, AggregateFn::Max);
    let labels: Vec<String> = aggs.iter().map(Aggregate::label).collect();
    assert_eq!(labels, ["COUNT(*)", "AVG(temperature)", "MAX(\"h\")"]);
    for (f, name) in [
        (AggregateFn::Sum, "sum"),
        (AggregateFn::Min, "MIN"),
        (AggregateFn::Variance, "variance"),
        (AggregateFn::Stddev, "StdDev"),
        (AggregateFn::Count, "count"),
    ] {
        let stmt = parse(&format!("select {name}(x)")).unwrap();
        assert_eq!(
            stmt.selection,
            Selection::Aggregates(vec![agg(f, Some("x"), 7)]),
            "{name}"
        );
    }
    fails_all(&[
        ("select avg(*)", "AVG(*) at byte 7: only COUNT accepts '*'"),
        (
            "select a, count(*)",
            "at byte 10: aggregations cannot be mixed with plain columns",
        ),
        (
            "select count(*), a",
            "at byte 17: aggregations cannot be mixed with plain columns",
        ),
        ("select sum(a + 1)", "at byte 13: expected ')', found '+'"),
        ("select sum()", "at byte 11: expected '*' or a column name"),
    ]);
}

#[test]
fn selection_functions() {
    let kind = |text: &str| match parse(text).unwrap().selection {
        Selection::Function(f) => f.kind,
        other => panic!("{text}: {other:?}"),
    };
    let ts = |ms| Expr::Literal(Literal::Timestamp(ms));
    for (text, expected) in [
        (
            "select max_rows(t)",
            SelectKind::ExtremeRows {
                column: name("t", false),
                max: true,
            },
        ),
        (
            "select TIME_PREV_ONLY(*, to_timestamp_ms(5))",
            SelectKind::TimeNeighbour {
                time: ts(5),
                next: false,
                only: true,
            },
        ),
        (
            "select time_next(*, now())",
            SelectKind::TimeNeighbour {
                time: Expr::Now,
                next: true,
                only: false,
            },
        ),
        (
            "select time_sampling(*, to_timestamp_ms(1), to_timestamp_ms(9), 2, second)",
            SelectKind::TimeSampling {
                column: None,
                start: ts(1),
                end: ts(9),
                interval: Expr::Literal(Literal::Integer(2)),
                unit: TimeUnit::Second,
            },
        ),
    ] {
        assert_eq!(kind(text), expected, "{text}");
    }
    fails_all(&[
        (
            "select time_sampling(a, now(), now(), 1, MONTH)",
            "TIME_SAMPLING at byte 7 does not accept the unit MONTH",
        ),
        (
            "select time_sampling(a, now(), now(), 1, WEEK)",
            "at byte 41: expected a time unit",
        ),
        (
            "select time_next(a, now())",
            "at byte 17: expected '*', found 'a'",
        ),
        (
            "select max_rows(a), b",
            "selection function MAX_ROWS at byte 7 cannot be combined",
        ),
        (
            "select count(*), max_rows(a)",
            "selection function MAX_ROWS at byte 17 cannot be combined",
        ),
        ("select time_interpolated(a)", "at byte 26: expected ','"),
    ]);
}

#[test]
fn like_and_time_functions() {
    filters(vec![
        (
            "a not like 'x\\_%' escape '\\'",
            Expr::Like {
                expr: col("a"),
                pattern: string("x\\_%"),
                escape: Some(string("\\")),
                negated: true,
            },
        ),
        // LIKE binds tighter than AND and NOT.
        (
            "not a like 'x' and b",
            Expr::And(
                Box::new(Expr::Not(Box::new(Expr::Like {
                    expr: col("a"),
                    pattern: string("x"),
                    escape: None,
                    negated: false,
                }))),
                col("b"),
            ),
        ),
        (
            "timestamp_add(day, ts, -1)",
            Expr::TimestampAdd {
                unit: TimeUnit::Day,
                ts: col("ts"),
                amount: int(-1),
            },
        ),
        (
            "TIMESTAMPDIFF(Month, a, now())",
            Expr::TimestampDiff {
                unit: TimeUnit::Month,
                left: col("a"),
                right: Box::new(Expr::Now),
            },
        ),
        ("to_epoch_ms(a)", Expr::ToEpochMs(col("a"))),
    ]);
    fails_all(&[
        (
            "select * where timestampadd(week, a, 1) > a",
            "at byte 28: expected a time unit",
        ),
        (
            "select * where to_epoch_ms(a, b) > 1",
            "TO_EPOCH_MS at byte 15 expects one TIMESTAMP argument",
        ),
        (
            "select * where timestampadd(day, a) > a",
            "at byte 34: expected ','",
        ),
    ]);
}

#[test]
fn literals() {
    filters(vec![
        ("42", *int(42)),
        ("1.5", float(1.5)),
        (".5", float(0.5)),
        ("2.5e3", float(2500.0)),
        ("-25E-2", float(-0.25)),
        ("-7", *int(-7)),
        ("- -7", *int(7)),
        ("-9223372036854775808", *int(i64::MIN)),
        ("null", Expr::Literal(Literal::Null)),
        ("'it''s'", *string("it's")),
        ("''", *string("")),
    ]);
    fails_all(&[
        ("select * where 9223372036854775808", "out of range"),
        ("select * where 99999999999999999999", "out of range"),
        ("select * where 1e999", "out of range"),
        ("select * where 12abc", "malformed number at byte 15"),
    ]);
}

#[test]
fn names_quoting_and_keywords() {
    filters(vec![
        ("\"say \"\"hi\"\"\"", Expr::Column(name("say \"hi\"", true))),
        // No boolean literals in TQL: `true` is a column.
        ("true", *col("true")),
        // Reserved words need quotes to be columns.
        (
            "\"limit\" = 1",
            cmp(
                CompareOp::Eq,
                Box::new(Expr::Column(name("limit", true))),
                int(1),
            ),
        ),
        ("température", *col("température")),
    ]);
    fails_all(&[
        (
            "select * where limit = 1",
            "expected an expression, found 'limit'",
        ),
        ("select \"\"", "empty quoted name"),
    ]);
}

#[test]
fn comments() {
    let stmt = parse("select * -- all\n where /* multi\nline */ a = 1 -- trailing").unwrap();
    assert_eq!(stmt.filter.unwrap(), cmp(CompareOp::Eq, col("a"), int(1)));
    fails(
        "select * /* open",
        "unterminated /* comment starting at byte 9",
    );
}

#[test]
fn operators_and_spellings() {
    for (text, op) in [
        ("=", CompareOp::Eq),
        ("==", CompareOp::Eq),
        ("<>", CompareOp::Ne),
        ("!=", CompareOp::Ne),
        ("<", CompareOp::Lt),
        ("<=", CompareOp::Le),
        (">", CompareOp::Gt),
        (">=", CompareOp::Ge),
    ] {
        assert_eq!(
            filter(&format!("a {text} 1")),
            cmp(op, col("a"), int(1)),
            "{text}"
        );
    }
    filters(vec![
        (
            "a is null",
            Expr::IsNull {
                expr: col("a"),
                negated: false,
            },
        ),
        (
            "a IS NOT NULL",
            Expr::IsNull {
                expr: col("a"),
                negated: true,
            },
        ),
        (
            "-a < 0",
            cmp(CompareOp::Lt, Box::new(Expr::Neg(col("a"))), int(0)),
        ),
    ]);
}

#[test]
fn precedence() {
    filters(vec![
        // OR < AND < NOT < comparison.
        (
            "a = 1 or b = 2 and not c = 3",
            Expr::Or(
                Box::new(cmp(CompareOp::Eq, col("a"), int(1))),
                Box::new(Expr::And(
                    Box::new(cmp(CompareOp::Eq, col("b"), int(2))),
                    Box::new(Expr::Not(Box::new(cmp(CompareOp::Eq, col("c"), int(3))))),
                )),
            ),
        ),
        // Parentheses override.
        (
            "(a or b) and c",
            Expr::And(Box::new(Expr::Or(col("a"), col("b"))), col("c")),
        ),
        // NOT applies to the whole IS NULL test.
        (
            "not a is null",
            Expr::Not(Box::new(Expr::IsNull {
                expr: col("a"),
                negated: false,
            })),
        ),
    ]);
}

#[test]
fn functions() {
    filters(vec![
        (
            "TO_TIMESTAMP_MS(1700000000000)",
            Expr::Literal(Literal::Timestamp(1_700_000_000_000)),
        ),
        ("now()", Expr::Now),
        ("Now ( )", Expr::Now),
        (
            "timestamp('2024-01-01T00:00:00Z')",
            Expr::Literal(Literal::Timestamp(1_704_067_200_000)),
        ),
    ]);
    fails_all(&[
        ("select * where to_timestamp_ms(1.5)", "not a float"),
        (
            "select * where to_timestamp_ms(-1)",
            "outside the TIMESTAMP range",
        ),
        (
            "select * where to_timestamp_ms(253402300800000)",
            "outside the TIMESTAMP range",
        ),
        (
            "select * where to_timestamp_ms('5')",
            "expects one integer literal",
        ),
        (
            "select * where to_timestamp_ms(a)",
            "expects one integer literal",
        ),
        (
            "select * where now(1)",
            "NOW at byte 15 expects no arguments",
        ),
        ("select * where timestamp(5)", "expects one string literal"),
        (
            "select * where timestamp('a', 'b')",
            "expects one string literal",
        ),
        (
            "select * where now(",
            "expected an expression, found end of query",
        ),
    ]);
}

#[test]
fn limit_and_offset() {
    assert_eq!(
        parse("select * limit 0").unwrap().limit,
        Some(Limit {
            count: 0,
            offset: None
        })
    );
    fails_all(&[
        ("select * offset 5", "OFFSET requires LIMIT"),
        (
            "select * limit -1",
            "expected a non-negative integer after LIMIT, found '-'",
        ),
        (
            "select * limit 1.5",
            "expected a non-negative integer after LIMIT",
        ),
        ("select * limit 1 offset x", "after OFFSET, found 'x'"),
        ("select * limit 9223372036854775808", "after LIMIT"),
    ]);
}

#[test]
fn unsupported_constructs_are_named() {
    fails_all(&[
        ("explain select *", "EXPLAIN is not supported"),
        ("EXPLAIN ANALYZE select *", "EXPLAIN is not supported"),
        (
            "select time_avg(a)",
            "aggregation TIME_AVG is not supported",
        ),
        (
            "select time_window_agg(a)",
            "function TIME_WINDOW_AGG is not supported",
        ),
        (
            "select * where count(*) > 1",
            "function COUNT is not supported",
        ),
        ("select * where abs(a) > 1", "function ABS is not supported"),
        (
            "select * where a between 1 and 2",
            "BETWEEN is not supported",
        ),
        ("select * where a in (1, 2)", "IN is not supported"),
        ("select * where a not in (1, 2)", "NOT IN is not supported"),
        ("select * where a xor b", "XOR is not supported"),
        ("select * where a = 1 xor b = 2", "XOR is not supported"),
        (
            "select * where a + 1 > 2",
            "arithmetic operator '+' is not supported",
        ),
        (
            "select * where a > 1 - 2",
            "arithmetic operator '-' is not supported",
        ),
        (
            "select * where a * 2 > 2",
            "arithmetic operator '*' is not supported",
        ),
        (
            "select * where (a) / 2 > 2",
            "arithmetic operator '/' is not supported",
        ),
        (
            "select * where a % 2 = 0",
            "arithmetic operator '%' is not supported",
        ),
        (
            "select * where a || 'x' = 'y'",
            "operator '||' is not supported",
        ),
        (
            "select * where a > +1",
            "unary operator '+' is not supported",
        ),
    ]);
}

#[test]
fn syntax_errors_say_where_and_what() {
    fails_all(&[
        ("", "at byte 0: expected SELECT, found end of query"),
        (
            "delete from x",
            "at byte 0: expected SELECT, found 'delete'",
        ),
        (
            "select",
            "at byte 6: expected '*' or a column name, found end of query",
        ),
        (
            "select a,",
            "expected '*' or a column name, found end of query",
        ),
        (
            "select * from",
            "expected a container name, found end of query",
        ),
        (
            "select * where",
            "expected an expression, found end of query",
        ),
        ("select * where (a = 1", "expected ')', found end of query"),
        ("select * where a = ", "at byte 19: expected an expression"),
        ("select * where a is 1", "expected NULL, found '1'"),
        ("select * order a", "expected BY, found 'a'"),
        ("select * order by", "expected a column name"),
        (
            "select * order by a + 1",
            "expected end of query, found '+'",
        ),
        (
            "select * limit 1 order by a",
            "expected end of query, found 'order'",
        ),
        (
            "select *; select *",
            "at byte 10: expected end of query, found 'select'",
        ),
        (
            "select * where a = 'open",
            "unterminated string literal starting at byte 19",
        ),
        (
            "select \"open",
            "unterminated quoted name starting at byte 7",
        ),
        (
            "select * where a = #",
            "at byte 19: unexpected character '#'",
        ),
        ("select * where t.a = 1", "expected end of query, found '.'"),
        ("select *, a", "expected end of query, found ','"),
    ]);
}

#[test]
fn nesting_and_size_limits() {
    // (query, what its refusal says; `None`: it parses)
    let cases = [
        (
            format!(
                "select * where {}a{}",
                "(".repeat(10_000),
                ")".repeat(10_000)
            ),
            Some("nested too deeply"),
        ),
        (
            format!("select * where {}a", "not ".repeat(10_000)),
            Some("nested too deeply"),
        ),
        (
            format!("select * where {}a > 0", "- ".repeat(10_000)),
            Some("nested too deeply"),
        ),
        (
            format!("select * where a{}", " or a".repeat(10_000)),
            Some("too many operators"),
        ),
        // Reasonable sizes still parse.
        (
            format!("select * where {}a{}", "(".repeat(50), ")".repeat(50)),
            None,
        ),
        (
            format!("select * where a = 0{}", " or a = 1".repeat(150)),
            None,
        ),
    ];
    for (text, refusal) in &cases {
        match refusal {
            Some(needle) => fails(text, needle),
            None => assert!(parse(text).is_ok(), "{}…", &text[..40]),
        }
    }
}

#[test]
fn garbage_never_panics() {
    use crate::testing::{garbage, XorShift};
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let text = garbage(&mut rng);
        if let Err(e) = parse(&text) {
            assert!(
                matches!(&e, StoreError::Query(m) if m.starts_with("TQL: ")),
                "{e:?}"
            );
        }
    }
    // Every prefix of a valid query, cut at every byte that is a char boundary.
    let query = "select \"é\", b from d where timestamp('2024-01-01T00:00:00Z') < now() and not x is null order by b desc limit 3 offset 1";
    for end in (0..=query.len()).filter(|&i| query.is_char_boundary(i)) {
        let _ = parse(&query[..end]);
    }
}
