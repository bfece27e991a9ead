//! The HTTP trigger: hyper serves the routes of `[[trigger.http]]`, each request
//! handled by a fresh instance of its component through `wasi:http/incoming-handler`.
//!
//! Per request: check the caller's token (`access`, before any byte of the
//! body is read) → match the route → bound the body → new `Store` → instantiate
//! from the component's `ProxyPre` → `handle` in a task of its own → relay the
//! response the component sets. A component that traps, or never answers, costs
//! that one request a 500; the server goes on.
//!
//! What no route claims is the host's own: `admin` (`/admin/`: component
//! uploads, the credentials' API) and `builtin` (the page, live streams).

pub mod admin;
mod builtin;
mod routes;

use crate::access::{self, Access, Denied};
use crate::health::{MqttReadiness, Readiness};
use crate::http_io::{self, boxed, error, BodyError, BodyLimit};
use crate::listener::{accept_loop, ListenerLimits};
use crate::manifest::App;
use crate::metrics::{self, metrics, IngestOutcome, Transport};
use crate::runtime::{ComponentConfig, Components, HostState, Runtime};
use crate::store::Backend;
use crate::triggers::cron::CronTrigger;
use admin::Uploads;
use anyhow::{Context, Result};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use routes::Router;
use serde_json::json;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use wasmtime::component::InstancePre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

/// One component, ready to be instantiated for each request.
pub struct HttpComponent {
    id: String,
    pre: ProxyPre<HostState>,
    config: ComponentConfig,
}

