//! TQL, GridDB's query language: the lexer, the parser and the AST they produce.
//!
//! A crate of its own, with no I/O, so that whatever runs a query (the
//! host's embedded store and its WebAPI stand-in, the griddb client's
//! dialect, and a store adapter that is itself a component) shares one
//! parser; it compiles for `wasm32-wasip2`.
//!
//! This crate owns the *syntax* of the subset this stack supports and nothing
//! else: it does not know containers, column types or SQLite. Name resolution,
//! type checking and SQL generation live in the host's `store/embedded/sql.rs`, so another
//! backend could reuse the AST as is. The one piece of semantics kept here is
//! the UTC calendar arithmetic of TIMESTAMPADD/TIMESTAMPDIFF
//! ([`timestamp_add`], [`timestamp_diff`]), because it is pure and every
//! backend needs the same answer.
//!
//! The selection is `*`, a column list (our extension), one or more
//! aggregations (several, comma-separated, is our extension), or one GridDB
//! row-selection function (MAX_ROWS, TIME_NEXT, TIME_SAMPLING, …).
//!
//! The two functions that depend only on their text, `TO_TIMESTAMP_MS(n)` and
//! `TIMESTAMP('…')`, are folded into timestamp literals while parsing. `NOW()`
//! stays symbolic ([`Expr::Now`]): its value belongs to the moment the query
//! is translated, which is also where TIMESTAMPADD, TIMESTAMPDIFF and
//! TO_EPOCH_MS of constants are folded.
//!
//! Every error is a `StoreError::Query` whose message starts with `TQL: ` and
//! either names the unsupported construct or says where parsing stopped (as a
//! byte offset into the query) and what was expected there.

use cromflag_model::{ColumnType, StoreError, TIMESTAMP_RANGE};
use std::fmt;

mod words;
pub use words::{words, Word, WordKind};

// ---------------------------------------------------------------------------
// AST
// ---------------------------------------------------------------------------

/// One `SELECT` statement.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub selection: Selection,
    /// The container named by `FROM`, if any; it must be the queried container.
    pub from: Option<Name>,
    /// The `WHERE` condition.
    pub filter: Option<Expr>,
    pub order_by: Vec<SortKey>,
    pub limit: Option<Limit>,
    /// Where the selection is in the query text: from its first byte to the
    /// start of the token after it. A backend that must send GridDB another
    /// selection (the `griddb` one, for our extensions) replaces just this.
    pub selection_span: std::ops::Range<usize>,
    /// Where the clauses after `SELECT … [FROM …]` start (`WHERE`, `ORDER BY`,
    /// `LIMIT`, or the end): a backend that pages a statement keeps the text
    /// before this and writes its own clauses.
    pub clauses_start: usize,
    /// The `WHERE` condition's text, to the start of the token after it.
    pub filter_span: Option<std::ops::Range<usize>>,
}

/// What the statement selects.
#[derive(Clone, Debug, PartialEq)]
pub enum Selection {
    /// `*`: every column, in schema order.
    All,
    /// A column list (our extension to TQL), in result order; never empty.
    Columns(Vec<Name>),
    /// One aggregation (GridDB), or several separated by commas (our
    /// extension); never empty.
    Aggregates(Vec<Aggregate>),
    /// A row-selection or interpolation function (GridDB), alone.
    Function(SelectFunction),
}

/// An aggregation in the selection, such as `AVG(temperature)` or `COUNT(*)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    pub function: AggregateFn,
    /// The argument; `None` for `*` (COUNT only).
    pub column: Option<Name>,
    /// Byte offset of the function name in the query text.
    pub offset: usize,
}

