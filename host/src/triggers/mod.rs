//! Triggers bind outside events to components. Each trigger type lives in its
//! own module and owns its protocol; the runtime and the store know nothing of them.

pub mod cron;
pub mod http;
pub mod mqtt;
