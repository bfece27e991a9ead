//! Access: who may call what, over HTTP and MQTT.
//!
//! Devices write their own telemetry with a device token; applications,
//! Grafana and the page read with a reader token (all devices or a list); the
//! admin token (`admin_token`), or the per-run control token that `cromflag
//! devices` finds in the data directory, manages credentials. Tokens are kept
//! in the store (`credentials`), made and hashed in `token`, managed over
//! `/admin/devices` and `/admin/readers` (`admin`), and exported for an
//! external broker (`mosquitto`).
//!
//! When every listener is on loopback, the host runs open (no token needed, as
//! the original API): only this machine can reach it. As soon as HTTP or MQTT
//! listens beyond loopback, tokens are required, unless `access = "open"` says
//! otherwise (then the host warns).
//!
//! Invariant: the HTTP trigger asks `authorize` before it reads a request's
//! body; the MQTT endpoint asks `login` before it answers CONNECT and
//! `may_publish` before it submits a PUBLISH.

pub mod admin;
pub mod credentials;
pub mod mosquitto;
pub mod token;

use crate::manifest::App;
use anyhow::{bail, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use credentials::{Credentials, Holder};
use http::{HeaderMap, Method, StatusCode};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use token::same_secret;

/// Whether tokens are required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No token is asked for (but the admin routes still need theirs).
    Open,
    Required,
}

impl Mode {
    /// The mode the `access` variable asks for, given where the host listens:
    /// `auto` (the default) is open only when every listener is on loopback.
    pub fn decide(setting: &str, listeners: &[SocketAddr]) -> Result<Mode> {
        let all_loopback = listeners.iter().all(|a| a.ip().is_loopback());
        match setting {
            "" | "auto" if all_loopback => Ok(Mode::Open),
            "" | "auto" | "required" => Ok(Mode::Required),
            "open" => {
                if !all_loopback {
                    tracing::warn!(
                        ?listeners,
                        "access = \"open\": anyone who reaches these addresses can write and read every device"
                    );
                }
                Ok(Mode::Open)
            }
            other => bail!("variable access = `{other}`: use `auto`, `required` or `open`"),
        }
    }
}

/// What a request needs, by its route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// The page and its assets: public (its data calls are not).
    Nothing,
    /// Writes this device's telemetry.
    Write(String),
    /// Reads this device, or (`None`) possibly every device.
    Read(Option<String>),
    /// Manages credentials.
    Admin,
    /// A write to a route of the manifest this host does not know (a
    /// component of the user's own): open when the host is, otherwise the
    /// admin token's.
    OtherWrite,
    /// Uploads components: the `admin_token` only.
    Upload,
}

/// The routes of the stack's API and what each needs. A route of the
/// manifest this does not know is a read when it is GET or HEAD, and
/// `OtherWrite` otherwise: secure by default.
pub fn need(method: &Method, path: &str) -> Need {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let device = |segment: &str| cromflag_logic::device::from_path_segment(segment).ok();
    let reading = method == Method::GET || method == Method::HEAD;
    match segments[..] {
        [""] | ["ui"] | ["ui", ""] | ["ui", "app.js"] | ["ui", "app.css"] if reading => {
            Need::Nothing
        }
        // A segment that is no UTF-8 names no device a token can hold; the
        // component answers it with a 400 where the host is open.
        ["insert", d] => Need::Write(device(d).unwrap_or_else(|| d.to_owned())),
        // Grafana's JSON datasource POSTs its queries.
        ["grafana", ..] => Need::Read(None),
        ["admin", "components", ..] => Need::Upload,
        // Includes a manifest's routes under /admin/, such as the report
        // component's `POST /admin/reports/run`: refused here without the
        // admin (or control) token before any component runs. That component
        // checks `admin_token` again itself, for platforms with no host in
        // front (so the control token, which it does not know, runs no report).
        ["admin", ..] => Need::Admin,
        ["fetch", "devices"] | ["devices"] => Need::Read(None),
        // `{a,b}` may list several devices (`fetch::listed_devices`): only a
        // reader of every device may ask (a limited reader is refused, even
        // for a device whose id looks like such a list).
        ["fetch", d]
            if reading
                && device(d).is_some_and(|d| {
                    !matches!(cromflag_logic::fetch::listed_devices(&d), Ok(None))
                }) =>
        {
            Need::Read(None)
        }
        ["fetch", d] | ["stream", d] | ["devices", d, ..] if reading => Need::Read(device(d)),
        _ if reading => Need::Read(None),
        _ => Need::OtherWrite,
    }
}

/// A credential as presented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presented {
    Nothing,
    Token(String),
    /// An Authorization header we cannot read: a 401, not a panic or a 5xx.
    Unreadable(&'static str),
}