impl Aggregate {
    /// The result column's name: the function in upper case with its argument
    /// as written, e.g. `AVG(temperature)` or `COUNT(*)`.
    pub fn label(&self) -> String {
        match &self.column {
            Some(column) => format!("{}({column})", self.function.name()),
            None => format!("{}(*)", self.function.name()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateFn {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    /// Sample variance (divides by n − 1).
    Variance,
    /// Sample standard deviation.
    Stddev,
}

impl AggregateFn {
    const ALL: [AggregateFn; 7] = [
        AggregateFn::Count,
        AggregateFn::Sum,
        AggregateFn::Avg,
        AggregateFn::Min,
        AggregateFn::Max,
        AggregateFn::Variance,
        AggregateFn::Stddev,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AggregateFn::Count => "COUNT",
            AggregateFn::Sum => "SUM",
            AggregateFn::Avg => "AVG",
            AggregateFn::Min => "MIN",
            AggregateFn::Max => "MAX",
            AggregateFn::Variance => "VARIANCE",
            AggregateFn::Stddev => "STDDEV",
        }
    }

    /// The result type over a column of type `arg` (`None` for `*`), or `None`
    /// where GridDB does not define the function for it: COUNT → LONG; AVG,
    /// VARIANCE, STDDEV → DOUBLE; SUM → LONG over integers, else DOUBLE;
    /// MIN/MAX → the column's own type (numbers and timestamps). Every backend
    /// types its answers by this.
    pub fn result_type(self, arg: Option<ColumnType>) -> Option<ColumnType> {
        let Some(ty) = arg else {
            return (self == AggregateFn::Count).then_some(ColumnType::Long);
        };
        match self {
            AggregateFn::Count => Some(ColumnType::Long),
            AggregateFn::Min | AggregateFn::Max
                if ty.is_numeric() || ty == ColumnType::Timestamp =>
            {
                Some(ty)
            }
            _ if !ty.is_numeric() => None,
            AggregateFn::Sum if ty.is_integral() => Some(ColumnType::Long),
            _ => Some(ColumnType::Double),
        }
    }

    fn from_name(upper: &str) -> Option<AggregateFn> {
        AggregateFn::ALL.into_iter().find(|f| f.name() == upper)
    }
}

/// A row-selection or interpolation function in the selection (§4.5).
#[derive(Clone, Debug, PartialEq)]
pub struct SelectFunction {
    pub kind: SelectKind,
    /// Byte offset of the function name in the query text.
    pub offset: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SelectKind {
    /// `MAX_ROWS(col)` / `MIN_ROWS(col)`: every row holding the extreme value.
    ExtremeRows { column: Name, max: bool },
    /// `TIME_NEXT[_ONLY](*, t)` (`next`) or `TIME_PREV[_ONLY](*, t)`; `only`
    /// excludes a row exactly at `t`.
    TimeNeighbour { time: Expr, next: bool, only: bool },
    /// `TIME_INTERPOLATED(col, t)`.
    TimeInterpolated { column: Name, time: Expr },
    /// `TIME_SAMPLING(col | *, start, end, interval, unit)`; `column` is
    /// `None` for `*`.
    TimeSampling {
        column: Option<Name>,
        start: Expr,
        end: Expr,
        interval: Expr,
        unit: TimeUnit,
    },
}

impl SelectFunction {
    /// The function's name as GridDB spells it, for error messages.
    pub fn name(&self) -> &'static str {
        match &self.kind {
            SelectKind::ExtremeRows { max: true, .. } => "MAX_ROWS",
            SelectKind::ExtremeRows { max: false, .. } => "MIN_ROWS",
            SelectKind::TimeNeighbour {
                next: true,
                only: false,
                ..
            } => "TIME_NEXT",
            SelectKind::TimeNeighbour {
                next: true,
                only: true,
                ..
            } => "TIME_NEXT_ONLY",
            SelectKind::TimeNeighbour {
                next: false,
                only: false,
                ..
            } => "TIME_PREV",
            SelectKind::TimeNeighbour {
                next: false,
                only: true,
                ..
            } => "TIME_PREV_ONLY",
            SelectKind::TimeInterpolated { .. } => "TIME_INTERPOLATED",
            SelectKind::TimeSampling { .. } => "TIME_SAMPLING",
        }
    }
}

/// A unit of TIMESTAMPADD, TIMESTAMPDIFF and TIME_SAMPLING.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnit {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
}

impl TimeUnit {
    const ALL: [TimeUnit; 7] = [
        TimeUnit::Year,
        TimeUnit::Month,
        TimeUnit::Day,
        TimeUnit::Hour,
        TimeUnit::Minute,
        TimeUnit::Second,
        TimeUnit::Millisecond,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TimeUnit::Year => "YEAR",
            TimeUnit::Month => "MONTH",
            TimeUnit::Day => "DAY",
            TimeUnit::Hour => "HOUR",
            TimeUnit::Minute => "MINUTE",
            TimeUnit::Second => "SECOND",
            TimeUnit::Millisecond => "MILLISECOND",
        }
    }

    /// The unit's length in ms; `None` for the calendar units YEAR and MONTH,
    /// whose length varies. (UTC has no daylight saving, so a DAY is fixed.)
    pub fn fixed_ms(self) -> Option<i64> {
        match self {
            TimeUnit::Year | TimeUnit::Month => None,
            TimeUnit::Day => Some(86_400_000),
            TimeUnit::Hour => Some(3_600_000),
            TimeUnit::Minute => Some(60_000),
            TimeUnit::Second => Some(1_000),
            TimeUnit::Millisecond => Some(1),
        }
    }

    /// Months per unit for the calendar units.
    fn months(self) -> Option<i64> {
        match self {
            TimeUnit::Year => Some(12),
            TimeUnit::Month => Some(1),
            _ => None,
        }
    }
}

impl fmt::Display for TimeUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `ms + amount × unit` (TIMESTAMPADD), with UTC calendar arithmetic for YEAR
/// and MONTH: the day of month is clamped to the target month's length, so
/// Jan 31 + 1 MONTH is Feb 28 (or 29). `None` when the result leaves the
/// TIMESTAMP range.
pub fn timestamp_add(unit: TimeUnit, ms: i64, amount: i64) -> Option<i64> {
    let result = match unit.months() {
        None => ms.checked_add(amount.checked_mul(unit.fixed_ms()?)?)?,
        Some(per_unit) => {
            let months = amount.checked_mul(per_unit)?;
            let start = chrono::DateTime::from_timestamp_millis(ms)?;
            let magnitude = chrono::Months::new(u32::try_from(months.unsigned_abs()).ok()?);
            let moved = if months >= 0 {
                start.checked_add_months(magnitude)?
            } else {
                start.checked_sub_months(magnitude)?
            };
            moved.timestamp_millis()
        }
    };
    TIMESTAMP_RANGE.contains(&result).then_some(result)
}

/// `left − right` in whole `unit`s, truncated toward zero (TIMESTAMPDIFF).
/// For YEAR and MONTH it is the largest whole number of units that can be
/// added to `right` (with [`timestamp_add`]) without passing `left`, so the
/// two functions agree: Jan 31 → Feb 29 is one MONTH.
pub fn timestamp_diff(unit: TimeUnit, left: i64, right: i64) -> i64 {
    let Some(per_unit) = unit.months() else {
        // Both are in TIMESTAMP_RANGE, so the difference cannot overflow.
        return (left - right) / unit.fixed_ms().unwrap_or(1);
    };
    let month_index = |ms: i64| {
        use chrono::Datelike;
        let date = chrono::DateTime::from_timestamp_millis(ms).expect("in range");
        i64::from(date.year()) * 12 + i64::from(date.month0())
    };
    let mut months = month_index(left) - month_index(right);
    // The calendar difference can overshoot by one when the day or time of
    // `left` is earlier in its month than `right`'s.
    let lands = |m: i64| timestamp_add(TimeUnit::Month, right, m);
    if months > 0 && lands(months).is_none_or(|t| t > left) {
        months -= 1;
    } else if months < 0 && lands(months).is_none_or(|t| t < left) {
        months += 1;
    }
    months / per_unit
}

/// A column or container name as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    /// The name without quotes (`""` inside quotes already unescaped).
    pub text: String,
    /// Whether it was double-quoted, and so must match exactly rather than
    /// case-insensitively.
    pub quoted: bool,
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.quoted {
            write!(f, "\"{}\"", self.text.replace('"', "\"\""))
        } else {
            f.write_str(&self.text)
        }
    }
}