pub struct HttpTrigger {
    runtime: Arc<Runtime>,
    /// For the built-in live streams.
    backend: Arc<dyn Backend>,
    /// Swapped whole when the application changes; a request keeps the routes
    /// (and so the component versions) it started with.
    routes: RwLock<Arc<Routes>>,
    max_body_bytes: usize,
    limits: ListenerLimits,
    /// Who may call what; checked before a body is read.
    access: Arc<Access>,
    /// Takes `POST /admin/components/<id>` once set (the live-change controller).
    uploads: OnceLock<Arc<dyn Uploads>>,
    /// Runs `POST /admin/cron/run` once set.
    cron: OnceLock<Arc<CronTrigger>>,
    /// Routes other parts of the host answer, by path prefix
    /// (`/admin/retention`, `/alarms`).
    json_routes: RwLock<Vec<(&'static str, Arc<dyn JsonRoutes>)>>,
    /// How `/readyz` learns whether MQTT messages can arrive; unset, there
    /// is nothing to wait for.
    mqtt_readiness: OnceLock<MqttReadiness>,
}

/// The application's routes and the base they sit under.
struct Routes {
    router: Router<Arc<HttpComponent>>,
    base: String,
    /// The application they came from (the admin API's Mosquitto export reads
    /// its MQTT triggers).
    app: Arc<App>,
}

/// Whether `pre` is a wasi:http component (exports the incoming handler).
pub fn check(pre: &InstancePre<HostState>) -> Result<()> {
    ProxyPre::new(pre.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

impl HttpTrigger {
    /// The trigger for `app`'s routes, over its linked `components`.
    pub fn new(
        app: &App,
        runtime: Arc<Runtime>,
        components: &Components,
        max_body_bytes: usize,
        limits: ListenerLimits,
        access: Arc<Access>,
    ) -> Result<HttpTrigger> {
        let routes = Self::routes(app, &runtime, components)?;
        Ok(HttpTrigger {
            backend: runtime.backend().clone(),
            runtime,
            routes: RwLock::new(Arc::new(routes)),
            max_body_bytes,
            limits,
            access,
            uploads: OnceLock::new(),
            cron: OnceLock::new(),
            json_routes: RwLock::new(Vec::new()),
            mqtt_readiness: OnceLock::new(),
        })
    }

    /// Serves the routes of `app` from now on; requests in flight finish on
    /// the routes they started with.
    pub fn replace(&self, app: &App, components: &Components) -> Result<()> {
        let routes = Self::routes(app, &self.runtime, components)?;
        *self.routes.write().expect("routes lock") = Arc::new(routes);
        self.access.replace(app);
        Ok(())
    }

    /// Lets `POST /admin/components/<id>` reach `uploads` (the live-change
    /// controller).
    pub fn set_uploads(&self, uploads: Arc<dyn Uploads>) {
        let _ = self.uploads.set(uploads);
    }

    /// Lets `POST /admin/cron/run` run ticks of the cron trigger's host.
    pub fn set_cron(&self, cron: Arc<CronTrigger>) {
        let _ = self.cron.set(cron);
    }

    /// Lets `prefix` and the paths under it (where no manifest route
    /// matches) reach `routes`.
    pub fn add_routes(&self, prefix: &'static str, routes: Arc<dyn JsonRoutes>) {
        self.json_routes
            .write()
            .expect("json routes lock")
            .push((prefix, routes));
    }

    /// What answers `path`, if another part of the host does.
    fn json_routes_of(&self, path: &str) -> Option<Arc<dyn JsonRoutes>> {
        let under = |prefix: &str| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        self.json_routes
            .read()
            .expect("json routes lock")
            .iter()
            .find(|(prefix, _)| under(prefix))
            .map(|(_, routes)| routes.clone())
    }

    fn routes(app: &App, runtime: &Runtime, components: &Components) -> Result<Routes> {
        let mut bound: HashMap<&str, Arc<HttpComponent>> = HashMap::new();
        let mut routes = Vec::new();
        for trigger in &app.http_triggers {
            let spec = &app.components[&trigger.component];
            let component = match bound.get(spec.id.as_str()) {
                Some(component) => component.clone(),
                None => {
                    let linked = components
                        .get(&spec.id)
                        .with_context(|| format!("component `{}` is not loaded", spec.id))?;
                    let pre = ProxyPre::new(linked.pre.clone()).map_err(|e| {
                        anyhow::anyhow!(
                            "component `{}` is not a wasi:http component this host can link: {e}",
                            spec.id
                        )
                    })?;
                    let component = Arc::new(HttpComponent {
                        id: spec.id.clone(),
                        pre,
                        config: runtime.component_config(app, spec),
                    });
                    bound.insert(&spec.id, component.clone());
                    component
                }
            };
            routes.push((trigger.route.clone(), component));
        }
        Ok(Routes {
            router: Router::new(&app.http_base, routes)?,
            base: app.http_base.clone(),
            app: Arc::new(app.clone()),
        })
    }

    /// Accepts connections on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> Result<()> {
        let limits = self.limits.clone();
        accept_loop(listener, "HTTP", &limits, move |req, client| {
            let trigger = self.clone();
            async move { trigger.handle(req, client).await }
        })
        .await
    }

    async fn handle(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let started = std::time::Instant::now();
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        let mut seen = Seen {
            route: UNMATCHED.into(),
            ingest: false,
        };
        let response = self.dispatch(req, client, &mut seen).await;
        let status = response.status();
        metrics().http_request(seen.route, status, started);
        if seen.ingest {
            let outcome = match status.as_u16() {
                200..=299 => IngestOutcome::Stored,
                400..=499 => IngestOutcome::Rejected,
                _ => IngestOutcome::Failed,
            };
            metrics().ingested(Transport::Http, outcome);
        }
        tracing::debug!(%method, %path, status = status.as_u16(), elapsed = ?started.elapsed(), "request");
        response
    }

    /// Tells `/readyz` how to check MQTT; set once, when the host starts.
    pub fn set_mqtt_readiness(&self, readiness: MqttReadiness) {
        let _ = self.mqtt_readiness.set(readiness);
    }

    /// `/readyz`: 200 when every check passes, else 503; each check's state.
    async fn ready(&self) -> Response<HyperOutgoingBody> {
        let readiness = Readiness {
            store: self.backend.clone(),
            mqtt: self
                .mqtt_readiness
                .get()
                .cloned()
                .unwrap_or(MqttReadiness::None),
        };
        let (ready, report) = readiness.check().await;
        let status = match ready {
            true => StatusCode::OK,
            false => StatusCode::SERVICE_UNAVAILABLE,
        };
        boxed(http_io::json(status, &report))
    }

    /// Answers `req`, noting in `seen` the route it took and whether it
    /// was a device's message.
    async fn dispatch(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
        seen: &mut Seen,
    ) -> Response<HyperOutgoingBody> {
        let reading = matches!(*req.method(), http::Method::GET | http::Method::HEAD);
        // Probes answer before tokens and routes (see `health`).
        if reading {
            match req.uri().path() {
                "/healthz" => {
                    seen.route = "/healthz".into();
                    return boxed(http_io::json(StatusCode::OK, &json!({ "status": "alive" })));
                }
                "/readyz" => {
                    seen.route = "/readyz".into();
                    return self.ready().await;
                }
                _ => {}
            }
        }
        let routes = self.routes.read().expect("routes lock").clone();
        let need = access::need(req.method(), relative(req.uri().path(), &routes.base));
        seen.ingest = matches!(need, access::Need::Write(_));
        let matched = routes.router.route(req.uri().path());
        seen.route = match &matched {
            Some(matched) => matched.route.into(),
            None => host_route(req.method(), req.uri().path()).into(),
        };
        let req = match self.authorize(req, &need).await {
            Ok(req) => req,
            Err(refused) => return refused,
        };
        let Some(matched) = matched else {
            // What the manifest does not route may be one of the host's own pages.
            if reading && req.uri().path() == "/metrics" {
                return boxed(http_io::bytes(
                    StatusCode::OK,
                    metrics::CONTENT_TYPE,
                    Bytes::from(metrics().encode()),
                ));
            }
            if let Some(routes) = self.json_routes_of(req.uri().path()) {
                let (status, body) = routes
                    .answer(req.method(), req.uri().path(), req.uri().query())
                    .await;
                return boxed(http_io::json(status, &body));
            }
            if req.uri().path().starts_with("/admin/") {
                let host = admin::HostAdmin {
                    uploads: self.uploads.get().map(|u| u.as_ref()),
                    cron: self.cron.get().map(|c| c.as_ref()),
                };
                let credentials = self.access.credentials();
                return admin::serve(&host, credentials, &routes.app, req).await;
            }
            if let Some(builtin) = builtin::route(req.method(), req.uri().path()) {
                return builtin::serve(builtin, self.backend.as_ref());
            }
            return boxed(error(
                StatusCode::NOT_FOUND,
                "no such route",
                json!({ "path": req.uri().path() }),
            ));
        };
        // wasi:http hands the component an authority; HTTP/1.1 always has one.
        if req.uri().authority().is_none() && !req.headers().contains_key(http::header::HOST) {
            return boxed(error(
                StatusCode::BAD_REQUEST,
                "missing Host header",
                json!(null),
            ));
        }
        let component = matched.target.clone();
        let spin_headers = [
            ("spin-matched-route", matched.route.to_owned()),
            (
                "spin-component-route",
                matched.route.trim_end_matches("/...").to_owned(),
            ),
            ("spin-path-info", matched.path_info),
            ("spin-base-path", routes.base.clone()),
            ("spin-client-addr", client.to_string()),
        ];
        let req = match self.buffer_body(req).await {
            Ok(req) => req,
            Err(response) => return response,
        };
        let (mut parts, body) = req.into_parts();
        for (name, value) in spin_headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                parts.headers.insert(HeaderName::from_static(name), value);
            }
        }
        match self
            .call(&component, Request::from_parts(parts, body))
            .await
        {
            Ok(response) => response,
            Err(e) => {
                tracing::error!(component = %component.id, error = ?e, "component failed");
                metrics().trapped(&component.id);
                boxed(error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "component failed",
                    json!({ "component": component.id }),
                ))
            }
        }
    }

    /// Checks the caller's token for what the route needs, and takes an
    /// `access_token` query parameter out of the URI: past here, no token is
    /// in the request a component or a log line sees.
    async fn authorize(
        &self,
        req: Request<Incoming>,
        need: &access::Need,
    ) -> Result<Request<Incoming>, Response<HyperOutgoingBody>> {
        let presented = access::presented(req.method(), req.headers(), req.uri().query());
        if let Err(denied) = self.access.authorize(need, &presented).await {
            let (parts, body) = req.into_parts();
            http_io::discard(&parts.headers, body, DISCARDED_BODY_BYTES, DISCARD_TIME).await;
            // Basic is offered to devices only: a browser met with a Basic
            // challenge on the page's fetches would pop up a password dialog.
            return Err(refusal(denied, matches!(need, access::Need::Write(_))));
        }
        let Some(query) = req.uri().query() else {
            return Ok(req);
        };
        if !query.contains(access::ACCESS_TOKEN) && !query.contains('%') {
            return Ok(req);
        }
        let kept = access::without_access_token(query);
        let (mut parts, body) = req.into_parts();
        let path_and_query = match kept {
            Some(kept) => format!("{}?{kept}", parts.uri.path()),
            None => parts.uri.path().to_owned(),
        };
        let mut uri = parts.uri.clone().into_parts();
        uri.path_and_query = path_and_query.parse().ok();
        if let Ok(uri) = http::Uri::from_parts(uri) {
            parts.uri = uri;
        }
        Ok(Request::from_parts(parts, body))
    }

    /// Reads the whole body, up to the limit: an over-long body is refused before
    /// any component runs, and a component never sees a truncated one.
    ///
    /// A refused body is still read (and dropped) up to four times the limit,
    /// so that the client, still sending, gets its 413 rather than a broken pipe.
    async fn buffer_body(
        &self,
        req: Request<Incoming>,
    ) -> Result<Request<Full<Bytes>>, Response<HyperOutgoingBody>> {
        let idle = self.limits.body_idle_timeout;
        let limit = BodyLimit::new(self.max_body_bytes)
            .draining((self.max_body_bytes as u64).saturating_mul(4))
            .idle(idle);
        let (parts, body) = req.into_parts();
        match http_io::read(&parts.headers, body, &limit).await {
            Ok(body) => Ok(Request::from_parts(parts, Full::new(body))),
            Err(BodyError::TooLarge) => Err(boxed(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
                json!({ "limit_bytes": self.max_body_bytes }),
            ))),
            Err(BodyError::TimedOut) => Err(boxed(error(
                StatusCode::REQUEST_TIMEOUT,
                "request body timed out",
                json!({ "idle_timeout_secs": idle.as_secs() }),
            ))),
            Err(BodyError::Unreadable(e)) => Err(boxed(error(
                StatusCode::BAD_REQUEST,
                "request body could not be read",
                json!(e),
            ))),
        }
    }

    /// Runs `component` on one request, in a task of its own so that it can go on
    /// streaming the body after it has set the response.
    async fn call(
        &self,
        component: &HttpComponent,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<HyperOutgoingBody>> {
        let mut store = self.runtime.new_store(&component.config);
        store.data_mut().set_ingest_transport(Transport::Http);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = req.map(|body| {
            body.map_err(|never: Infallible| -> wasmtime_wasi_http::Error { match never {} })
        });
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let pre = component.pre.clone();
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        });
        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(anyhow::anyhow!(
                "the component answered with error code {code:?}"
            )),
            // The outparam was dropped unset: the task tells why.
            Err(_) => match task.await {
                Ok(Ok(())) => Err(anyhow::anyhow!(
                    "the component returned without setting a response"
                )),
                Ok(Err(e)) => Err(e.into()),
                Err(e) => Err(e.into()),
            },
        }
    }
}

