//! The TQL this server runs for an endpoint: get-rows' two statements
//! (§2.7), and a `/tql` statement with its LIMIT capped or added and the
//! count of its rows (§2.9).

use super::{bad_request, store_failure, Failure};
use crate::store::tql::{self, Selection, Statement, WordKind};
use crate::webapi::wire::MAX_LIMIT;

/// The two TQL texts of get-rows (§2.7), as the WebAPI builds them.
pub(super) fn rows_queries(
    condition: Option<&str>,
    sort: Option<&str>,
    limit: u64,
    offset: u64,
) -> (String, String) {
    let condition = condition.map(str::trim).filter(|c| !c.is_empty());
    let sort = sort.map(str::trim).filter(|s| !s.is_empty());
    let mut filter = String::new();
    if let Some(condition) = condition {
        filter = format!(" where {condition}");
    }
    let mut rows = format!("select *{filter}");
    if let Some(sort) = sort {
        rows.push_str(&format!(" order by {sort}"));
    }
    rows.push_str(&format!(" limit {limit} offset {offset}"));
    (rows, format!("select count(*){filter}"))
}

/// A `/tql` statement made ready to run (§2.9 steps 3–5).
#[derive(Debug)]
pub(super) struct PreparedTql {
    /// The text to run: CR/LF as spaces, LIMIT capped or added.
    pub(super) text: String,
    /// `text`, parsed.
    pub(super) statement: Statement,
    /// The effective LIMIT and OFFSET, as the response reports them.
    pub(super) limit: u64,
    pub(super) offset: u64,
    /// The `count(*)` giving `total`, for row statements (`*` or a column list).
    pub(super) count: Option<String>,
}

pub(super) fn prepare_tql(stmt: &str) -> Result<PreparedTql, Failure> {
    let text = stmt.replace(['\r', '\n'], " ");
    // The WebAPI's own test (Validation.validateGWTQLInput), by the first
    // seven characters: before, and whatever, the TQL parser says.
    if text
        .trim_start()
        .get(..7)
        .is_some_and(|w| w.eq_ignore_ascii_case("explain"))
    {
        return Err(bad_request("'EXPLAIN/ANALYZE' is not supported"));
    }
    let statement = tql::parse(&text).map_err(store_failure)?;
    let span = statement.selection_span.clone();
    let tail = Tail::of(&text, &statement)?;
    let (run, limit, offset) = match statement.limit {
        // A line break, so that a trailing `--` comment cannot swallow it.
        None => (
            format!("{}\nlimit {MAX_LIMIT}", &text[..tail.end]),
            MAX_LIMIT,
            0,
        ),
        Some(l) if l.count > MAX_LIMIT => {
            let offset = l.offset.unwrap_or(0);
            match tail.limit {
                Some(at) => (
                    format!("{}limit {MAX_LIMIT} offset {offset}", &text[..at]),
                    MAX_LIMIT,
                    offset,
                ),
                // Not found (cannot happen for a parsed statement): run it
                // as it is, the rows past MAX_LIMIT are cut afterwards.
                None => (text.clone(), MAX_LIMIT, offset),
            }
        }
        Some(l) => (text.clone(), l.count, l.offset.unwrap_or(0)),
    };
    let count = matches!(statement.selection, Selection::All | Selection::Columns(_)).then(|| {
        format!(
            "{}count(*) {}",
            &text[..span.start],
            &text[span.end..tail.cut]
        )
    });
    let statement = if run == text {
        statement
    } else {
        tql::parse(&run).map_err(store_failure)?
    };
    Ok(PreparedTql {
        text: run,
        statement,
        limit,
        offset,
        count,
    })
}

/// Where a parsed statement's clauses after its condition are: by its
/// spans, where the condition ends; by its words (`tql::words`: never in a
/// literal, a quoted name or a comment), where `LIMIT` and `;` are. LIMIT is
/// a reserved word in TQL, so unquoted it can only start that clause.
#[derive(Debug, PartialEq)]
struct Tail {
    /// The start of `ORDER BY`, `LIMIT` or `;`, whichever comes first (else the end).
    cut: usize,
    /// The start of `LIMIT`.
    limit: Option<usize>,
    /// The statement's end: its `;`, or the end of the text.
    end: usize,
}

