//! The TQL parser: tokens → [`Statement`], by recursive descent with one
//! function per precedence level (OR < AND < NOT < comparison < unary).
//!
//! It owns the grammar of the subset this stack supports and its limits
//! (nesting depth, operator count), folds the functions that depend only on
//! their text (`TO_TIMESTAMP_MS(n)`, `TIMESTAMP('…')`) into literals, and
//! names what it refuses: an unsupported construct by name, a syntax error
//! by byte offset and what was expected there.

use crate::lex::{describe, tokenize, Tok, Token};
use crate::time::parse_timestamp;
use crate::{
    error, unsupported, Aggregate, AggregateFn, CompareOp, Expr, Limit, Literal, Name,
    SelectFunction, SelectKind, Selection, SortKey, Statement, TimeUnit,
};
use cromflag_model::{StoreError, TIMESTAMP_RANGE};

#[cfg(test)]
mod tests;

/// Parses one TQL statement.
pub fn parse(text: &str) -> Result<Statement, StoreError> {
    let tokens = tokenize(text, &mut Vec::new())?;
    Parser {
        tokens,
        pos: 0,
        nesting: 0,
        operators: 0,
    }
    .statement()
}

/// Deepest nesting of parentheses, `NOT`, unary `-` and function arguments.
/// The parser recurses once per level, so this bounds its stack use on inputs
/// such as ten thousand `(`.
const MAX_NESTING: usize = 64;

/// Most operators in one expression. Long `AND`/`OR` chains are parsed by
/// loops, but they build a tree as deep as they are long, which later code
/// (translation, `Drop`) walks recursively, and SQLite refuses expression trees
/// deeper than 1000.
const MAX_OPERATORS: usize = 400;

/// Unquoted words that are never column names; quote such a column ("limit").
const RESERVED: [&str; 14] = [
    "SELECT", "FROM", "WHERE", "ORDER", "BY", "ASC", "DESC", "LIMIT", "OFFSET", "AND", "OR", "NOT",
    "IS", "NULL",
];

struct Parser {
    /// Always ends with `Tok::End`, and `pos` never moves past it.
    tokens: Vec<Token>,
    pos: usize,
    nesting: usize,
    operators: usize,
}

impl Parser {
    // --- token helpers ---

    fn peek(&self) -> &Tok {
        &self.tokens[self.pos].tok
    }

    fn peek_next(&self) -> &Tok {
        let next = (self.pos + 1).min(self.tokens.len() - 1);
        &self.tokens[next].tok
    }