/// JSON routes another part of the host answers (the retention job's, the
/// alarms'): a trait, as `Uploads` is, so that the trigger knows the paths and
/// not who answers them. The trigger has checked the caller's token.
#[async_trait::async_trait]
pub trait JsonRoutes: Send + Sync {
    /// Answers one call: its status and JSON body.
    async fn answer(
        &self,
        method: &http::Method,
        path: &str,
        query: Option<&str>,
    ) -> (StatusCode, serde_json::Value);
}

/// A refusal as `JsonRoutes` answer it: the components' error shape.
pub fn json_refusal(
    status: StatusCode,
    error: &str,
    detail: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    (status, json!({ "error": error, "detail": detail }))
}

/// A `JsonRoutes` answer for a method and path it does not serve.
pub fn no_such_route(method: &http::Method, path: &str) -> (StatusCode, serde_json::Value) {
    json_refusal(
        StatusCode::NOT_FOUND,
        "no such route",
        json!({ "path": path, "method": method.as_str() }),
    )
}

/// `outcome` as a `JsonRoutes` answer: itself, or a 503 naming the store's
/// failure, logged as `what` failing.
pub fn answered(
    outcome: anyhow::Result<(StatusCode, serde_json::Value)>,
    what: &str,
) -> (StatusCode, serde_json::Value) {
    outcome.unwrap_or_else(|e| {
        tracing::error!(error = %format!("{e:#}"), "{what} failed");
        json_refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "store unavailable",
            json!(format!("{e:#}")),
        )
    })
}