impl Tail {
    /// The tail of `statement`, parsed from `text`.
    fn of(text: &str, statement: &Statement) -> Result<Tail, Failure> {
        let words = tql::words(text).map_err(store_failure)?;
        let limit = words.iter().find(|w| w.is_keyword("LIMIT"));
        let semicolon = words.iter().find(|w| w.kind == WordKind::Symbol(";"));
        // A condition, or else the selection and FROM, runs to the next clause.
        let cut = statement
            .filter_span
            .as_ref()
            .map_or(statement.clauses_start, |span| span.end);
        Ok(Tail {
            cut,
            limit: limit.map(|w| w.offset),
            end: semicolon.map_or(text.len(), |w| w.offset),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webapi::server::TQL_ERROR;
    use http::StatusCode;

    #[test]
    fn get_rows_builds_the_documented_tql() {
        assert_eq!(
            rows_queries(Some("temp > 30"), Some("temp desc, ts asc"), 100, 5),
            (
                "select * where temp > 30 order by temp desc, ts asc limit 100 offset 5".to_owned(),
                "select count(*) where temp > 30".to_owned()
            )
        );
        assert_eq!(
            rows_queries(Some("  "), None, 1, 0),
            (
                "select * limit 1 offset 0".to_owned(),
                "select count(*)".to_owned()
            )
        );
    }

    #[test]
    fn the_tail_is_found_outside_quotes_and_comments() {
        let text =
            "select * where a = 'order by limit' and \"limit\" > 1 order by a limit 5 offset 2;";
        let tail = Tail::of(text, &tql::parse(text).unwrap()).unwrap();
        assert_eq!(&text[tail.cut..], "order by a limit 5 offset 2;");
        assert_eq!(&text[tail.limit.unwrap()..], "limit 5 offset 2;");
        assert_eq!(tail.end, text.len() - 1);
        let text = "select * where x_limit > 1 /* limit 3 */ -- limit 4";
        assert_eq!(
            Tail::of(text, &tql::parse(text).unwrap()).unwrap(),
            Tail {
                cut: text.len(),
                limit: None,
                end: text.len()
            }
        );
    }

    #[test]
    fn tql_statements_get_their_limit_and_count() {
        let p = prepare_tql("select * where temp > 21\r\norder by ts desc").unwrap();
        assert_eq!(
            p.text,
            "select * where temp > 21  order by ts desc\nlimit 1000000"
        );
        assert_eq!((p.limit, p.offset), (MAX_LIMIT, 0));
        assert_eq!(
            p.count.as_deref(),
            Some("select count(*) where temp > 21  ")
        );

        let p = prepare_tql("SELECT * FROM s WHERE a > 1 LIMIT 5000000 OFFSET 3;").unwrap();
        assert_eq!(p.text, "SELECT * FROM s WHERE a > 1 limit 1000000 offset 3");
        assert_eq!((p.limit, p.offset), (MAX_LIMIT, 3));
        assert_eq!(
            p.count.as_deref(),
            Some("SELECT count(*) FROM s WHERE a > 1 ")
        );

        let p = prepare_tql("select * limit 10").unwrap();
        assert_eq!(
            (p.text.as_str(), p.limit, p.offset),
            ("select * limit 10", 10, 0)
        );

        let p = prepare_tql("select * -- all").unwrap();
        assert_eq!(p.text, "select * -- all\nlimit 1000000");
        assert_eq!(p.statement.limit.map(|l| l.count), Some(MAX_LIMIT));

        let p = prepare_tql("select avg(temp);").unwrap();
        assert_eq!(p.text, "select avg(temp)\nlimit 1000000");
        assert!(p.count.is_none());
        assert!(matches!(p.statement.selection, Selection::Aggregates(_)));

        let p = prepare_tql("select a, b where a > 1 order by b").unwrap();
        assert_eq!(p.count.as_deref(), Some("select count(*) where a > 1 "));

        let p = prepare_tql("select TIME_SAMPLING(*, TIMESTAMP('2024-05-01T00:00:00Z'), TIMESTAMP('2024-05-01T01:00:00Z'), 1, MINUTE)").unwrap();
        assert!(p.count.is_none());
        assert!(matches!(p.statement.selection, Selection::Function(_)));

        let explain = prepare_tql("  explain select *").unwrap_err();
        assert_eq!(explain.status, StatusCode::BAD_REQUEST);
        assert_eq!(explain.body.error_code, 0);
        let syntax = prepare_tql("select * where").unwrap_err();
        assert_eq!(
            (syntax.status, syntax.body.error_code),
            (StatusCode::BAD_REQUEST, TQL_ERROR)
        );
    }

    /// What a `/tql` statement runs as, whatever comments, quotes, case and
    /// whitespace it has around its clauses: the text run, the LIMIT and
    /// OFFSET answered, and the count of its rows.
    #[test]
    fn tql_clauses_are_found_through_comments_quotes_case_and_whitespace() {
        for (stmt, run, limit, offset, count) in [
            // Clause words inside string literals and quoted names.
            (
                "select * where a = 'order by limit' and \"limit\" > 1 order by a limit 5 offset 2;",
                "select * where a = 'order by limit' and \"limit\" > 1 order by a limit 5 offset 2;",
                5,
                2,
                Some("select count(*) where a = 'order by limit' and \"limit\" > 1 "),
            ),
            (
                "select * where s = 'a;b' ;",
                "select * where s = 'a;b' \nlimit 1000000",
                MAX_LIMIT,
                0,
                Some("select count(*) where s = 'a;b' "),
            ),
            (
                "select * where s = 'ä''--ö' limit 2000000 offset 1",
                "select * where s = 'ä''--ö' limit 1000000 offset 1",
                MAX_LIMIT,
                1,
                Some("select count(*) where s = 'ä''--ö' "),
            ),
            // Clause words inside comments; a comment between ORDER and BY.
            (
                "select * /* limit 3 */ where x_limit > 1 -- limit 4",
                "select * /* limit 3 */ where x_limit > 1 -- limit 4\nlimit 1000000",
                MAX_LIMIT,
                0,
                Some("select count(*) where x_limit > 1 -- limit 4"),
            ),
            (
                "select * order /* x */ by a limit 2000000",
                "select * order /* x */ by a limit 1000000 offset 0",
                MAX_LIMIT,
                0,
                Some("select count(*) "),
            ),
            // A line break is a space: the comment then runs to the end.
            (
                "select * where a > 1 -- no limit\nlimit 2000000",
                "select * where a > 1 -- no limit limit 2000000\nlimit 1000000",
                MAX_LIMIT,
                0,
                Some("select count(*) where a > 1 -- no limit limit 2000000"),
            ),
            // Any case; what follows the `;` is dropped with it.
            (
                "SELECT * WHERE a > 1 ORDER BY a DESC LIMIT 2000000",
                "SELECT * WHERE a > 1 ORDER BY a DESC limit 1000000 offset 0",
                MAX_LIMIT,
                0,
                Some("SELECT count(*) WHERE a > 1 "),
            ),
            (
                "select * from s oRdEr bY \"order\" LiMiT 3000000 OfFsEt 7 ;  -- c",
                "select * from s oRdEr bY \"order\" limit 1000000 offset 7",
                MAX_LIMIT,
                7,
                Some("select count(*) from s "),
            ),
            (
                "select max(a) /* max */ ; -- c",
                "select max(a) /* max */ \nlimit 1000000",
                MAX_LIMIT,
                0,
                None,
            ),
            // Tabs, line breaks, runs of spaces.
            (
                "select\t*\nwhere a > 1\r\n\torder by a\nlimit 10",
                "select\t* where a > 1  \torder by a limit 10",
                10,
                0,
                Some("select\tcount(*) where a > 1  \t"),
            ),
            (
                "select a,b   where a > 1   order   by b   limit   2000000   offset   4  ",
                "select a,b   where a > 1   order   by b   limit 1000000 offset 4",
                MAX_LIMIT,
                4,
                Some("select count(*) where a > 1   "),
            ),
        ] {
            let p = prepare_tql(stmt).unwrap();
            assert_eq!(
                (p.text.as_str(), p.limit, p.offset, p.count.as_deref()),
                (run, limit, offset, count),
                "{stmt}"
            );
        }
    }
}