    fn advance(&mut self) -> Tok {
        let tok = self.tokens[self.pos].tok.clone();
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        tok
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Tok::Word(w) if w.eq_ignore_ascii_case(keyword))
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let found = self.is_keyword(keyword);
        if found {
            self.advance();
        }
        found
    }

    fn expect_keyword(&mut self, keyword: &str) -> Result<(), StoreError> {
        if self.eat_keyword(keyword) {
            Ok(())
        } else {
            Err(self.expected(keyword))
        }
    }

    fn offset(&self) -> usize {
        self.tokens[self.pos].offset
    }

    fn is_punct(&self, punct: &str) -> bool {
        matches!(self.peek(), Tok::Punct(p) if *p == punct)
    }

    fn expect_punct(&mut self, punct: &str) -> Result<(), StoreError> {
        if self.eat_punct(punct) {
            Ok(())
        } else {
            Err(self.expected(&format!("'{punct}'")))
        }
    }

    fn eat_punct(&mut self, punct: &str) -> bool {
        let found = matches!(self.peek(), Tok::Punct(p) if *p == punct);
        if found {
            self.advance();
        }
        found
    }

    /// A syntax error at the current token.
    fn expected(&self, what: &str) -> StoreError {
        let token = &self.tokens[self.pos];
        error(format_args!(
            "syntax error at byte {}: expected {what}, found {}",
            token.offset,
            describe(&token.tok)
        ))
    }

    // --- limits ---

    fn enter(&mut self) -> Result<(), StoreError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(error(format_args!(
                "expression is nested too deeply (more than {MAX_NESTING} levels)"
            )));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    fn count_operator(&mut self) -> Result<(), StoreError> {
        self.operators += 1;
        if self.operators > MAX_OPERATORS {
            return Err(error(format_args!(
                "expression has too many operators (more than {MAX_OPERATORS})"
            )));
        }
        Ok(())
    }

    // --- statement ---

    fn statement(mut self) -> Result<Statement, StoreError> {
        if self.is_keyword("EXPLAIN") {
            return Err(unsupported("EXPLAIN"));
        }
        self.expect_keyword("SELECT")?;
        let selection_start = self.offset();
        let selection = self.selection()?;
        let selection_span = selection_start..self.offset();
        let from = if self.eat_keyword("FROM") {
            Some(self.name("a container name")?)
        } else {
            None
        };
        let clauses_start = self.offset();
        let mut filter_span = None;
        let filter = if self.eat_keyword("WHERE") {
            let start = self.offset();
            let filter = self.expr()?;
            filter_span = Some(start..self.offset());
            Some(filter)
        } else {
            None
        };
        let mut order_by = Vec::new();
        if self.eat_keyword("ORDER") {
            self.expect_keyword("BY")?;
            loop {
                let column = self.name("a column name")?;
                let descending = if self.eat_keyword("DESC") {
                    true
                } else {
                    self.eat_keyword("ASC");
                    false
                };
                order_by.push(SortKey { column, descending });
                if !self.eat_punct(",") {
                    break;
                }
            }
        }
        let limit = if self.eat_keyword("LIMIT") {
            let count = self.count("LIMIT")?;
            let offset = if self.eat_keyword("OFFSET") {
                Some(self.count("OFFSET")?)
            } else {
                None
            };
            Some(Limit { count, offset })
        } else if self.is_keyword("OFFSET") {
            return Err(error("OFFSET requires LIMIT"));
        } else {
            None
        };
        self.eat_punct(";");
        if *self.peek() != Tok::End {
            return Err(self.expected("end of query"));
        }
        Ok(Statement {
            selection,
            from,
            filter,
            order_by,
            limit,
            selection_span,
            clauses_start,
            filter_span,
        })
    }

    /// `*`, a column list, aggregations, or one selection function. Plain
    /// columns and aggregations cannot be mixed (there is no GROUP BY), and a
    /// selection function stands alone, as in GridDB.
    fn selection(&mut self) -> Result<Selection, StoreError> {
        if self.eat_punct("*") {
            return Ok(Selection::All);
        }
        let mut columns = Vec::new();
        let mut aggregates = Vec::new();
        loop {
            let offset = self.offset();
            if let (Tok::Word(w), Tok::Punct("(")) = (self.peek(), self.peek_next()) {
                if is_reserved(w) {
                    return Err(self.expected("'*' or a column name"));
                }
                let function = w.to_uppercase();
                self.advance();
                self.advance();
                if let Some(f) = AggregateFn::from_name(&function) {
                    aggregates.push(self.aggregate(f, offset)?);
                } else if function == "TIME_AVG" {
                    return Err(unsupported("aggregation TIME_AVG"));
                } else {
                    let call = self.select_function(&function, offset)?;
                    if columns.is_empty() && aggregates.is_empty() && !self.is_punct(",") {
                        return Ok(Selection::Function(call));
                    }
                    return Err(error(format_args!(
                        "selection function {function} at byte {offset} cannot be combined \
                         with other columns or functions"
                    )));
                }
            } else {
                columns.push(self.name("'*' or a column name")?);
            }
            if !columns.is_empty() && !aggregates.is_empty() {
                return Err(error(format_args!(
                    "at byte {offset}: aggregations cannot be mixed with plain columns"
                )));
            }
            if !self.eat_punct(",") {
                break;
            }
        }
        Ok(if aggregates.is_empty() {
            Selection::Columns(columns)
        } else {
            Selection::Aggregates(aggregates)
        })
    }

    /// The rest of an aggregation whose name and `(` have been read.
    fn aggregate(&mut self, function: AggregateFn, offset: usize) -> Result<Aggregate, StoreError> {
        let column = self.star_or_name()?;
        if column.is_none() && function != AggregateFn::Count {
            return Err(error(format_args!(
                "{}(*) at byte {offset}: only COUNT accepts '*'",
                function.name()
            )));
        }
        self.expect_punct(")")?;
        Ok(Aggregate {
            function,
            column,
            offset,
        })
    }

    /// The rest of a row-selection function whose name and `(` have been read.
    fn select_function(
        &mut self,
        function: &str,
        offset: usize,
    ) -> Result<SelectFunction, StoreError> {
        let kind = match function {
            "MAX_ROWS" | "MIN_ROWS" => SelectKind::ExtremeRows {
                column: self.name("a column name")?,
                max: function == "MAX_ROWS",
            },
            "TIME_NEXT" | "TIME_NEXT_ONLY" | "TIME_PREV" | "TIME_PREV_ONLY" => {
                self.expect_punct("*")?;
                self.expect_punct(",")?;
                SelectKind::TimeNeighbour {
                    time: self.argument()?,
                    next: function.starts_with("TIME_NEXT"),
                    only: function.ends_with("_ONLY"),
                }
            }
            "TIME_INTERPOLATED" => {
                let column = self.name("a column name")?;
                self.expect_punct(",")?;
                SelectKind::TimeInterpolated {
                    column,
                    time: self.argument()?,
                }
            }
            "TIME_SAMPLING" => {
                let column = self.star_or_name()?;
                self.expect_punct(",")?;
                let start = self.argument()?;
                self.expect_punct(",")?;
                let end = self.argument()?;
                self.expect_punct(",")?;
                let interval = self.argument()?;
                self.expect_punct(",")?;
                let unit = self.unit()?;
                if unit.months().is_some() {
                    return Err(error(format_args!(
                        "TIME_SAMPLING at byte {offset} does not accept the unit {unit} \
                         (use DAY, HOUR, MINUTE, SECOND or MILLISECOND)"
                    )));
                }
                SelectKind::TimeSampling {
                    column,
                    start,
                    end,
                    interval,
                    unit,
                }
            }
            _ => return Err(unsupported(format_args!("function {function}"))),
        };
        self.expect_punct(")")?;
        Ok(SelectFunction { kind, offset })
    }

    /// `*` (as `None`) or a column name.
    fn star_or_name(&mut self) -> Result<Option<Name>, StoreError> {
        if self.eat_punct("*") {
            Ok(None)
        } else {
            self.name("'*' or a column name").map(Some)
        }
    }

    /// One function argument: a full expression, counted as one nesting level.
    fn argument(&mut self) -> Result<Expr, StoreError> {
        self.enter()?;
        let arg = self.expr();
        self.leave();
        arg
    }

    /// A time unit keyword (unquoted, case-insensitive).
    fn unit(&mut self) -> Result<TimeUnit, StoreError> {
        let unit = match self.peek() {
            Tok::Word(w) => TimeUnit::ALL
                .into_iter()
                .find(|u| u.name().eq_ignore_ascii_case(w)),
            _ => None,
        };
        match unit {
            Some(unit) => {
                self.advance();
                Ok(unit)
            }
            None => Err(self
                .expected("a time unit (YEAR, MONTH, DAY, HOUR, MINUTE, SECOND or MILLISECOND)")),
        }
    }

    /// A column or container name: a non-reserved word or a quoted name.
    fn name(&mut self, what: &str) -> Result<Name, StoreError> {
        match self.peek() {
            Tok::Word(w) if !is_reserved(w) => {
                let text = w.clone();
                self.advance();
                Ok(Name {
                    text,
                    quoted: false,
                })
            }
            Tok::QuotedName(n) => {
                let text = n.clone();
                self.advance();
                Ok(Name { text, quoted: true })
            }
            _ => Err(self.expected(what)),
        }
    }

    /// The operand of LIMIT or OFFSET.
    fn count(&mut self, clause: &str) -> Result<u64, StoreError> {
        match self.peek() {
            Tok::Int(n) if i64::try_from(*n).is_ok() => {
                let n = *n;
                self.advance();
                Ok(n)
            }
            _ => Err(self.expected(&format!("a non-negative integer after {clause}"))),
        }
    }

    // --- expressions, lowest precedence first ---

    fn expr(&mut self) -> Result<Expr, StoreError> {
        let mut left = self.and()?;
        while self.eat_keyword("OR") {
            let right = self.and()?;
            self.count_operator()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, StoreError> {
        let mut left = self.not()?;
        while self.eat_keyword("AND") {
            let right = self.not()?;
            self.count_operator()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, StoreError> {
        if !self.eat_keyword("NOT") {
            return self.comparison();
        }
        self.enter()?;
        let operand = self.not()?;
        self.leave();
        self.count_operator()?;
        Ok(Expr::Not(Box::new(operand)))
    }

    /// Comparisons and `IS [NOT] NULL`, left-associative (`a = b = c` compares
    /// the BOOL result of `a = b` with `c`, as in SQL).
    fn comparison(&mut self) -> Result<Expr, StoreError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Punct(p) => CompareOp::from_symbol(p),
                _ => None,
            };
            if let Some(op) = op {
                self.advance();
                let right = self.unary()?;
                self.count_operator()?;
                left = Expr::Compare {
                    op,
                    left: Box::new(left),
                    right: Box::new(right),
                };
            } else if self.is_keyword("LIKE")
                || (self.is_keyword("NOT")
                    && matches!(self.peek_next(), Tok::Word(w) if w.eq_ignore_ascii_case("LIKE")))
            {
                let negated = self.eat_keyword("NOT");
                self.advance();
                let pattern = self.unary()?;
                let escape = if self.eat_keyword("ESCAPE") {
                    Some(Box::new(self.unary()?))
                } else {
                    None
                };
                self.count_operator()?;
                left = Expr::Like {
                    expr: Box::new(left),
                    pattern: Box::new(pattern),
                    escape,
                    negated,
                };
            } else if self.eat_keyword("IS") {
                let negated = self.eat_keyword("NOT");
                self.expect_keyword("NULL")?;
                self.count_operator()?;
                left = Expr::IsNull {
                    expr: Box::new(left),
                    negated,
                };
            } else {
                break;
            }
        }
        self.reject_unsupported_operator()?;
        Ok(left)
    }

    /// Called where an operand has ended: if what follows is an operator GridDB
    /// has but we do not, say so by name instead of "expected end of query".
    fn reject_unsupported_operator(&self) -> Result<(), StoreError> {
        match self.peek() {
            Tok::Punct(p @ ("+" | "-" | "*" | "/" | "%")) => {
                Err(unsupported(format_args!("arithmetic operator '{p}'")))
            }
            Tok::Punct("||") => Err(unsupported("string concatenation operator '||'")),
            Tok::Word(w) => {
                let word = w.to_ascii_uppercase();
                let next = match self.peek_next() {
                    Tok::Word(n) => n.to_ascii_uppercase(),
                    _ => String::new(),
                };
                match (word.as_str(), next.as_str()) {
                    ("BETWEEN" | "IN" | "XOR", _) => Err(unsupported(word)),
                    ("NOT", "BETWEEN" | "IN") => Err(unsupported(format!("NOT {next}"))),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    fn unary(&mut self) -> Result<Expr, StoreError> {
        if self.eat_punct("+") {
            return Err(unsupported("unary operator '+'"));
        }
        if !self.eat_punct("-") {
            return self.primary();
        }
        // `-9223372036854775808` only fits an i64 with its sign, so read a
        // directly following integer together with the minus.
        if let Tok::Int(n) = *self.peek() {
            self.advance();
            return i64::try_from(-i128::from(n))
                .map(|n| Expr::Literal(Literal::Integer(n)))
                .map_err(|_| error(format_args!("integer -{n} is out of range")));
        }
        self.enter()?;
        let operand = self.unary()?;
        self.leave();
        // Fold negated literals so `TO_TIMESTAMP_MS(-(5))` and `LIMIT` checks see a number.
        match operand {
            Expr::Literal(Literal::Integer(n)) => n
                .checked_neg()
                .map(|n| Expr::Literal(Literal::Integer(n)))
                .ok_or_else(|| error(format_args!("integer -({n}) is out of range"))),
            Expr::Literal(Literal::Float(f)) => Ok(Expr::Literal(Literal::Float(-f))),
            other => {
                self.count_operator()?;
                Ok(Expr::Neg(Box::new(other)))
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, StoreError> {
        match self.peek().clone() {
            Tok::Int(n) => {
                self.advance();
                i64::try_from(n)
                    .map(|n| Expr::Literal(Literal::Integer(n)))
                    .map_err(|_| error(format_args!("integer {n} is out of range")))
            }
            Tok::Float(f) => {
                self.advance();
                Ok(Expr::Literal(Literal::Float(f)))
            }
            Tok::Str(s) => {
                self.advance();
                Ok(Expr::Literal(Literal::String(s)))
            }
            Tok::Punct("(") => {
                self.advance();
                self.enter()?;
                let inner = self.expr()?;
                self.leave();
                if !self.eat_punct(")") {
                    return Err(self.expected("')'"));
                }
                Ok(inner)
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("NULL") => {
                self.advance();
                Ok(Expr::Literal(Literal::Null))
            }
            Tok::Word(w) if !is_reserved(&w) && matches!(self.peek_next(), Tok::Punct("(")) => {
                let offset = self.tokens[self.pos].offset;
                self.advance();
                self.advance();
                self.call(&w.to_uppercase(), offset)
            }
            Tok::Word(w) if !is_reserved(&w) => {
                self.advance();
                Ok(Expr::Column(Name {
                    text: w,
                    quoted: false,
                }))
            }
            Tok::QuotedName(n) => {
                self.advance();
                Ok(Expr::Column(Name {
                    text: n,
                    quoted: true,
                }))
            }
            _ => Err(self.expected("an expression")),
        }
    }

    /// A function call whose name and `(` have been read.
    fn call(&mut self, function: &str, offset: usize) -> Result<Expr, StoreError> {
        match function {
            "TIMESTAMPADD" | "TIMESTAMP_ADD" | "TIMESTAMPDIFF" | "TIMESTAMP_DIFF" => {
                return self.unit_call(function)
            }
            "TO_TIMESTAMP_MS" | "TIMESTAMP" | "NOW" | "TO_EPOCH_MS" => {}
            _ => return Err(unsupported(format_args!("function {function}"))),
        }
        let mut args = Vec::new();
        if !self.eat_punct(")") {
            self.enter()?;
            loop {
                args.push(self.expr()?);
                if !self.eat_punct(",") {
                    break;
                }
            }
            self.leave();
            if !self.eat_punct(")") {
                return Err(self.expected("',' or ')'"));
            }
        }
        let wrong_arguments = |expects: &str| {
            error(format_args!(
                "function {function} at byte {offset} expects {expects}"
            ))
        };
        if function == "TO_EPOCH_MS" {
            return match args.pop() {
                Some(ts) if args.is_empty() => Ok(Expr::ToEpochMs(Box::new(ts))),
                _ => Err(wrong_arguments("one TIMESTAMP argument")),
            };
        }
        match (function, args.as_slice()) {
            ("NOW", []) => Ok(Expr::Now),
            ("NOW", _) => Err(wrong_arguments("no arguments")),
            ("TO_TIMESTAMP_MS", [Expr::Literal(Literal::Integer(ms))]) => {
                if TIMESTAMP_RANGE.contains(ms) {
                    Ok(Expr::Literal(Literal::Timestamp(*ms)))
                } else {
                    Err(error(format_args!(
                        "TO_TIMESTAMP_MS({ms}) is outside the TIMESTAMP range {}..={} ms",
                        TIMESTAMP_RANGE.start(),
                        TIMESTAMP_RANGE.end()
                    )))
                }
            }
            ("TO_TIMESTAMP_MS", [Expr::Literal(Literal::Float(_))]) => Err(wrong_arguments(
                "an integer literal of epoch milliseconds, not a float",
            )),
            ("TO_TIMESTAMP_MS", _) => {
                Err(wrong_arguments("one integer literal of epoch milliseconds"))
            }
            ("TIMESTAMP", [Expr::Literal(Literal::String(text))]) => {
                parse_timestamp(text).map(|ms| Expr::Literal(Literal::Timestamp(ms)))
            }
            _ => Err(wrong_arguments("one string literal")),
        }
    }

    /// `TIMESTAMPADD(unit, ts, n)` or `TIMESTAMPDIFF(unit, ts1, ts2)` (and their
    /// underscore aliases) after the name and `(`.
    fn unit_call(&mut self, function: &str) -> Result<Expr, StoreError> {
        let unit = self.unit()?;
        self.expect_punct(",")?;
        let first = Box::new(self.argument()?);
        self.expect_punct(",")?;
        let second = Box::new(self.argument()?);
        if !self.eat_punct(")") {
            return Err(self.expected("')'"));
        }
        Ok(if function.contains("ADD") {
            Expr::TimestampAdd {
                unit,
                ts: first,
                amount: second,
            }
        } else {
            Expr::TimestampDiff {
                unit,
                left: first,
                right: second,
            }
        })
    }
}

fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(word))
}