/// What `dispatch` saw of a request, for its metrics.
struct Seen {
    /// The manifest route it matched, or the host's own (`host_route`).
    route: String,
    /// Whether it is a device's message (`/insert/<device>`).
    ingest: bool,
}

/// The route label of a request no manifest route matched.
const UNMATCHED: &str = "unmatched";

/// What the host serves itself, as a route label: one per kind of page, so
/// that no device id or other path text becomes a label.
fn host_route(method: &http::Method, path: &str) -> &'static str {
    match path {
        "/metrics" => "/metrics",
        "/alarms" => "/alarms",
        _ if path.starts_with("/alarms/") => "/alarms/...",
        _ if path.starts_with("/admin/") => "/admin/...",
        _ if path.starts_with("/stream/") => "/stream/...",
        _ if builtin::route(method, path).is_some() => "/ui",
        _ => UNMATCHED,
    }
}

/// `path` under the application's base (`http_base`), as `access::need` reads it.
fn relative<'a>(path: &'a str, base: &str) -> &'a str {
    match base.trim_end_matches('/') {
        "" => path,
        base => path.strip_prefix(base).unwrap_or(path),
    }
}

/// How much of a refused request's body is read (and dropped) so that a
/// client still sending gets its answer rather than a broken pipe; a larger or
/// slower body is not waited for (the connection closes after the answer).
const DISCARDED_BODY_BYTES: u64 = 1 << 20;
const DISCARD_TIME: Duration = Duration::from_secs(2);

