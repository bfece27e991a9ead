//! SQL statements: the WebAPI's own checks of a list of them (`sql/ddl`'s
//! test for DDL among them), and the one statement this server runs,
//! `ALTER TABLE <t> ADD [COLUMN] <c> <type>`, read into a table and a column.

use super::{bad_request, Failure};
use crate::store::tql::{self, Word, WordKind};
use crate::store::{Column, ColumnType};
use crate::webapi::wire::{SqlStatement, MAX_QUERIES};

/// Whether a statement is of the kind `sql/ddl` accepts, by the WebAPI's
/// check: lower-cased and trimmed, it matches `(create|alter|drop).*`, where
/// `.` crosses no line break (so a statement of several lines never does).
pub(super) fn is_ddl(stmt: &str) -> bool {
    let text = stmt.trim_matches(|c: char| c <= ' ').to_lowercase();
    ["create", "alter", "drop"]
        .iter()
        .any(|kind| text.starts_with(kind))
        && !text.contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'])
}

/// The SQL endpoints' list checks (ExecuteSqlServiceImpl.validateInput).
pub(super) fn check_statements(statements: &[SqlStatement]) -> Result<(), Failure> {
    if statements.is_empty() {
        return Err(bad_request("List of SQL is empty"));
    }
    if statements.len() > MAX_QUERIES {
        return Err(bad_request("Exceed maximum of SQLs that can be executed"));
    }
    if statements.iter().any(|s| s.stmt.trim().is_empty()) {
        return Err(bad_request("Statement is invalid"));
    }
    Ok(())
}

/// Whether a statement starts with `ALTER`: the one statement served. By its
/// first characters, not its words: a statement that cannot be read is still
/// an ALTER whose item fails (status 0), not a refusal of the whole list.
pub(super) fn is_alter(stmt: &str) -> bool {
    stmt.trim_start()
        .get(..5)
        .is_some_and(|w| w.eq_ignore_ascii_case("alter"))
}

/// `ALTER TABLE <t> ADD [COLUMN] <c> <type>` → the table and the new column;
/// the failure message otherwise. Its words are TQL's (`tql::words`): the
/// keywords unquoted in any case, the names quoted or not, comments skipped;
/// the type is the text after the column name.
pub(super) fn parse_add_column(stmt: &str) -> Result<(String, Column), String> {
    let refused = || {
        "Only `ALTER TABLE <table> ADD [COLUMN] <column> <type>` is supported by this server"
            .to_owned()
    };
    // Comments blanked first, in place (the words' offsets still cut the
    // text), so that the type's text has none either.
    let text = tql::blank_comments(stmt).map_err(|_| refused())?;
    let text = text.trim().trim_end_matches(';');
    let words = tql::words(text).map_err(|_| refused())?;
    let name = |word: &Word| match &word.kind {
        WordKind::Bare(name) | WordKind::Quoted(name) => Ok(name.clone()),
        _ => Err(refused()),
    };
    let [alter, table_keyword, table, add, rest @ ..] = words.as_slice() else {
        return Err(refused());
    };
    if !(alter.is_keyword("ALTER") && table_keyword.is_keyword("TABLE") && add.is_keyword("ADD")) {
        return Err(refused());
    }
    let rest = match rest {
        [column_keyword, rest @ ..] if column_keyword.is_keyword("COLUMN") => rest,
        _ => rest,
    };
    let [column, type_words @ ..] = rest else {
        return Err(refused());
    };
    let type_start = type_words.first().map_or(text.len(), |word| word.offset);
    let type_text = text[type_start..]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase();
    let column_type = sql_type(&type_text)
        .ok_or_else(|| format!("Column type '{type_text}' is not supported by this server"))?;
    Ok((name(table)?, Column::new(name(column)?, column_type)))
}