/// The token of an `Authorization` header: `Bearer <token>`, or `Basic` with
/// the token as the password (the user name is not checked: the token names
/// its holder). Schemes are case-insensitive (RFC 9110 §11.1).
pub fn from_authorization(value: &[u8]) -> Presented {
    let Ok(value) = std::str::from_utf8(value) else {
        return Presented::Unreadable("the Authorization header is not UTF-8");
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Presented::Token(rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD
            .decode(rest)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        return match decoded.as_deref().and_then(|d| d.split_once(':')) {
            Some((_, password)) if !password.is_empty() => Presented::Token(password.to_owned()),
            _ => Presented::Unreadable("Basic credentials are base64 of `user:token`"),
        };
    }
    Presented::Unreadable("use Authorization: Bearer <token>")
}

/// The credential a request presents: its Authorization header, or for a
/// GET, an `access_token` query parameter (RFC 6750 §2.3), which is how a
/// browser's EventSource, that cannot set headers, sends one.
pub fn presented(method: &Method, headers: &HeaderMap, query: Option<&str>) -> Presented {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        return from_authorization(value.as_bytes());
    }
    if method == Method::GET {
        if let Some(token) = query.and_then(access_token) {
            return Presented::Token(token);
        }
    }
    Presented::Nothing
}

/// The `access_token` parameter of a query string.
fn access_token(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == ACCESS_TOKEN)
        .map(|(_, v)| v.into_owned())
}

/// The query parameter that carries a token.
pub const ACCESS_TOKEN: &str = "access_token";

/// `query` without its `access_token`: the token goes no further than here
/// (not to components, not to logs). `None` when nothing is left.
pub fn without_access_token(query: &str) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            !form_urlencoded::parse(key.as_bytes()).any(|(k, _)| k == ACCESS_TOKEN)
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// A refusal: its status and what it says.
#[derive(Debug, PartialEq, Eq)]
pub struct Denied {
    pub status: StatusCode,
    pub message: String,
    pub hint: &'static str,
}

impl Denied {
    fn unauthorized(message: impl Into<String>, hint: &'static str) -> Denied {
        Denied {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
            hint,
        }
    }

    fn forbidden(message: impl Into<String>) -> Denied {
        Denied {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
            hint: "",
        }
    }
}

/// The host's access policy and the credentials it checks against.
pub struct Access {
    mode: Mode,
    credentials: Arc<Credentials>,
    /// The `admin_token` variable (empty: none); follows the manifest.
    admin_token: RwLock<String>,
    /// This run's control token, for `cromflag devices` on this machine.
    control_token: String,
}

impl Access {
    pub fn new(mode: Mode, credentials: Arc<Credentials>, app: &App) -> Access {
        Access {
            mode,
            credentials,
            admin_token: RwLock::new(admin_token(app)),
            control_token: token::mint_control(),
        }
    }

