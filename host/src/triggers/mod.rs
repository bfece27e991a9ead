//! Triggers bind outside events to components. Each trigger type lives in its
//! own module and owns its protocol; the runtime and the store know nothing of them.
//! Each says what it calls of a component (its `check`), gathered in `CHECKS`
//! for `runtime::link_all`.

pub mod cron;
pub mod http;
pub mod mqtt;

use crate::runtime::TriggerChecks;

/// What each kind of trigger requires of the components it binds: the
/// export it calls.
pub const CHECKS: TriggerChecks = TriggerChecks {
    http: http::check,
    mqtt: mqtt::check,
    cron: cron::check,
};