/// One `ORDER BY` key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortKey {
    pub column: Name,
    pub descending: bool,
}

/// `LIMIT count [OFFSET offset]`. Keeping the offset inside the limit makes
/// "OFFSET without LIMIT" unrepresentable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// At most `i64::MAX`, so it fits an SQL integer.
    pub count: u64,
    /// At most `i64::MAX`.
    pub offset: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Null,
    Integer(i64),
    /// Always finite.
    Float(f64),
    String(String),
    /// Epoch milliseconds within `TIMESTAMP_RANGE`, from `TO_TIMESTAMP_MS` or `TIMESTAMP`.
    Timestamp(i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    /// The canonical (SQL) spelling; `==` and `!=` are read as `=` and `<>`.
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "<>",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }

    /// Whether the operator orders its operands (GridDB defines these for
    /// numbers and timestamps only, not for BOOL or STRING).
    pub fn is_ordering(self) -> bool {
        !matches!(self, CompareOp::Eq | CompareOp::Ne)
    }

    fn from_symbol(symbol: &str) -> Option<CompareOp> {
        Some(match symbol {
            "=" | "==" => CompareOp::Eq,
            "<>" | "!=" => CompareOp::Ne,
            "<" => CompareOp::Lt,
            "<=" => CompareOp::Le,
            ">" => CompareOp::Gt,
            ">=" => CompareOp::Ge,
            _ => return None,
        })
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// An expression. Parentheses leave no trace: the tree shape is the grouping.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Literal(Literal),
    Column(Name),
    /// `NOW()`: the current time in epoch ms, one value for the whole query.
    Now,
    /// Unary minus on something that is not a literal (literals are folded).
    Neg(Box<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare {
        op: CompareOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    IsNull {
        expr: Box<Expr>,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `expr [NOT] LIKE pattern [ESCAPE escape]`.
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        escape: Option<Box<Expr>>,
        negated: bool,
    },
    /// `TIMESTAMPADD(unit, ts, amount)`, alias `TIMESTAMP_ADD`.
    TimestampAdd {
        unit: TimeUnit,
        ts: Box<Expr>,
        amount: Box<Expr>,
    },
    /// `TIMESTAMPDIFF(unit, left, right)`, alias `TIMESTAMP_DIFF`: left − right.
    TimestampDiff {
        unit: TimeUnit,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `TO_EPOCH_MS(ts)`.
    ToEpochMs(Box<Expr>),
}

// ---------------------------------------------------------------------------
// Entry point and limits
// ---------------------------------------------------------------------------

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

fn error(message: impl fmt::Display) -> StoreError {
    StoreError::Query(format!("TQL: {message}"))
}

fn unsupported(construct: impl fmt::Display) -> StoreError {
    error(format_args!("{construct} is not supported"))
}

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// An unquoted word: keyword, column or function name, as written.
    Word(String),
    QuotedName(String),
    Str(String),
    /// Unsigned: the sign is a separate token, and `9223372036854775808` is
    /// only valid after a `-`.
    Int(u64),
    Float(f64),
    /// Punctuation and operators, as written (`==` stays `==`).
    Punct(&'static str),
    End,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    /// Byte offset of the token's first character in the query text.
    offset: usize,
}

/// Two-character operators first, so `<=` is not read as `<` then `=`.
const PUNCTUATION: [&str; 19] = [
    "<=", ">=", "<>", "==", "!=", "||", "*", ",", "(", ")", ";", "=", "<", ">", "-", "+", "/", "%",
    ".",
];

/// `text` with each comment (`--` to the end of its line, `/* … */`) blanked
/// byte for byte, so that spans of `text` (`Statement::filter_span`, …) cut
/// the same pieces from it: a backend that glues pieces of a statement into
/// new ones must not let a line comment swallow what it appends. Comments
/// are found by the lexer, so quotes are honoured as the parser honours them.
pub fn blank_comments(text: &str) -> Result<String, StoreError> {
    let mut comments = Vec::new();
    tokenize(text, &mut comments)?;
    let mut bytes = text.as_bytes().to_vec();
    for comment in comments {
        bytes[comment].fill(b' ');
    }
    Ok(String::from_utf8(bytes).expect("whole characters replaced by spaces"))
}

/// The tokens of `text`; the byte ranges of its comments go to `comments`.
fn tokenize(
    text: &str,
    comments: &mut Vec<std::ops::Range<usize>>,
) -> Result<Vec<Token>, StoreError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    // `i` only ever advances over whole characters, so slicing at it is safe.
    while let Some(c) = text[i..].chars().next() {
        let start = i;
        let rest = &text[i..];
        let tok = if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        } else if rest.starts_with("--") {
            i = rest.find('\n').map_or(text.len(), |n| i + n);
            comments.push(start..i);
            continue;
        } else if let Some(body) = rest.strip_prefix("/*") {
            let end = body.find("*/").ok_or_else(|| {
                error(format_args!(
                    "unterminated /* comment starting at byte {start}"
                ))
            })?;
            i += 2 + end + 2;
            comments.push(start..i);
            continue;
        } else if c == '\'' {
            let (s, end) = quoted(text, i, '\'', "string literal")?;
            i = end;
            Tok::Str(s)
        } else if c == '"' {
            let (s, end) = quoted(text, i, '"', "quoted name")?;
            if s.is_empty() {
                return Err(error(format_args!("empty quoted name at byte {start}")));
            }
            i = end;
            Tok::QuotedName(s)
        } else if c.is_ascii_digit()
            || (c == '.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let (tok, end) = number(text, i)?;
            i = end;
            tok
        } else if c.is_alphabetic() || c == '_' {
            let len = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            i += len;
            Tok::Word(rest[..len].to_string())
        } else if let Some(p) = PUNCTUATION.into_iter().find(|p| rest.starts_with(p)) {
            i += p.len();
            Tok::Punct(p)
        } else {
            return Err(error(format_args!(
                "syntax error at byte {start}: unexpected character {c:?}"
            )));
        };
        tokens.push(Token { tok, offset: start });
    }
    tokens.push(Token {
        tok: Tok::End,
        offset: text.len(),
    });
    Ok(tokens)
}

/// Reads a `quote`-delimited token starting at `start`, where a doubled quote
/// stands for one. Returns the unescaped text and the offset after the closing quote.
fn quoted(
    text: &str,
    start: usize,
    quote: char,
    what: &str,
) -> Result<(String, usize), StoreError> {
    let mut value = String::new();
    let mut i = start + 1;
    loop {
        let Some(n) = text[i..].find(quote) else {
            return Err(error(format_args!(
                "unterminated {what} starting at byte {start}"
            )));
        };
        value.push_str(&text[i..i + n]);
        i += n + 1;
        if text[i..].starts_with(quote) {
            value.push(quote);
            i += 1;
        } else {
            return Ok((value, i));
        }
    }
}

/// Reads `digits [. digits] [e [+-] digits]` (or `.digits …`) starting at `start`.
fn number(text: &str, start: usize) -> Result<(Tok, usize), StoreError> {
    let bytes = text.as_bytes();
    let digits = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut end = digits(start);
    let mut is_float = false;
    if bytes.get(end) == Some(&b'.') {
        is_float = true;
        end = digits(end + 1);
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut exp = end + 1;
        if matches!(bytes.get(exp), Some(b'+' | b'-')) {
            exp += 1;
        }
        let exp_end = digits(exp);
        if exp_end > exp {
            is_float = true;
            end = exp_end;
        }
    }
    let literal = &text[start..end];
    // `12abc` or `1e` is a typo, not the number 12 followed by a column.
    if text[end..]
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
    {
        return Err(error(format_args!("malformed number at byte {start}")));
    }
    let tok = if is_float {
        match literal.parse::<f64>() {
            Ok(f) if f.is_finite() => Tok::Float(f),
            _ => return Err(error(format_args!("number {literal} is out of range"))),
        }
    } else {
        match literal.parse::<u64>() {
            Ok(n) => Tok::Int(n),
            Err(_) => return Err(error(format_args!("integer {literal} is out of range"))),
        }
    };
    Ok((tok, end))
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Word(w) => format!("'{w}'"),
        Tok::QuotedName(n) => format!("\"{n}\""),
        Tok::Str(s) => format!("string '{s}'"),
        Tok::Int(n) => format!("'{n}'"),
        Tok::Float(f) => format!("'{f}'"),
        Tok::Punct(p) => format!("'{p}'"),
        Tok::End => "end of query".to_string(),
    }
}

