//! Which WebAPI release we talk to, as far as it matters here: whether it has
//! the multi-container put, which SQL endpoint adds a column, and whether a
//! create body may carry `timePrecision`.
//!
//! The WebAPI does not say its version, so `GriddbStore` asks (after
//! `checkConnection`) with requests that change nothing: `PUT containers/rows`
//! with `[]` (5.5 and later answer 200 `[]`), `POST sql/ddl` with `[]` (5.7
//! and later refuse the empty list with their error body) and, without
//! sql/ddl, `POST sql/update` with `[]` (5.5, 5.6 and GridDB Cloud's
//! commercial builds). An endpoint a release lacks is Spring's 404 (its own
//! body, not the WebAPI's) or a proxy's 404/405. This module reads those
//! answers; the requests are `WebApiStore::detect`'s.
//!
//! | Release          | multi-put | SQL to add a column | `timePrecision` |
//! |------------------|-----------|---------------------|-----------------|
//! | 5.7, 5.8         | yes       | `sql/ddl`           | yes             |
//! | 5.5, 5.6         | yes       | `sql/update`        | yes             |
//! | 2.x (2019–2020)  | no        | none                | no (400)        |
//!
//! A self-hosted WebAPI answers either SQL endpoint with 400 "SQL is not
//! active" until its `conf/repository.json` has the cluster's JDBC address;
//! the probe cannot see that (the empty list is refused before SQL is
//! reached), the first column added does.

use crate::client::Answer;
use http::StatusCode;

/// The endpoint that runs `ALTER TABLE … ADD COLUMN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sql {
    /// `POST sql/ddl` (5.7 and later).
    Ddl,
    /// `POST sql/update`, which runs any statement (5.5, 5.6, Cloud).
    Update,
    /// Neither: columns cannot be added.
    Absent,
}

impl Sql {
    /// The endpoint's path below the database.
    pub fn path(self) -> Option<&'static str> {
        match self {
            Sql::Ddl => Some("sql/ddl"),
            Sql::Update => Some("sql/update"),
            Sql::Absent => None,
        }
    }
}

/// What the probes found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// The release range the probes point to, for messages.
    pub release: &'static str,
    /// `PUT containers/rows` exists; else one `PUT containers/<c>/rows` per container.
    pub multi_put: bool,
    pub sql: Sql,
}

/// What one probe's answer says about its endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Present,
    Absent,
    /// 401/403: the credentials, not the endpoint (reported as such).
    Refused,
}

/// Reads a probe's answer. The WebAPI's own error body means the endpoint
/// ran (and refused the empty list); a 404 or 405 without it means no
/// controller maps the path. Anything else came from a mapped endpoint.
pub fn presence(answer: &Answer) -> Presence {
    match answer.status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Presence::Refused,
        status if status.is_success() => Presence::Present,
        _ if answer.webapi_error().is_some() => Presence::Present,
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Presence::Absent,
        _ => Presence::Present,
    }
}

impl Features {
    /// What the endpoints found say. `sql_update` is only asked when
    /// `sql/ddl` is absent (`None` otherwise).
    pub fn from_probes(multi_put: bool, sql_ddl: bool, sql_update: Option<bool>) -> Features {
        let sql_update = sql_update.unwrap_or(false);
        let release = match (multi_put, sql_ddl, sql_update) {
            (_, true, _) => "5.7 or later",
            (true, false, true) => "5.5 or 5.6",
            (true, false, false) => "5.5 or later (no SQL endpoint)",
            (false, false, true) => "a build before 5.5 with sql/update",
            (false, false, false) => "before 5.5 (2.x)",
        };
        let sql = if sql_ddl {
            Sql::Ddl
        } else if sql_update {
            Sql::Update
        } else {
            Sql::Absent
        };
        Features {
            release,
            multi_put,
            sql,
        }
    }

    /// Whether a create body may carry `timePrecision`: the field came with
    /// 5.5, as the multi-put did; older releases refuse an unknown field (400).
    pub fn time_precision(&self) -> bool {
        self.multi_put
    }

    /// What is in use, for the start-up log line.
    pub fn summary(&self) -> String {
        let puts = if self.multi_put {
            "multi-put"
        } else {
            "one put per container"
        };
        let columns = match self.sql {
            Sql::Ddl => "columns added with sql/ddl",
            Sql::Update => "columns added with sql/update",
            Sql::Absent => "no SQL endpoint, so columns cannot be added",
        };
        let precision = if self.time_precision() {
            "timePrecision sent"
        } else {
            "timePrecision not sent"
        };
        format!("{puts}, {columns}, {precision}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::tests::answer;

    const SPRING_404: &str = r#"{"timestamp":"2024-05-01T12:00:00.000+00:00","status":404,"error":"Not Found","path":"/griddb/v2/c/dbs/public/sql/ddl"}"#;

    #[test]
    fn probe_answers_are_read_by_their_body_not_only_their_status() {
        // 5.5+: the multi-put of nothing is done.
        assert_eq!(presence(&answer(200, "[]")), Presence::Present);
        // 5.7+: sql/ddl refuses the empty list with the WebAPI's body.
        let empty_list = r#"{"version":"v2","errorCode":0,"errorMessage":"List of SQL is empty"}"#;
        assert_eq!(presence(&answer(400, empty_list)), Presence::Present);
        // Older: Spring's own 404, or a proxy's.
        assert_eq!(presence(&answer(404, SPRING_404)), Presence::Absent);
        assert_eq!(presence(&answer(405, "")), Presence::Absent);
        assert_eq!(presence(&answer(404, "<html></html>")), Presence::Absent);
        // A 404 in the WebAPI's shape came from a controller.
        let not_existed =
            r#"{"version":"v2","errorCode":0,"errorMessage":"Container not existed"}"#;
        assert_eq!(presence(&answer(404, not_existed)), Presence::Present);
        assert_eq!(presence(&answer(401, "")), Presence::Refused);
    }

    #[test]
    fn releases_are_inferred_from_the_endpoints_found() {
        let latest = Features::from_probes(true, true, None);
        assert_eq!((latest.release, latest.sql), ("5.7 or later", Sql::Ddl));
        assert!(latest.multi_put && latest.time_precision());
        assert_eq!(
            latest.summary(),
            "multi-put, columns added with sql/ddl, timePrecision sent"
        );

        let middle = Features::from_probes(true, false, Some(true));
        assert_eq!((middle.release, middle.sql), ("5.5 or 5.6", Sql::Update));
        assert_eq!(middle.sql.path(), Some("sql/update"));

        let old = Features::from_probes(false, false, Some(false));
        assert_eq!((old.release, old.sql), ("before 5.5 (2.x)", Sql::Absent));
        assert!(!old.multi_put && !old.time_precision());
        assert_eq!(
            old.summary(),
            "one put per container, no SQL endpoint, so columns cannot be added, timePrecision not sent"
        );

        let commercial = Features::from_probes(false, false, Some(true));
        assert_eq!(commercial.sql, Sql::Update);
        assert!(!commercial.time_precision());
    }
}
