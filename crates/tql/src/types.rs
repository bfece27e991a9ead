//! GridDB's type rules, against one container's schema: which column a name
//! refers to, which types a comparison accepts, what type an aggregation
//! answers.
//!
//! Every backend answers by these rules (the embedded store's translation,
//! the griddb client's retyping of answers), so they live once, here.

use crate::{AggregateFn, CompareOp, Name};
use cromflag_model::{ColumnType, ContainerInfo, StoreError};

/// The position of the column a TQL name refers to: a quoted name matches
/// exactly, an unquoted one regardless of case (as in GridDB).
pub fn resolve_column(info: &ContainerInfo, name: &Name) -> Result<usize, StoreError> {
    let found = if name.quoted {
        info.columns.iter().position(|c| c.name == name.text)
    } else {
        info.column_index(&name.text)
    };
    found.ok_or_else(|| {
        let hint = if name.quoted && info.column_index(&name.text).is_some() {
            " (a quoted name must match exactly, including case)"
        } else {
            ""
        };
        crate::error(format_args!(
            "unknown column {name} in container '{}'{hint}",
            info.name
        ))
    })
}

impl AggregateFn {
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
}

/// GridDB's comparison rules: BOOL–BOOL, STRING–STRING, numeric–numeric (any
/// widths) and TIMESTAMP–TIMESTAMP, with `<`, `<=`, `>`, `>=` only for numbers
/// and timestamps. NULL compares with anything but BLOB, which never compares.
pub fn comparable(op: CompareOp, left: Option<ColumnType>, right: Option<ColumnType>) -> bool {
    use ColumnType::{Blob, Bool, String, Timestamp};
    match (left, right) {
        (Some(Blob), _) | (_, Some(Blob)) => false,
        (None, _) | (_, None) => true,
        (Some(l), Some(r)) if l.is_numeric() && r.is_numeric() => true,
        (Some(Timestamp), Some(Timestamp)) => true,
        (Some(l @ (Bool | String)), Some(r)) if l == r => !op.is_ordering(),
        _ => false,
    }
}