/// A refused request: 401s say how to authenticate (RFC 9110 §11.6.1), with
/// `Basic` too when `basic` (device ingest).
fn refusal(denied: Denied, basic: bool) -> Response<HyperOutgoingBody> {
    let detail = match denied.hint {
        "" => json!(null),
        hint => json!(hint),
    };
    let mut response = boxed(error(denied.status, &denied.message, detail));
    if denied.status == StatusCode::UNAUTHORIZED {
        let challenges = ["Bearer realm=\"cromflag\"", "Basic realm=\"cromflag\""];
        for challenge in &challenges[..if basic { 2 } else { 1 }] {
            response.headers_mut().append(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::RuntimeLimits;
    use crate::store::embedded::EmbeddedStore;
    use std::io::{Read, Write};
    use std::sync::Mutex;

    /// Takes uploads by noting their component and size.
    #[derive(Default)]
    struct Noted(Mutex<Vec<(String, usize)>>);

    #[async_trait::async_trait]
    impl Uploads for Noted {
        async fn upload(
            &self,
            id: &str,
            bytes: &[u8],
        ) -> Result<admin::Uploaded, admin::UploadRefused> {
            self.0.lock().unwrap().push((id.to_owned(), bytes.len()));
            Ok(admin::Uploaded::Unchanged)
        }
    }

    /// The status line of the answer to `request`, sent raw.
    async fn status_of(addr: SocketAddr, request: &'static str) -> String {
        tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            let mut head = [0u8; 12];
            stream
                .read_exact(&mut head)
                .expect("an answer without the body");
            String::from_utf8_lossy(&head).into_owned()
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn an_upload_is_refused_before_its_body_is_read() {
        let dir = tempfile::TempDir::new().unwrap();
        let manifest = "spin_manifest_version = 2\n[application]\nname = \"t\"\n\
                        [variables]\nadmin_token = { default = \"s3cret\" }\n";
        let app = crate::manifest::parse(manifest, dir.path(), |_| None).unwrap();
        let store = EmbeddedStore::open(&dir.path().join("store.db")).unwrap();
        let backend: Arc<dyn Backend> = Arc::new(Arc::new(store));
        let limits = RuntimeLimits {
            max_instances: 4,
            ..RuntimeLimits::default()
        };
        let runtime = Runtime::new(backend.clone(), &dir.path().join("cache"), limits).unwrap();
        let trigger = HttpTrigger::new(
            &app,
            Arc::new(runtime),
            &Components::new(),
            1 << 20,
            ListenerLimits::default(),
            Arc::new(Access::open(backend, &app)),
        )
        .unwrap();
        let noted = Arc::new(Noted::default());
        trigger.set_uploads(noted.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(Arc::new(trigger).serve(listener));

        // Headers promising 60 MiB and no body: a wrong token is answered at once.
        let refused = "POST /admin/components/insert HTTP/1.1\r\nHost: x\r\n\
                       Authorization: Bearer wrong\r\nContent-Length: 62914560\r\n\r\n";
        assert_eq!(status_of(addr, refused).await, "HTTP/1.1 401");
        assert!(noted.0.lock().unwrap().is_empty());
        let taken = "POST /admin/components/insert HTTP/1.1\r\nHost: x\r\n\
                     Authorization: Bearer s3cret\r\nContent-Length: 4\r\n\r\nwasm";
        assert_eq!(status_of(addr, taken).await, "HTTP/1.1 200");
        assert_eq!(*noted.0.lock().unwrap(), [("insert".to_owned(), 4)]);
    }
}