/// An SQL type name (GridDB's own, or the SQL aliases GridDB accepts).
fn sql_type(text: &str) -> Option<ColumnType> {
    Some(match text {
        "BOOL" | "BOOLEAN" => ColumnType::Bool,
        "STRING" | "VARCHAR" | "CHAR" | "TEXT" => ColumnType::String,
        "BYTE" | "TINYINT" => ColumnType::Byte,
        "SHORT" | "SMALLINT" => ColumnType::Short,
        "INTEGER" | "INT" => ColumnType::Integer,
        "LONG" | "BIGINT" => ColumnType::Long,
        "FLOAT" | "REAL" => ColumnType::Float,
        "DOUBLE" | "DOUBLE PRECISION" => ColumnType::Double,
        "TIMESTAMP" | "TIMESTAMP(3)" => ColumnType::Timestamp,
        "BLOB" => ColumnType::Blob,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_lists_are_checked_like_the_webapi() {
        let statements = |stmts: &[&str]| -> Vec<SqlStatement> {
            stmts
                .iter()
                .map(|s| SqlStatement {
                    stmt: (*s).to_owned(),
                    kind: None,
                })
                .collect()
        };
        let message = |stmts: &[&str]| {
            check_statements(&statements(stmts))
                .unwrap_err()
                .body
                .error_message
        };
        assert_eq!(message(&[]), "List of SQL is empty");
        assert_eq!(
            message(&["select 1"; 11]),
            "Exceed maximum of SQLs that can be executed"
        );
        assert_eq!(message(&["select 1", "  "]), "Statement is invalid");
        assert!(check_statements(&statements(&["select 1"; 10])).is_ok());
        for ddl in [
            "CREATE TABLE t (a INTEGER)",
            "  alter table t add x int;",
            "DROP TABLE t",
            "dropx",
        ] {
            assert!(is_ddl(ddl), "{ddl}");
        }
        for other in ["select 1", "ALTER TABLE t\nADD x INTEGER", "", "-- alter"] {
            assert!(!is_ddl(other), "{other}");
        }
        assert!(is_alter(" ALTER TABLE t ADD x INTEGER") && !is_alter("DROP TABLE t"));
    }

    #[test]
    fn alter_table_add_column_is_the_one_ddl() {
        assert_eq!(
            parse_add_column("ALTER TABLE sensor_a ADD COLUMN humidity DOUBLE").unwrap(),
            (
                "sensor_a".to_owned(),
                Column::new("humidity", ColumnType::Double)
            )
        );
        assert_eq!(
            parse_add_column("alter table \"My\"\"T\" add \"select\" bigint;").unwrap(),
            ("My\"T".to_owned(), Column::new("select", ColumnType::Long))
        );
        assert_eq!(
            parse_add_column("ALTER TABLE t ADD x DOUBLE PRECISION")
                .unwrap()
                .1,
            Column::new("x", ColumnType::Double)
        );
        for bad in [
            "ALTER TABLE t DROP COLUMN x",
            "ALTER TABLE t ADD COLUMN x",
            "ALTER TABLE t ADD COLUMN x GEOMETRY",
            "ALTER TABLE t ADD COLUMN x INTEGER NOT NULL",
            "ALTER TABLE",
            "ALTER TABLE \"t ADD x INTEGER",
        ] {
            assert!(parse_add_column(bad).is_err(), "{bad}");
        }
    }

    /// `ALTER TABLE … ADD [COLUMN] …` read whatever its quotes, case,
    /// whitespace and comments: the table, column and type, or the message.
    #[test]
    fn alter_statements_are_read_through_quotes_case_whitespace_and_comments() {
        let only =
            "Only `ALTER TABLE <table> ADD [COLUMN] <column> <type>` is supported by this server";
        let unsupported = |t: &str| format!("Column type '{t}' is not supported by this server");
        let added = |t: &str, c: &str, ty| Ok((t.to_owned(), Column::new(c, ty)));
        for (stmt, read) in [
            (
                "ALTER TABLE sensor_a ADD COLUMN humidity DOUBLE",
                added("sensor_a", "humidity", ColumnType::Double),
            ),
            // Quoted names: doubled quotes, keywords and spaces in them.
            (
                "alter table \"My\"\"T\" add \"select\" bigint;",
                added("My\"T", "select", ColumnType::Long),
            ),
            (
                "ALTER TABLE t ADD \"COLUMN\" INTEGER",
                added("t", "COLUMN", ColumnType::Integer),
            ),
            (
                "ALTER TABLE t ADD COLUMN \"a b\" timestamp(3)",
                added("t", "a b", ColumnType::Timestamp),
            ),
            ("\"ALTER\" TABLE t ADD x INTEGER", Err(only.to_owned())),
            ("ALTER TABLE \"t ADD x INTEGER", Err(only.to_owned())),
            // Any case, any whitespace, trailing semicolons.
            (
                "  Alter\tTable  t\n ADD   Column x   double \r\n precision ;; ",
                added("t", "x", ColumnType::Double),
            ),
            (
                "ALTER TABLE t ADD x TIMESTAMP (3)",
                Err(unsupported("TIMESTAMP (3)")),
            ),
            ("ALTER TABLE t ADD COLUMN x", Err(unsupported(""))),
            (
                "ALTER TABLE t ADD COLUMN x geometry",
                Err(unsupported("GEOMETRY")),
            ),
            (
                "ALTER TABLE t ADD x INTEGER NOT NULL",
                Err(unsupported("INTEGER NOT NULL")),
            ),
            ("ALTER TABLE t DROP COLUMN x", Err(only.to_owned())),
            ("ALTER TABLE \"t\" ADD", Err(only.to_owned())),
            // Comments, skipped as in TQL.
            (
                "ALTER TABLE t ADD x INTEGER; -- why",
                added("t", "x", ColumnType::Integer),
            ),
            (
                "ALTER /* c */ TABLE t ADD\n-- c\nx INTEGER",
                added("t", "x", ColumnType::Integer),
            ),
            ("ALTER TABLE t ADD x /* INTEGER */", Err(unsupported(""))),
            ("ALTER TABLE t ADD x INTEGER /* why", Err(only.to_owned())),
        ] {
            assert_eq!(parse_add_column(stmt), read, "{stmt}");
        }
    }
}