// ---------------------------------------------------------------------------
// Parser (recursive descent, one function per precedence level)
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// TIMESTAMP('…')
// ---------------------------------------------------------------------------

/// Parses `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm|±hhmm)` to epoch ms,
/// truncating the fraction to milliseconds (TIMESTAMP's precision).
fn parse_timestamp(text: &str) -> Result<i64, StoreError> {
    let invalid = || {
        error(format_args!(
            "TIMESTAMP('{text}') is not a valid timestamp: \
             expected 'YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm|±hhmm)'"
        ))
    };
    let ms = timestamp_millis(text.as_bytes()).ok_or_else(invalid)?;
    if !TIMESTAMP_RANGE.contains(&ms) {
        return Err(error(format_args!(
            "TIMESTAMP('{text}') is outside the TIMESTAMP range (1970-01-01 to 9999-12-31 UTC)"
        )));
    }
    Ok(ms)
}

/// The shape check and arithmetic of [`parse_timestamp`]; `None` for any other shape
/// or an impossible date or time (February 30th, 24:00).
fn timestamp_millis(b: &[u8]) -> Option<i64> {
    // A fixed-width run of ASCII digits as a number.
    let number = |from: usize, len: usize| -> Option<u32> {
        b.get(from..from + len)?.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if !separators.iter().all(|&(i, s)| b.get(i) == Some(&s)) {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);

    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        let digits = b[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        // Keep the first three digits, padded: ".5" is 500 ms, ".123456" is 123 ms.
        let kept = digits.min(3);
        millis = number(i + 1, kept)? * 10u32.pow(3 - kept as u32);
        i += 1 + digits;
    }

    let offset_minutes: i64 = match &b[i..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), ..] => {
            let zone = &b[i + 1..];
            let (hours, minutes) = match zone {
                [_, _, b':', _, _] => (number(i + 1, 2)?, number(i + 4, 2)?),
                [_, _, _, _] => (number(i + 1, 2)?, number(i + 3, 2)?),
                _ => return None,
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let magnitude = i64::from(hours * 60 + minutes);
            if *sign == b'-' {
                -magnitude
            } else {
                magnitude
            }
        }
        _ => return None,
    };

    let local = chrono::NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?
        .and_hms_milli_opt(hour, minute, second, millis)?;
    // Local time = UTC + offset, so UTC = local - offset.
    Some(local.and_utc().timestamp_millis() - offset_minutes * 60_000)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
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

    fn filter(text: &str) -> Expr {
        let stmt = parse(&format!("select * where {text}")).unwrap();
        stmt.filter.unwrap()
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
        assert_eq!(
            parse("SELECT * ;").unwrap(),
            Statement {
                selection_span: 7..9,
                clauses_start: 9,
                ..stmt.clone()
            }
        );
        assert_eq!(
            parse("  SeLeCt\n*\t").unwrap(),
            Statement {
                selection_span: 9..11,
                clauses_start: 11,
                ..stmt
            }
        );
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
            Selection::Columns(vec![
                Name {
                    text: "a".into(),
                    quoted: false
                },
                Name {
                    text: "B c".into(),
                    quoted: true
                },
            ])
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
            column: column.map(|c| Name {
                text: c.into(),
                quoted: false,
            }),
            offset,
        }
    }

    #[test]
    fn aggregations() {
        let stmt =
            parse("select COUNT(*), avg(temperature), Max(\"h\") where a > 1 limit 5").unwrap();
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
                Selection::Aggregates(vec![agg(f, Some("x"), 7)])
            );
        }
        fails("select avg(*)", "AVG(*) at byte 7: only COUNT accepts '*'");
        fails(
            "select a, count(*)",
            "at byte 10: aggregations cannot be mixed with plain columns",
        );
        fails(
            "select count(*), a",
            "at byte 17: aggregations cannot be mixed with plain columns",
        );
        fails("select sum(a + 1)", "at byte 13: expected ')', found '+'");
        fails("select sum()", "at byte 11: expected '*' or a column name");
    }

    #[test]
    fn selection_functions() {
        let kind = |text: &str| match parse(text).unwrap().selection {
            Selection::Function(f) => f.kind,
            other => panic!("{other:?}"),
        };
        let ts = |ms| Expr::Literal(Literal::Timestamp(ms));
        assert_eq!(
            kind("select max_rows(t)"),
            SelectKind::ExtremeRows {
                column: Name {
                    text: "t".into(),
                    quoted: false
                },
                max: true
            }
        );
        assert_eq!(
            kind("select TIME_PREV_ONLY(*, to_timestamp_ms(5))"),
            SelectKind::TimeNeighbour {
                time: ts(5),
                next: false,
                only: true
            }
        );
        assert_eq!(
            kind("select time_next(*, now())"),
            SelectKind::TimeNeighbour {
                time: Expr::Now,
                next: true,
                only: false
            }
        );
        assert_eq!(
            kind("select time_sampling(*, to_timestamp_ms(1), to_timestamp_ms(9), 2, second)"),
            SelectKind::TimeSampling {
                column: None,
                start: ts(1),
                end: ts(9),
                interval: Expr::Literal(Literal::Integer(2)),
                unit: TimeUnit::Second
            }
        );
        fails(
            "select time_sampling(a, now(), now(), 1, MONTH)",
            "TIME_SAMPLING at byte 7 does not accept the unit MONTH",
        );
        fails(
            "select time_sampling(a, now(), now(), 1, WEEK)",
            "at byte 41: expected a time unit",
        );
        fails(
            "select time_next(a, now())",
            "at byte 17: expected '*', found 'a'",
        );
        fails(
            "select max_rows(a), b",
            "selection function MAX_ROWS at byte 7 cannot be combined",
        );
        fails(
            "select count(*), max_rows(a)",
            "selection function MAX_ROWS at byte 17 cannot be combined",
        );
        fails("select time_interpolated(a)", "at byte 26: expected ','");
    }

    #[test]
    fn like_and_time_functions() {
        assert_eq!(
            filter("a not like 'x\\_%' escape '\\'"),
            Expr::Like {
                expr: col("a"),
                pattern: Box::new(Expr::Literal(Literal::String("x\\_%".into()))),
                escape: Some(Box::new(Expr::Literal(Literal::String("\\".into())))),
                negated: true
            }
        );
        // LIKE binds tighter than AND and NOT.
        assert_eq!(
            filter("not a like 'x' and b"),
            Expr::And(
                Box::new(Expr::Not(Box::new(Expr::Like {
                    expr: col("a"),
                    pattern: Box::new(Expr::Literal(Literal::String("x".into()))),
                    escape: None,
                    negated: false
                }))),
                col("b")
            )
        );
        assert_eq!(
            filter("timestamp_add(day, ts, -1)"),
            Expr::TimestampAdd {
                unit: TimeUnit::Day,
                ts: col("ts"),
                amount: int(-1)
            }
        );
        assert_eq!(
            filter("TIMESTAMPDIFF(Month, a, now())"),
            Expr::TimestampDiff {
                unit: TimeUnit::Month,
                left: col("a"),
                right: Box::new(Expr::Now)
            }
        );
        assert_eq!(filter("to_epoch_ms(a)"), Expr::ToEpochMs(col("a")));
        fails(
            "select * where timestampadd(week, a, 1) > a",
            "at byte 28: expected a time unit",
        );
        fails(
            "select * where to_epoch_ms(a, b) > 1",
            "TO_EPOCH_MS at byte 15 expects one TIMESTAMP argument",
        );
        fails(
            "select * where timestampadd(day, a) > a",
            "at byte 34: expected ','",
        );
    }

    #[test]
    fn calendar_arithmetic() {
        let ms = |text: &str| parse_timestamp(text).unwrap();
        let jan31 = ms("2024-01-31T10:00:00.250Z");
        // Clamped to the end of the shorter month (2024 is a leap year).
        assert_eq!(
            timestamp_add(TimeUnit::Month, jan31, 1),
            Some(ms("2024-02-29T10:00:00.250Z"))
        );
        assert_eq!(
            timestamp_add(TimeUnit::Month, jan31, 13),
            Some(ms("2025-02-28T10:00:00.250Z"))
        );
        assert_eq!(
            timestamp_add(TimeUnit::Month, ms("2024-03-31T00:00:00Z"), -1),
            Some(ms("2024-02-29T00:00:00Z"))
        );
        assert_eq!(
            timestamp_add(TimeUnit::Year, ms("2024-02-29T00:00:00Z"), 1),
            Some(ms("2025-02-28T00:00:00Z"))
        );
        assert_eq!(timestamp_add(TimeUnit::Hour, 0, 2), Some(7_200_000));
        assert_eq!(timestamp_add(TimeUnit::Day, 0, -1), None);
        assert_eq!(timestamp_add(TimeUnit::Year, 0, 10_000), None);
        assert_eq!(timestamp_add(TimeUnit::Millisecond, 5, i64::MAX), None);

        // ts1 − ts2, truncated toward zero.
        assert_eq!(timestamp_diff(TimeUnit::Hour, 7_199_999, 0), 1);
        assert_eq!(timestamp_diff(TimeUnit::Hour, 0, 7_199_999), -1);
        assert_eq!(timestamp_diff(TimeUnit::Second, 1_500, 0), 1);
        // Jan 31 + 1 month = Feb 29, so that is one whole month; Feb 28 is not.
        assert_eq!(
            timestamp_diff(TimeUnit::Month, ms("2024-02-29T10:00:00.250Z"), jan31),
            1
        );
        assert_eq!(
            timestamp_diff(TimeUnit::Month, ms("2024-02-28T10:00:00Z"), jan31),
            0
        );
        assert_eq!(
            timestamp_diff(TimeUnit::Month, jan31, ms("2024-03-31T10:00:00.250Z")),
            -2
        );
        assert_eq!(
            timestamp_diff(TimeUnit::Month, jan31, ms("2024-03-31T10:00:00.251Z")),
            -2
        );
        // Mar 31 10:00:00.249 − 2 months is Jan 31 10:00:00.249, before jan31 (.250).
        assert_eq!(
            timestamp_diff(TimeUnit::Month, jan31, ms("2024-03-31T10:00:00.249Z")),
            -1
        );
        assert_eq!(
            timestamp_diff(TimeUnit::Year, ms("2025-01-31T10:00:00.249Z"), jan31),
            0
        );
        assert_eq!(
            timestamp_diff(TimeUnit::Year, ms("2026-01-31T10:00:00.250Z"), jan31),
            2
        );
    }

    #[test]
    fn literals() {
        assert_eq!(*int(42), filter("42"));
        assert_eq!(Expr::Literal(Literal::Float(1.5)), filter("1.5"));
        assert_eq!(Expr::Literal(Literal::Float(0.5)), filter(".5"));
        assert_eq!(Expr::Literal(Literal::Float(2500.0)), filter("2.5e3"));
        assert_eq!(Expr::Literal(Literal::Float(-0.25)), filter("-25E-2"));
        assert_eq!(*int(-7), filter("-7"));
        assert_eq!(*int(7), filter("- -7"));
        assert_eq!(*int(i64::MIN), filter("-9223372036854775808"));
        assert_eq!(Expr::Literal(Literal::Null), filter("null"));
        assert_eq!(
            Expr::Literal(Literal::String("it's".into())),
            filter("'it''s'")
        );
        assert_eq!(Expr::Literal(Literal::String(String::new())), filter("''"));
        fails("select * where 9223372036854775808", "out of range");
        fails("select * where 99999999999999999999", "out of range");
        fails("select * where 1e999", "out of range");
        fails("select * where 12abc", "malformed number at byte 15");
    }

    #[test]
    fn names_quoting_and_keywords() {
        assert_eq!(
            filter("\"say \"\"hi\"\"\""),
            Expr::Column(Name {
                text: "say \"hi\"".into(),
                quoted: true
            })
        );
        // No boolean literals in TQL: `true` is a column.
        assert_eq!(filter("true"), *col("true"));
        // Reserved words need quotes to be columns.
        assert_eq!(
            filter("\"limit\" = 1"),
            cmp(
                CompareOp::Eq,
                Box::new(Expr::Column(Name {
                    text: "limit".into(),
                    quoted: true
                })),
                int(1)
            )
        );
        fails(
            "select * where limit = 1",
            "expected an expression, found 'limit'",
        );
        fails("select \"\"", "empty quoted name");
        assert_eq!(filter("température"), *col("température"));
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
        assert_eq!(
            filter("a is null"),
            Expr::IsNull {
                expr: col("a"),
                negated: false
            }
        );
        assert_eq!(
            filter("a IS NOT NULL"),
            Expr::IsNull {
                expr: col("a"),
                negated: true
            }
        );
        assert_eq!(
            filter("-a < 0"),
            cmp(CompareOp::Lt, Box::new(Expr::Neg(col("a"))), int(0))
        );
    }

    #[test]
    fn precedence() {
        // OR < AND < NOT < comparison.
        let e = filter("a = 1 or b = 2 and not c = 3");
        let expected = Expr::Or(
            Box::new(cmp(CompareOp::Eq, col("a"), int(1))),
            Box::new(Expr::And(
                Box::new(cmp(CompareOp::Eq, col("b"), int(2))),
                Box::new(Expr::Not(Box::new(cmp(CompareOp::Eq, col("c"), int(3))))),
            )),
        );
        assert_eq!(e, expected);
        // Parentheses override.
        let e = filter("(a or b) and c");
        assert_eq!(
            e,
            Expr::And(Box::new(Expr::Or(col("a"), col("b"))), col("c"))
        );
        // NOT applies to the whole IS NULL test.
        assert_eq!(
            filter("not a is null"),
            Expr::Not(Box::new(Expr::IsNull {
                expr: col("a"),
                negated: false
            }))
        );
    }

    #[test]
    fn functions() {
        assert_eq!(
            filter("TO_TIMESTAMP_MS(1700000000000)"),
            Expr::Literal(Literal::Timestamp(1_700_000_000_000))
        );
        assert_eq!(filter("now()"), Expr::Now);
        assert_eq!(filter("Now ( )"), Expr::Now);
        assert_eq!(
            filter("timestamp('2024-01-01T00:00:00Z')"),
            Expr::Literal(Literal::Timestamp(1_704_067_200_000))
        );
        fails("select * where to_timestamp_ms(1.5)", "not a float");
        fails(
            "select * where to_timestamp_ms(-1)",
            "outside the TIMESTAMP range",
        );
        fails(
            "select * where to_timestamp_ms(253402300800000)",
            "outside the TIMESTAMP range",
        );
        fails(
            "select * where to_timestamp_ms('5')",
            "expects one integer literal",
        );
        fails(
            "select * where to_timestamp_ms(a)",
            "expects one integer literal",
        );
        fails(
            "select * where now(1)",
            "NOW at byte 15 expects no arguments",
        );
        fails("select * where timestamp(5)", "expects one string literal");
        fails(
            "select * where timestamp('a', 'b')",
            "expects one string literal",
        );
        fails(
            "select * where now(",
            "expected an expression, found end of query",
        );
    }

    #[test]
    fn timestamp_text() {
        let base = 1_704_067_200_000; // 2024-01-01T00:00:00Z
        for (text, ms) in [
            ("2024-01-01T00:00:00Z", base),
            ("2024-01-01T00:00:00.5Z", base + 500),
            ("2024-01-01T00:00:00.123456Z", base + 123),
            ("2024-01-01T09:00:00+09:00", base),
            ("2024-01-01T09:00:00+0900", base),
            ("2023-12-31T19:30:00-04:30", base),
            ("1970-01-01T00:00:00Z", 0),
            ("9999-12-31T23:59:59.999Z", *TIMESTAMP_RANGE.end()),
        ] {
            assert_eq!(parse_timestamp(text), Ok(ms), "{text}");
        }
        for text in [
            "2024-01-01",
            "2024-01-01T00:00:00",
            "2024-01-01 00:00:00Z",
            "2024-1-01T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:60Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+9:00",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00Zjunk",
            "２024-01-01T00:00:00Z",
            "",
        ] {
            let m = message(&format!("select * where timestamp('{text}')"));
            assert!(
                m.contains(&format!("TIMESTAMP('{text}') is not a valid timestamp")),
                "{m}"
            );
        }
        fails(
            "select * where timestamp('1969-12-31T23:59:59Z')",
            "outside the TIMESTAMP range",
        );
        fails(
            "select * where timestamp('9999-12-31T23:59:59-01:00')",
            "outside the TIMESTAMP range",
        );
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
        fails("select * offset 5", "OFFSET requires LIMIT");
        fails(
            "select * limit -1",
            "expected a non-negative integer after LIMIT, found '-'",
        );
        fails(
            "select * limit 1.5",
            "expected a non-negative integer after LIMIT",
        );
        fails("select * limit 1 offset x", "after OFFSET, found 'x'");
        fails("select * limit 9223372036854775808", "after LIMIT");
    }

    #[test]
    fn unsupported_constructs_are_named() {
        for (text, needle) in [
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
        ] {
            fails(text, needle);
        }
    }

    #[test]
    fn syntax_errors_say_where_and_what() {
        for (text, needle) in [
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
        ] {
            fails(text, needle);
        }
    }

    #[test]
    fn nesting_and_size_limits() {
        let deep = format!(
            "select * where {}a{}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        fails(&deep, "nested too deeply");
        let nots = format!("select * where {}a", "not ".repeat(10_000));
        fails(&nots, "nested too deeply");
        let negs = format!("select * where {}a > 0", "- ".repeat(10_000));
        fails(&negs, "nested too deeply");
        let chain = format!("select * where a{}", " or a".repeat(10_000));
        fails(&chain, "too many operators");
        // Reasonable sizes still parse.
        let ok = format!("select * where {}a{}", "(".repeat(50), ")".repeat(50));
        assert!(parse(&ok).is_ok());
        let ok = format!("select * where a = 0{}", " or a = 1".repeat(150));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn comments_are_blanked_in_place() {
        let text = "a = '--x' /* c */ and \"b--\" = 'it''s' -- end é";
        let blanked = blank_comments(text).unwrap();
        // `/* c */` is 7 bytes, `-- end é` 9 (é is two).
        let expected = format!(
            "a = '--x' {} and \"b--\" = 'it''s' {}",
            " ".repeat(7),
            " ".repeat(9)
        );
        assert_eq!(blanked, expected);
        assert_eq!(blanked.len(), text.len());
        assert!(blank_comments("a /* open").is_err());
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
}

/// Random TQL-ish text for no-panic tests, here and in the host's store
/// (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    /// A small deterministic generator, so the garbage test needs no dependency.
    pub struct XorShift(pub u64);

    impl XorShift {
        pub fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// Random text built from TQL fragments and raw characters, for no-panic tests.
    pub fn garbage(rng: &mut XorShift) -> String {
        const PIECES: [&str; 60] = [
            "like",
            "escape",
            "'%'",
            "'a_'",
            "timestampadd(",
            "timestampdiff(",
            "to_epoch_ms(",
            "day",
            "month",
            "count(",
            "max_rows(",
            "time_sampling(",
            "select",
            "*",
            "from",
            "where",
            "order",
            "by",
            "limit",
            "offset",
            "and",
            "or",
            "not",
            "is",
            "null",
            "asc",
            "desc",
            "(",
            ")",
            ",",
            ";",
            "=",
            "==",
            "<>",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "-",
            "+",
            "'",
            "''",
            "\"",
            "--",
            "/*",
            "*/",
            "1",
            "-0",
            "9223372036854775808",
            "1.5e",
            ".",
            "timestamp(",
            "to_timestamp_ms(",
            "now()",
            "motion",
            "temperature",
            "label",
            "é",
            "\u{0}",
        ];
        let mut text = String::new();
        for _ in 0..rng.below(24) {
            if rng.below(5) == 0 {
                // Any character at all, including multi-byte ones.
                let c = char::from_u32(rng.below(0x800) as u32).unwrap_or('?');
                text.push(c);
            } else {
                text.push_str(PIECES[rng.below(PIECES.len())]);
            }
            if rng.below(2) == 0 {
                text.push(' ');
            }
        }
        text
    }
}
