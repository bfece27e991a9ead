//! The syntax tree of one TQL statement, as [`parse`](crate::parse()) builds it.
//!
//! It records what was written and where (byte offsets, spans), nothing
//! about any container (names are resolved and types checked against a
//! schema in [`types`](crate::types) and [`sql`](crate::sql)), so every
//! backend reads the same tree. Parentheses leave no trace in it; the shape
//! of the tree is the grouping.

use std::fmt;

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
    pub(crate) const ALL: [AggregateFn; 7] = [
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

    pub(crate) fn from_name(upper: &str) -> Option<AggregateFn> {
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
    pub(crate) const ALL: [TimeUnit; 7] = [
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
    pub(crate) fn months(self) -> Option<i64> {
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
    /// Epoch milliseconds within [`TIMESTAMP_RANGE`](cromflag_model::TIMESTAMP_RANGE), from `TO_TIMESTAMP_MS` or `TIMESTAMP`.
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

    pub(crate) fn from_symbol(symbol: &str) -> Option<CompareOp> {
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