    /// Open access over `backend`'s credentials: what `cromflag up` does on
    /// loopback, for embedders (benchmarks) that serve a trigger themselves.
    pub fn open(backend: Arc<dyn crate::store::Backend>, app: &App) -> Access {
        Access::new(Mode::Open, Arc::new(Credentials::new(backend)), app)
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn credentials(&self) -> &Arc<Credentials> {
        &self.credentials
    }

    pub fn control_token(&self) -> &str {
        &self.control_token
    }

    /// Follows a changed manifest's `admin_token`.
    pub fn replace(&self, app: &App) {
        *self.admin_token.write().expect("admin token lock") = admin_token(app);
    }

    /// Whether `presented` may do what `need` asks.
    pub async fn authorize(&self, need: &Need, presented: &Presented) -> Result<(), Denied> {
        // Open: whatever is presented, only the admin routes look at it.
        let public = matches!(need, Need::Nothing)
            || (self.mode == Mode::Open
                && matches!(need, Need::Write(_) | Need::Read(_) | Need::OtherWrite));
        if public {
            return Ok(());
        }
        let token = match presented {
            Presented::Token(token) => Some(token.as_str()),
            Presented::Nothing => None,
            Presented::Unreadable(why) => return Err(Denied::unauthorized(*why, "")),
        };
        // Compared under the read lock, not copied out: this runs per request.
        let (admin_set, is_admin) = {
            let admin = self.admin_token.read().expect("admin token lock");
            let is_admin = token.is_some_and(|t| !admin.is_empty() && same_secret(t, &admin));
            (!admin.is_empty(), is_admin)
        };
        match need {
            Need::Nothing => Ok(()),
            Need::Upload if !admin_set => Err(Denied {
                status: StatusCode::NOT_FOUND,
                message: "no such route".into(),
                hint: "set the admin_token variable to enable uploads",
            }),
            Need::Upload if is_admin => Ok(()),
            Need::Upload => Err(Denied::unauthorized(
                "missing or wrong token",
                "send Authorization: Bearer <admin_token>",
            )),
            Need::Admin
                if is_admin || token.is_some_and(|t| same_secret(t, &self.control_token)) =>
            {
                Ok(())
            }
            Need::Admin => Err(Denied::unauthorized(
                "missing or wrong token",
                "send Authorization: Bearer <admin_token>",
            )),
            Need::OtherWrite if is_admin => Ok(()),
            Need::OtherWrite => Err(Denied::unauthorized(
                "this route takes the admin token",
                "send Authorization: Bearer <admin_token>",
            )),
            Need::Read(_) if is_admin => Ok(()),
            Need::Write(device) => match self.holder(token).await? {
                Holder::Device(d) if &d == device => Ok(()),
                Holder::Device(d) => Err(Denied::forbidden(format!(
                    "this token is device `{d}`'s, not `{device}`'s"
                ))),
                Holder::Reader { .. } => Err(Denied::forbidden("a reader token cannot write")),
            },
            Need::Read(device) => match (self.holder(token).await?, device) {
                (Holder::Reader { scope, .. }, Some(d)) if scope.allows(d) => Ok(()),
                (Holder::Reader { scope, .. }, None) if scope.allows_all() => Ok(()),
                (Holder::Reader { name, .. }, Some(d)) => Err(Denied::forbidden(format!(
                    "reader `{name}` may not read device `{d}`"
                ))),
                (Holder::Reader { name, .. }, None) => Err(Denied::forbidden(format!(
                    "reader `{name}` is limited to some devices; this route reads them all"
                ))),
                (Holder::Device(_), _) => Err(Denied::forbidden(
                    "a device token cannot read: use a reader token",
                )),
            },
        }
    }

    /// The holder of a live token, or the 401 (none or unknown) or 503 (the
    /// store cannot tell) to answer.
    async fn holder(&self, token: Option<&str>) -> Result<Holder, Denied> {
        let Some(token) = token else {
            return Err(Denied::unauthorized(
                "a token is required",
                "send Authorization: Bearer <token>",
            ));
        };
        match self.credentials.holder(token).await {
            Ok(Some(holder)) => Ok(holder),
            Ok(None) => Err(Denied::unauthorized("unknown or revoked token", "")),
            Err(e) => {
                tracing::error!(error = %e, "could not check a token");
                Err(Denied {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    message: "credentials unavailable".into(),
                    hint: "",
                })
            }
        }
    }

    /// An MQTT CONNECT: `Ok(Some(device))` for a device that logged in with
    /// its id and token, `Ok(None)` when the host runs open, `Err` to refuse.
    pub async fn login(
        &self,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<Option<String>, Denied> {
        if self.mode == Mode::Open {
            return Ok(None);
        }
        let (Some(device), Some(password)) = (username, password) else {
            return Err(Denied::unauthorized(
                "CONNECT needs username and password",
                "",
            ));
        };
        let token = std::str::from_utf8(password).unwrap_or("");
        match self.holder(Some(token)).await? {
            Holder::Device(d) if d == device => Ok(Some(d)),
            _ => Err(Denied::forbidden(format!(
                "the password is not a live token of device `{device}`"
            ))),
        }
    }

    /// Whether the device logged in with `token` may still publish: false
    /// once the store says the token is no longer live (revocations reach
    /// connected devices within the cache's TTL). A store that cannot tell
    /// keeps the login as it was.
    pub async fn still_valid(&self, token: &[u8]) -> bool {
        let token = std::str::from_utf8(token).unwrap_or("");
        !matches!(self.credentials.holder(token).await, Ok(None))
    }
}

/// Whether device `device` may publish to `topic`: it matches one of the
/// telemetry `filters` with every single-level wildcard standing for the
/// device's own id (`devices/+/telemetry` → `devices/<device>/telemetry`).
pub fn may_publish<'a>(
    device: &str,
    topic: &str,
    filters: impl IntoIterator<Item = &'a str>,
) -> bool {
    filters.into_iter().any(|filter| {
        let (mut f, mut t) = (filter.split('/'), topic.split('/'));
        let mut named_device = false;
        loop {
            match (f.next(), t.next()) {
                (None, None) => return named_device,
                (Some("+"), Some(level)) if level == device => named_device = true,
                (Some(expected), Some(level))
                    if expected != "+" && expected != "#" && expected == level => {}
                _ => return false,
            }
        }
    })
}

fn admin_token(app: &App) -> String {
    app.variables.get("admin_token").unwrap_or("").to_owned()
}

/// `cromflag_logic::device`'s rule for device ids, its reason as text.
pub fn check_device_id(id: &str) -> Result<(), String> {
    cromflag_logic::device::check(id).map_err(|e| match e.detail["reason"].as_str() {
        Some(reason) => reason.to_owned(),
        None => e.error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_say_what_they_need() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(need(&post, "/insert/sample"), Need::Write("sample".into()));
        assert_eq!(
            need(&post, "/insert/capteur-%C3%A9t%C3%A9"),
            Need::Write("capteur-été".into())
        );
        assert_eq!(
            need(&get, "/fetch/sample"),
            Need::Read(Some("sample".into()))
        );
        assert_eq!(need(&get, "/fetch/devices"), Need::Read(None));
        assert_eq!(need(&get, "/fetch/%7Ba,b%7D"), Need::Read(None));
        assert_eq!(need(&get, "/fetch/{a"), Need::Read(Some("{a".into())));
        assert_eq!(
            need(&get, "/stream/sample"),
            Need::Read(Some("sample".into()))
        );
        assert_eq!(
            need(&get, "/devices/sample/schema"),
            Need::Read(Some("sample".into()))
        );
        assert_eq!(need(&get, "/devices"), Need::Read(None));
        assert_eq!(need(&get, "/grafana/search"), Need::Read(None));
        assert_eq!(
            need(&post, "/grafana/query"),
            Need::Read(None),
            "Grafana POSTs its queries"
        );
        assert_eq!(need(&post, "/mine/x"), Need::OtherWrite);
        assert_eq!(need(&post, "/insert/%FF"), Need::Write("%FF".into()));
        assert_eq!(need(&get, "/reports"), Need::Read(None));
        assert_eq!(need(&get, "/"), Need::Nothing);
        assert_eq!(need(&get, "/ui/app.js"), Need::Nothing);
        assert_eq!(need(&post, "/admin/devices/x"), Need::Admin);
        assert_eq!(need(&post, "/admin/components/insert"), Need::Upload);
        assert_eq!(need(&post, "/admin/reports/run"), Need::Admin);
        assert_eq!(need(&get, "/admin/reports/run"), Need::Admin);
    }

    #[test]
    fn authorization_headers_give_their_token() {
        assert_eq!(
            from_authorization(b"Bearer cfd_x"),
            Presented::Token("cfd_x".into())
        );
        assert_eq!(
            from_authorization(b"bearer  cfd_x "),
            Presented::Token("cfd_x".into())
        );
        let basic = format!("Basic {}", STANDARD.encode("sample:cfd_y"));
        assert_eq!(
            from_authorization(basic.as_bytes()),
            Presented::Token("cfd_y".into())
        );
        assert!(matches!(
            from_authorization(b"Basic !!"),
            Presented::Unreadable(_)
        ));
        assert!(matches!(
            from_authorization(b"Bearer"),
            Presented::Unreadable(_)
        ));
        assert!(matches!(
            from_authorization(b"Digest x"),
            Presented::Unreadable(_)
        ));
        assert!(matches!(
            from_authorization(&[0xff, 0xfe]),
            Presented::Unreadable(_)
        ));
    }

    #[test]
    fn the_query_token_is_taken_out() {
        assert_eq!(
            access_token("from=1&access_token=cfr_a%2Bb"),
            Some("cfr_a+b".into())
        );
        assert_eq!(
            without_access_token("from=1&access_token=x&to=2").as_deref(),
            Some("from=1&to=2")
        );
        assert_eq!(without_access_token("access_token=x"), None);
        assert_eq!(without_access_token("access%5Ftoken=x"), None);
    }

    #[test]
    fn devices_publish_only_to_their_own_topics() {
        let filters = ["devices/+/telemetry"];
        assert!(may_publish("a", "devices/a/telemetry", filters));
        assert!(!may_publish("a", "devices/b/telemetry", filters));
        assert!(!may_publish("a", "devices/a/telemetry/x", filters));
        assert!(!may_publish("a", "devices/a", filters));
        assert!(
            !may_publish("a", "fixed/topic", ["fixed/topic"]),
            "no level names the device"
        );
    }

    #[test]
    fn open_only_on_loopback_unless_asked() {
        let local: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:80".parse().unwrap();
        assert_eq!(Mode::decide("auto", &[local, local]).unwrap(), Mode::Open);
        assert_eq!(Mode::decide("auto", &[local, any]).unwrap(), Mode::Required);
        assert_eq!(Mode::decide("required", &[local]).unwrap(), Mode::Required);
        assert_eq!(Mode::decide("open", &[any]).unwrap(), Mode::Open);
        assert!(Mode::decide("maybe", &[local]).is_err());
    }
}
