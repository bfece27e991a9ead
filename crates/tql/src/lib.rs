//! TQL, GridDB's query language: parsed, typed and translated, with no I/O,
//! so that whatever runs a query (the embedded store and its WebAPI
//! stand-in, the griddb client's dialect, a store adapter that is itself a
//! component) shares one implementation. No SQLite, no runtime: it compiles
//! for `wasm32-wasip2`.
//!
//! The modules, in the order a query goes through them (the private ones'
//! items are re-exported here, so every path is `cromflag_tql::X`):
//!
//! - `lex`: text → tokens with byte offsets; comments ([`blank_comments`]).
//!   `words` hands those tokens ([`words()`]) to code that must find its way
//!   in a statement's text without parsing it.
//! - `parse`: tokens → [`Statement`] ([`parse()`]), the grammar and its
//!   limits; `TO_TIMESTAMP_MS(n)` and `TIMESTAMP('…')` are folded into
//!   timestamp literals here, `NOW()` stays symbolic ([`Expr::Now`]).
//! - `ast`: the tree ([`Statement`], [`Selection`], [`Expr`], …); syntax
//!   only, no containers.
//! - `time`: the UTC calendar arithmetic of TIMESTAMPADD/TIMESTAMPDIFF
//!   ([`timestamp_add`], [`timestamp_diff`]) and the text of `TIMESTAMP('…')`.
//! - [`types`]: GridDB's type rules against a schema: name resolution,
//!   comparisons, aggregation result types.
//! - [`layout`]: where a SQLite store keeps the catalog and the rows (time
//!   series in one shared table, collections in their own), and the DDL
//!   and writes of that layout.
//! - [`sql`]: a statement against one container → a [`sql::Plan`] of
//!   parameterised SQL for that layout; `NOW()` gets its value here, and
//!   time functions of constants are folded.
//! - [`rows`]: the row functions' logic on rows already read (interpolation,
//!   TIME_SAMPLING, GridDB's sort order and NULL rule, LIMIT on results).
//! - [`exec`]: a plan run over whatever runs SQL for the store
//!   ([`exec::Fetch`]), with stored cells typed back by their columns
//!   ([`exec::value_from_cell`]): the part of running a query every SQLite
//!   store shares.
//! - `testing` (feature `testing`): random TQL-ish text for no-panic tests.
//!
//! The selection is `*`, a column list (our extension), one or more
//! aggregations (several, comma-separated, is our extension), or one GridDB
//! row-selection function (MAX_ROWS, TIME_NEXT, TIME_SAMPLING, …).
//!
//! Every error is a `StoreError::Query` whose message starts with `TQL: ` and
//! either names the unsupported construct or says where parsing stopped (as a
//! byte offset into the query) and what was expected there.

mod ast;
pub mod exec;
pub mod layout;
mod lex;
mod parse;
pub mod rows;
pub mod sql;
mod time;
pub mod types;
mod words;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use ast::{
    Aggregate, AggregateFn, CompareOp, Expr, Limit, Literal, Name, SelectFunction, SelectKind,
    Selection, SortKey, Statement, TimeUnit,
};
pub use lex::blank_comments;
pub use parse::parse;
pub use time::{timestamp_add, timestamp_diff};
pub use words::{words, Word, WordKind};

use cromflag_model::StoreError;
use std::fmt;

/// A query error in this crate's one form: `TQL: ` and the message.
fn error(message: impl fmt::Display) -> StoreError {
    StoreError::Query(format!("TQL: {message}"))
}

fn unsupported(construct: impl fmt::Display) -> StoreError {
    error(format_args!("{construct} is not supported"))
}
