//! GridDB's WebAPI served by `cromflag up --webapi`, against the real binary
//! over real sockets: one test per endpoint, each sending the example request
//! of `griddb-webapi.md` and checking the documented answer, its error cases,
//! and what the Grafana GridDB datasource sends (§5).

use cromflag_tests::{insert_sample, repo_root, Host};
use serde_json::{json, Value};
use std::time::Duration;
use tempfile::TempDir;

/// The repository's `spin.toml` declares these (`webapi_*`).
const USER: &str = "admin";
const PASSWORD: &str = "admin";
const CLUSTER: &str = "defaultCluster";

/// A host serving the WebAPI, with its own data directory.
struct WebApi {
    host: Host,
    _dir: TempDir,
    /// `http://ADDR/griddb`.
    root: String,
}

impl WebApi {
    fn start() -> WebApi {
        WebApi::start_with(&[])
    }

    /// A host whose WebAPI settings `env` overrides (`SPIN_VARIABLE_WEBAPI_…`).
    fn start_with(env: &[(&str, &str)]) -> WebApi {
        let dir = TempDir::new().unwrap();
        let host = Host::start_with_env(
            &repo_root().join("spin.toml"),
            dir.path(),
            &["--webapi", "127.0.0.1:0"],
            env,
        );
        let root = host.webapi_url();
        assert!(root.ends_with("/griddb"), "{root}");
        WebApi {
            host,
            _dir: dir,
            root,
        }
    }

    /// The URL of `path` below `/griddb/v2/defaultCluster/dbs/public`.
    fn url(&self, path: &str) -> String {
        format!("{}/v2/{CLUSTER}/dbs/public{path}", self.root)
    }

    fn get(&self, path: &str) -> Reply {
        send("GET", &self.url(path), Some(&basic(USER, PASSWORD)), None)
    }

    /// `method` with a JSON body, authenticated.
    fn send(&self, method: &str, path: &str, body: &Value) -> Reply {
        send_json(method, &self.url(path), body)
    }

    /// `send`, expecting `status`; the reply.
    fn expect(&self, method: &str, path: &str, body: &Value, status: u16) -> Reply {
        let reply = self.send(method, path, body);
        assert_eq!(
            reply.status,
            status,
            "{method} {path} {body}: {}",
            reply.text()
        );
        reply
    }

    /// `POST /tql` of `queries`, expecting 200; the answers.
    fn tql(&self, queries: Value) -> Vec<Value> {
        let reply = self.expect("POST", "/tql", &queries, 200);
        reply.json().as_array().unwrap().clone()
    }

    /// The container of the WebAPI reference's examples, with `rows`.
    fn sensor_a(&self, rows: Value) {
        self.expect("POST", "/containers", &sensor_a_schema(), 201);
        if rows.as_array().is_some_and(|r| !r.is_empty()) {
            self.expect("PUT", "/containers/sensor_a/rows", &rows, 200);
        }
    }
}

/// §2.3/§2.4: `sensor_a`, a time series (ts, temp, label).
fn sensor_a_schema() -> Value {
    json!({
        "container_name": "sensor_a",
        "container_type": "TIME_SERIES",
        "rowkey": true,
        "columns": [
            {"name": "ts", "type": "TIMESTAMP"},
            {"name": "temp", "type": "DOUBLE", "index": ["TREE"]},
            {"name": "label", "type": "STRING"}
        ]
    })
}

/// Six rows of `sensor_a`, a minute apart from 2024-05-01T12:00:00.000Z.
fn six_rows() -> Value {
    json!([
        ["2024-05-01T12:00:00.000Z", 21.5, "ok"],
        ["2024-05-01T12:01:00.000Z", 21.7, null],
        ["2024-05-01T12:02:00.000Z", 19.0, "calib"],
        ["2024-05-01T12:03:00.000Z", 22.5, "ok"],
        ["2024-05-01T12:04:00.000Z", 20.0, "ok"],
        ["2024-05-01T12:05:00.000Z", 23.0, null]
    ])
}

/// An HTTP answer.
struct Reply {
    status: u16,
    content_type: String,
    content_length: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the WebAPI error body with `status`, `code` and exactly `message`.
    fn assert_exact_error(&self, status: u16, code: i64, message: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.content_type, "application/json; charset=UTF-8");
        assert_eq!(
            self.json(),
            json!({"version": "v2", "errorCode": code, "errorMessage": message})
        );
    }

    /// Asserts Spring's default 404 body for `path`.
    fn assert_spring_not_found(&self, path: &str) {
        assert_eq!(self.status, 404, "{path}: {}", self.text());
        let body = self.json();
        assert_eq!(
            (&body["status"], &body["error"]),
            (&json!(404), &json!("Not Found")),
            "{body}"
        );
        assert!(path.ends_with(body["path"].as_str().unwrap()), "{body}");
        assert!(body["timestamp"].is_string(), "{body}");
    }

    /// Asserts the WebAPI error body with `status`, `code` and a message
    /// containing `message`.
    fn assert_error(&self, status: u16, code: i64, message: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.content_type, "application/json; charset=UTF-8");
        let body = self.json();
        assert_eq!(body["version"], "v2", "{body}");
        assert_eq!(body["errorCode"], code, "{body}");
        let text = body["errorMessage"].as_str().unwrap();
        assert!(text.contains(message), "`{text}` lacks `{message}`");
        assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    }
}

/// `Basic base64(user:password)`.
fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One request: `auth` as the Authorization header, `body` as (content type, bytes).
fn send(method: &str, url: &str, auth: Option<&str>, body: Option<(&str, &[u8])>) -> Reply {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let mut request = agent.request(method, url);
    if let Some(auth) = auth {
        request = request.set("Authorization", auth);
    }
    let result = match body {
        Some((content_type, bytes)) => request.set("Content-Type", content_type).send_bytes(bytes),
        None => request.call(),
    };
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|name| {
            Some((
                name.to_ascii_lowercase(),
                response.header(&name)?.to_owned(),
            ))
        })
        .collect();
    let status = response.status();
    let content_type = response
        .header("content-type")
        .unwrap_or_default()
        .to_owned();
    let content_length = response.header("content-length").map(str::to_owned);
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut body).unwrap();
    Reply {
        status,
        content_type,
        content_length,
        headers,
        body,
    }
}

fn send_json(method: &str, url: &str, body: &Value) -> Reply {
    send(
        method,
        url,
        Some(&basic(USER, PASSWORD)),
        Some((
            "application/json; charset=UTF-8",
            body.to_string().as_bytes(),
        )),
    )
}

/// Asserts an empty success: `status`, no body.
fn assert_empty(reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert!(reply.body.is_empty(), "{}", reply.text());
}

#[test]
fn check_connection_authentication_and_routing() {
    let api = WebApi::start();

    // §2.1: 200, empty body, Content-Length 0.
    let reply = api.get("/checkConnection");
    assert_empty(&reply, 200);
    assert_eq!(reply.content_length.as_deref(), Some("0"));

    // §1.2: the Basic header, then the credentials.
    let url = api.url("/checkConnection");
    send("GET", &url, None, None).assert_error(401, 0, "Basic authentication not found");
    send("GET", &url, Some("Basic !!!"), None).assert_error(
        401,
        0,
        "Basic authentication is not encoded by Base64",
    );
    send(
        "GET",
        &url,
        Some(&format!("Basic {}", base64(b"admin"))),
        None,
    )
    .assert_error(401, 0, "Basic authentication is invalid format");
    for (user, password) in [("admin", "wrong"), ("root", "admin"), ("admin", "")] {
        let reply = send("GET", &url, Some(&basic(user, password)), None);
        reply.assert_error(401, 10005, "[10005:TXN_AUTH_FAILED]");
        assert!(reply.header("www-authenticate").is_none());
    }
    // A password with a colon: split at the first one, so it is just wrong.
    send("GET", &url, Some(&basic("admin", "admin:x")), None).assert_error(
        401,
        10005,
        "TXN_AUTH_FAILED",
    );

    // §1.1: an unknown cluster, another database.
    let auth = basic(USER, PASSWORD);
    let other_cluster = format!("{}/v2/myCluster/dbs/public/checkConnection", api.root);
    send("GET", &other_cluster, Some(&auth), None).assert_error(
        400,
        0,
        "Cluster not found in repository",
    );
    let other_db = format!("{}/v2/{CLUSTER}/dbs/other/checkConnection", api.root);
    send("GET", &other_db, Some(&auth), None).assert_error(400, 0, "other");

    // §1.3: unknown paths get Spring's default error body; known paths the
    // wrong method gets 405 with the WebAPI's.
    for path in [
        format!("{}/v2/{CLUSTER}/dbs/public/nothing", api.root),
        format!("{}/v1/{CLUSTER}/dbs/public/checkConnection", api.root),
        format!("{}/v2/{CLUSTER}/public/checkConnection", api.root),
    ] {
        let reply = send("GET", &path, Some(&auth), None);
        assert_eq!(reply.status, 404, "{path}");
        let body = reply.json();
        assert_eq!(body["status"], 404);
        assert_eq!(body["error"], "Not Found");
        assert!(path.ends_with(body["path"].as_str().unwrap()), "{body}");
        assert!(body["timestamp"].is_string());
    }
    let reply = send("DELETE", &url, Some(&auth), None);
    reply.assert_error(405, 0, "DELETE");
    assert_eq!(reply.header("allow"), Some("GET"));
    send("GET", &api.url("/tql"), Some(&auth), None).assert_error(405, 0, "GET");

    // A body must be JSON (415), and well-formed (400).
    let create = api.url("/containers");
    let schema = sensor_a_schema().to_string();
    send(
        "POST",
        &create,
        Some(&auth),
        Some(("text/plain", schema.as_bytes())),
    )
    .assert_error(415, 0, "text/plain");
    send(
        "POST",
        &create,
        Some(&auth),
        Some(("application/json", b"{\"container_name\":")),
    )
    .assert_error(400, 0, "");
    // Plain `application/json` works as well as the documented charset form.
    let reply = send(
        "POST",
        &create,
        Some(&auth),
        Some(("application/json", schema.as_bytes())),
    );
    assert_empty(&reply, 201);

    // The password never reaches the log.
    assert!(!api.host.log().contains(&base64(b"admin:admin")));
}

#[test]
fn create_and_describe_containers() {
    let api = WebApi::start();

    // §2.4: 201, empty body.
    let reply = api.send("POST", "/containers", &sensor_a_schema());
    assert_empty(&reply, 201);

    // §2.3: the documented shape (this store keeps no indexes: `[]`).
    let reply = api.get("/containers/sensor_a/info");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "application/json; charset=UTF-8");
    assert_eq!(
        reply.json(),
        json!({
            "container_name": "sensor_a",
            "container_type": "TIME_SERIES",
            "rowkey": true,
            "columns": [
                {"name": "ts", "type": "TIMESTAMP", "index": [], "timePrecision": "MILLISECOND"},
                {"name": "temp", "type": "DOUBLE", "index": []},
                {"name": "label", "type": "STRING", "index": []}
            ]
        })
    );
    // Names are matched case-insensitively, and answered in the stored case.
    let reply = api.get("/containers/SENSOR_A/info");
    assert_eq!(reply.json()["container_name"], "sensor_a");
    api.get("/containers/nothing/info")
        .assert_error(404, 0, "Container not existed");

    // An existing container, in any case: 409.
    api.send("POST", "/containers", &sensor_a_schema())
        .assert_error(409, 0, "Container already existed");
    let mut upper = sensor_a_schema();
    upper["container_name"] = json!("Sensor_A");
    api.send("POST", "/containers", &upper)
        .assert_error(409, 0, "Container already existed");

    // A collection without a row key, every scalar type.
    let collection = json!({
        "container_name": "meta",
        "container_type": "COLLECTION",
        "columns": [
            {"name": "id", "type": "STRING"}, {"name": "on", "type": "BOOL"},
            {"name": "b", "type": "BYTE"}, {"name": "s", "type": "SHORT"},
            {"name": "i", "type": "INTEGER"}, {"name": "l", "type": "LONG"},
            {"name": "f", "type": "FLOAT"}, {"name": "d", "type": "DOUBLE"},
            {"name": "t", "type": "TIMESTAMP"}, {"name": "x", "type": "BLOB"}
        ]
    });
    assert_empty(&api.send("POST", "/containers", &collection), 201);
    let info = api.get("/containers/meta/info").json();
    assert_eq!(info["container_type"], "COLLECTION");
    assert_eq!(info["rowkey"], false);
    let types: Vec<&str> = info["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "STRING",
            "BOOL",
            "BYTE",
            "SHORT",
            "INTEGER",
            "LONG",
            "FLOAT",
            "DOUBLE",
            "TIMESTAMP",
            "BLOB"
        ]
    );

    // The validation of §2.4.
    let without = |field: &str| {
        let mut body = sensor_a_schema();
        body["container_name"] = json!("other");
        body.as_object_mut().unwrap().remove(field);
        body
    };
    api.send("POST", "/containers", &without("container_type"))
        .assert_error(400, 0, "'container_type' is required");
    let mut body = sensor_a_schema();
    body["container_name"] = json!("");
    api.send("POST", "/containers", &body)
        .assert_error(400, 0, "Container name is invalid");
    api.send("POST", "/containers", &without("container_name"))
        .assert_error(400, 0, "Container name is invalid");
    let mut body = without("columns");
    api.send("POST", "/containers", &body)
        .assert_error(400, 0, "'columns' is required");
    body["columns"] = json!([]);
    api.send("POST", "/containers", &body)
        .assert_error(400, 0, "'columns' is required");
    body["columns"] = json!([{"name": "ts", "type": "TIMESTAMP"}, {"name": "v"}]);
    api.send("POST", "/containers", &body)
        .assert_error(400, 0, "Empty column type");
    // Refused by the store: an unknown type, a nanosecond time series.
    body["columns"] =
        json!([{"name": "ts", "type": "TIMESTAMP"}, {"name": "v", "type": "decimal"}]);
    api.send("POST", "/containers", &body)
        .assert_error(400, 0, "");
    body["columns"] = json!([{"name": "ts", "type": "TIMESTAMP", "timePrecision": "NANOSECOND"}]);
    api.send("POST", "/containers", &body)
        .assert_error(400, 0, "");
    api.get("/containers/other/info")
        .assert_error(404, 0, "Container not existed");
}

#[test]
fn list_containers() {
    let api = WebApi::start();
    for (name, kind) in [
        ("sensor_b", "TIME_SERIES"),
        ("sensor_a", "TIME_SERIES"),
        ("boiler_01", "TIME_SERIES"),
        ("Zeta", "COLLECTION"),
    ] {
        let body = json!({
            "container_name": name,
            "container_type": kind,
            "rowkey": true,
            "columns": [{"name": "ts", "type": "TIMESTAMP"}, {"name": "v", "type": "DOUBLE"}]
        });
        api.expect("POST", "/containers", &body, 201);
    }
    let list = |query: &str| {
        let reply = api.get(&format!("/containers{query}"));
        assert_eq!(reply.status, 200, "{query}: {}", reply.text());
        assert_eq!(reply.content_type, "application/json; charset=UTF-8");
        reply.json()
    };
    // Plain string order: upper case first. `total` ignores limit and offset.
    assert_eq!(
        list("?limit=3"),
        json!({"names": ["Zeta", "boiler_01", "sensor_a"], "total": 4, "offset": 0, "limit": 3})
    );
    assert_eq!(
        list("?limit=3&offset=2"),
        json!({"names": ["sensor_a", "sensor_b"], "total": 4, "offset": 2, "limit": 3})
    );
    assert_eq!(
        list("?limit=2&sort=DESC"),
        json!({"names": ["sensor_b", "sensor_a"], "total": 4, "offset": 0, "limit": 2})
    );
    // `total` counts after the type filter.
    assert_eq!(
        list("?limit=10&type=TIME_SERIES&sort=ASC"),
        json!({"names": ["boiler_01", "sensor_a", "sensor_b"], "total": 3, "offset": 0, "limit": 10})
    );
    assert_eq!(
        list("?limit=10&type=COLLECTION"),
        json!({"names": ["Zeta"], "total": 1, "offset": 0, "limit": 10})
    );
    assert_eq!(
        list("?limit=0"),
        json!({"names": [], "total": 4, "offset": 0, "limit": 0})
    );
    // `limit` echoes min(limit, maxLimit).
    assert_eq!(list("?limit=5000000")["limit"], 1_000_000);
    // The type filter, the order, the offset and the limit together: the
    // time series descending are sensor_b, sensor_a, boiler_01.
    assert_eq!(
        list("?limit=1&offset=1&type=TIME_SERIES&sort=DESC"),
        json!({"names": ["sensor_a"], "total": 3, "offset": 1, "limit": 1})
    );
    assert_eq!(
        list("?limit=5&offset=2&type=TIME_SERIES&sort=DESC"),
        json!({"names": ["boiler_01"], "total": 3, "offset": 2, "limit": 5})
    );
    assert_eq!(
        list("?limit=5&offset=3&type=TIME_SERIES"),
        json!({"names": [], "total": 3, "offset": 3, "limit": 5})
    );
    assert_eq!(
        list("?limit=0&type=COLLECTION&sort=DESC"),
        json!({"names": [], "total": 1, "offset": 0, "limit": 0})
    );
    assert_eq!(
        list("?limit=2&offset=9"),
        json!({"names": [], "total": 4, "offset": 9, "limit": 2})
    );
    // More collections, between and around the others in byte order.
    for name in ["Alpha", "mid", "zz"] {
        let body = json!({
            "container_name": name,
            "container_type": "COLLECTION",
            "rowkey": true,
            "columns": [{"name": "k", "type": "STRING"}]
        });
        api.expect("POST", "/containers", &body, 201);
    }
    assert_eq!(
        list("?limit=2&offset=1&type=COLLECTION&sort=DESC"),
        json!({"names": ["mid", "Zeta"], "total": 4, "offset": 1, "limit": 2})
    );
    assert_eq!(
        list("?limit=3&offset=1&type=COLLECTION&sort=ASC"),
        json!({"names": ["Zeta", "mid", "zz"], "total": 4, "offset": 1, "limit": 3})
    );
    // All seven descending: zz, sensor_b, sensor_a, mid, boiler_01, Zeta, Alpha.
    assert_eq!(
        list("?limit=3&offset=2&sort=DESC"),
        json!({"names": ["sensor_a", "mid", "boiler_01"], "total": 7, "offset": 2, "limit": 3})
    );
    assert_eq!(
        list("?limit=4&offset=1&type=TIME_SERIES"),
        json!({"names": ["sensor_a", "sensor_b"], "total": 3, "offset": 1, "limit": 4})
    );

    api.get("/containers")
        .assert_error(400, 0, "'limit' is required");
    api.get("/containers?offset=1")
        .assert_error(400, 0, "'limit' is required");
    for bad in [
        "?limit=-1",
        "?limit=x",
        "?limit=1&offset=-1",
        "?limit=1&sort=asc",
        "?limit=1&type=collection",
        "?limit=1&type=TABLE",
    ] {
        let reply = api.get(&format!("/containers{bad}"));
        reply.assert_error(400, 0, "");
    }
}

#[test]
fn put_rows() {
    let api = WebApi::start();
    api.sensor_a(json!([]));

    // §2.6's example: 200 {"count": 2}.
    let example = json!([
        ["2024-05-01T12:00:00.000Z", 21.5, "ok"],
        ["2024-05-01T12:01:00.000Z", 21.7, null]
    ]);
    let reply = api.expect("PUT", "/containers/sensor_a/rows", &example, 200);
    assert_eq!(reply.content_type, "application/json; charset=UTF-8");
    assert_eq!(reply.json(), json!({"count": 2}));
    // An existing key is replaced: `count` is the request's rows, the store keeps 2.
    let again = json!([["2024-05-01T12:01:00.000Z", "22.5", "again"]]);
    assert_eq!(
        api.expect("PUT", "/containers/SENSOR_A/rows", &again, 200)
            .json(),
        json!({"count": 1})
    );
    let stored = api
        .expect(
            "POST",
            "/containers/sensor_a/rows",
            &json!({"limit": 10}),
            200,
        )
        .json();
    assert_eq!(
        stored["rows"],
        json!([
            ["2024-05-01T12:00:00.000Z", 21.5, "ok"],
            ["2024-05-01T12:01:00.000Z", 22.5, "again"]
        ])
    );

    // The errors of §2.6; none writes anything (all rows convert first).
    let rows = "/containers/sensor_a/rows";
    api.send("PUT", rows, &json!([]))
        .assert_error(400, 0, "Rows data is empty");
    api.send("PUT", rows, &json!([["2024-05-01T12:02:00.000Z", 1.0]]))
        .assert_error(400, 0, "Row data is invalid");
    api.send(
        "PUT",
        rows,
        &json!([["2024-05-01T12:02:00.000Z", 1.0, "a", "b"]]),
    )
    .assert_error(400, 0, "Row data is invalid");
    api.send(
        "PUT",
        rows,
        &json!([
            ["2024-05-01T12:03:00.000Z", 1.0, "ok"],
            ["2024-05-01T12:04:00Z", 1.0, "ok"]
        ]),
    )
    .assert_error(
        400,
        0,
        "The specified data cannot be converted to TIMESTAMP type.",
    );
    api.send(
        "PUT",
        rows,
        &json!([
            ["2024-05-01T12:03:00.000Z", 1.0, "ok"],
            ["2024-05-01T12:04:00.000Z", "warm", "ok"]
        ]),
    )
    .assert_error(
        400,
        0,
        "The specified data cannot be converted to DOUBLE type.",
    );
    api.send(
        "PUT",
        rows,
        &json!([["2024-05-01T12:03:00.000Z", 1.0, true]]),
    )
    .assert_error(
        400,
        0,
        "The specified data cannot be converted to STRING type.",
    );
    api.send("PUT", rows, &json!({"rows": []}))
        .assert_error(400, 0, "");
    api.send("PUT", "/containers/nothing/rows", &example)
        .assert_error(404, 0, "Container not existed");
    // maxRequestSize (20 MB by the WebAPI's estimate): 21 rows of 1 MB strings.
    let big = "x".repeat(1 << 20);
    let heavy: Vec<Value> = (0..21)
        .map(|i| json!([format!("2024-05-02T00:00:{i:02}.000Z"), 1.0, big]))
        .collect();
    api.send("PUT", rows, &json!(heavy))
        .assert_error(400, 0, "Too many rows data");
    let total = api.expect("POST", rows, &json!({"limit": 10}), 200).json()["total"].clone();
    assert_eq!(total, 2, "a refused put wrote rows");
    // Twenty of them fit.
    assert_eq!(
        api.expect("PUT", rows, &json!(heavy[..19]), 200).json(),
        json!({"count": 19})
    );
}

#[test]
fn get_rows() {
    let api = WebApi::start();
    api.sensor_a(six_rows());

    // §2.7: `rows` (not `results`), every column, total before limit/offset.
    let request = json!({"offset": 0, "limit": 100, "condition": "temp > 21.6", "sort": "ts desc"});
    let reply = api.expect("POST", "/containers/sensor_a/rows", &request, 200);
    assert_eq!(reply.content_type, "application/json; charset=UTF-8");
    assert_eq!(
        reply.json(),
        json!({
            "columns": [
                {"name": "ts", "type": "TIMESTAMP", "timePrecision": "MILLISECOND"},
                {"name": "temp", "type": "DOUBLE"},
                {"name": "label", "type": "STRING"}
            ],
            "rows": [
                ["2024-05-01T12:05:00.000Z", 23.0, null],
                ["2024-05-01T12:03:00.000Z", 22.5, "ok"],
                ["2024-05-01T12:01:00.000Z", 21.7, null]
            ],
            "offset": 0,
            "limit": 100,
            "total": 3
        })
    );
    // Paging: total stays the count of matching rows.
    let page = api
        .expect(
            "POST",
            "/containers/sensor_a/rows",
            &json!({"limit": 2, "offset": 3, "sort": "temp asc"}),
            200,
        )
        .json();
    assert_eq!(
        page["rows"],
        json!([
            ["2024-05-01T12:01:00.000Z", 21.7, null],
            ["2024-05-01T12:03:00.000Z", 22.5, "ok"]
        ])
    );
    assert_eq!(
        (
            page["total"].clone(),
            page["offset"].clone(),
            page["limit"].clone()
        ),
        (json!(6), json!(3), json!(2))
    );
    // The condition is TQL: functions, IS NULL, LIKE.
    let page = api
        .expect(
            "POST",
            "/containers/sensor_a/rows",
            &json!({"limit": 10, "condition": "label IS NULL OR label LIKE 'cal%'"}),
            200,
        )
        .json();
    assert_eq!(page["total"], 3);
    let limit = api
        .expect(
            "POST",
            "/containers/sensor_a/rows",
            &json!({"limit": 5_000_000}),
            200,
        )
        .json();
    assert_eq!(
        (limit["limit"].clone(), limit["total"].clone()),
        (json!(1_000_000), json!(6))
    );

    let rows = "/containers/sensor_a/rows";
    api.send("POST", rows, &json!({}))
        .assert_error(400, 0, "'limit' is invalid");
    api.send("POST", rows, &json!({"limit": 0}))
        .assert_error(400, 0, "'limit' is invalid");
    api.send("POST", rows, &json!({"limit": 1, "offset": -1}))
        .assert_error(400, 0, "'offset' is invalid");
    api.send("POST", rows, &json!({"limit": 1, "condition": "temp >"}))
        .assert_error(400, 151001, "");
    api.send("POST", rows, &json!({"limit": 1, "condition": "nope = 1"}))
        .assert_error(400, 151001, "");
    api.send("POST", rows, &json!({"limit": 1, "sort": "temp sideways"}))
        .assert_error(400, 151001, "");
    api.send("POST", "/containers/nothing/rows", &json!({"limit": 1}))
        .assert_error(404, 0, "Container not existed");
}

#[test]
fn delete_containers() {
    let api = WebApi::start();
    api.sensor_a(six_rows());
    let mut b = sensor_a_schema();
    b["container_name"] = json!("sensor_b");
    api.expect("POST", "/containers", &b, 201);

    // §2.5: 204 whether or not each existed.
    let reply = api.send("DELETE", "/containers", &json!(["sensor_a", "nothing"]));
    assert_empty(&reply, 204);
    api.get("/containers/sensor_a/info")
        .assert_error(404, 0, "Container not existed");
    assert_eq!(
        api.get("/containers?limit=10").json()["names"],
        json!(["sensor_b"])
    );
    assert_empty(&api.send("DELETE", "/containers", &json!(["nothing"])), 204);
    assert_empty(&api.send("DELETE", "/containers", &json!([])), 204);
    api.send("DELETE", "/containers", &json!("sensor_b"))
        .assert_error(400, 0, "");
    // Dropped means gone: the name can be created again, empty.
    api.sensor_a(json!([]));
    let rows = api
        .expect(
            "POST",
            "/containers/sensor_a/rows",
            &json!({"limit": 10}),
            200,
        )
        .json();
    assert_eq!(rows["total"], 0);
}

#[test]
fn multi_container_put() {
    let api = WebApi::start();
    api.sensor_a(json!([]));
    let mut b = sensor_a_schema();
    b["container_name"] = json!("sensor_b");
    api.expect("POST", "/containers", &b, 201);

    // §2.11 PUT: one answer per container, in request order.
    let request = json!([
        {"containerName": "sensor_a", "rows": [["2024-05-01T12:00:00.000Z", 21.5, "ok"], ["2024-05-01T12:01:00.000Z", 21.7, null]]},
        {"containerName": "sensor_b", "rows": [["2024-05-01T12:00:00.000Z", 19.0, "x"]]}
    ]);
    let reply = api.expect("PUT", "/containers/rows", &request, 200);
    assert_eq!(reply.content_type, "application/json; charset=UTF-8");
    assert_eq!(
        reply.json(),
        json!([
            {"containerName": "sensor_a", "updatedRows": 2},
            {"containerName": "sensor_b", "updatedRows": 1}
        ])
    );
    let total = |name: &str| {
        api.expect(
            "POST",
            &format!("/containers/{name}/rows"),
            &json!({"limit": 10}),
            200,
        )
        .json()["total"]
            .as_i64()
            .unwrap()
    };
    assert_eq!((total("sensor_a"), total("sensor_b")), (2, 1));

    // Everything converts before anything is written: one bad container, or
    // one bad value, and neither container changes.
    let later = |second: Value| {
        json!([
            {"containerName": "sensor_a", "rows": [["2024-05-01T13:00:00.000Z", 1.0, "new"]]},
            second
        ])
    };
    api.send(
        "PUT",
        "/containers/rows",
        &later(
            json!({"containerName": "nothing", "rows": [["2024-05-01T13:00:00.000Z", 1.0, "new"]]}),
        ),
    )
    .assert_error(404, 0, "Container not existed");
    api.send(
        "PUT",
        "/containers/rows",
        &later(json!({"containerName": "sensor_b", "rows": [["yesterday", 1.0, "new"]]})),
    )
    .assert_error(
        400,
        0,
        "The specified data cannot be converted to TIMESTAMP type.",
    );
    api.send(
        "PUT",
        "/containers/rows",
        &later(json!({"containerName": "sensor_b", "rows": [["2024-05-01T13:00:00.000Z", 1.0]]})),
    )
    .assert_error(400, 0, "Row data is invalid");
    let big = "x".repeat(11 << 20);
    api.send("PUT", "/containers/rows", &later(json!({"containerName": "sensor_b", "rows": [["2024-05-01T13:00:00.000Z", 1.0, big], ["2024-05-01T13:01:00.000Z", 1.0, big]]})))
        .assert_error(400, 0, "Too many rows data");
    assert_eq!((total("sensor_a"), total("sensor_b")), (2, 1));
    // An empty list writes nothing and says so, as the WebAPI's loop over no
    // entries does; an entry without rows or a name is refused.
    assert_eq!(
        api.expect("PUT", "/containers/rows", &json!([]), 200)
            .json(),
        json!([])
    );
    api.send(
        "PUT",
        "/containers/rows",
        &json!([{"containerName": "sensor_a", "rows": []}]),
    )
    .assert_exact_error(400, 0, "Row data is invalid");
    api.send(
        "PUT",
        "/containers/rows",
        &json!([{"containerName": " ", "rows": [["2024-05-01T13:00:00.000Z", 1.0, "x"]]}]),
    )
    .assert_exact_error(400, 0, "The container is invalid");
    api.send("PUT", "/containers/rows", &json!([{"rows": []}]))
        .assert_error(400, 0, "");
}

#[test]
fn tql() {
    let api = WebApi::start();
    api.sensor_a(six_rows());

    // §2.9's example request: three statements, answered in order.
    let answers = api.tql(json!([
        {"name": "sensor_a", "stmt": "select * where temp > 21.6 order by ts desc limit 50", "columns": null},
        {"name": "sensor_a", "stmt": "select avg(temp) where ts >= TIMESTAMPADD(HOUR, NOW(), -1)"},
        {"name": "sensor_a", "stmt": "select * limit 10", "columns": ["ts", "temp"], "hasPartialExecution": true}
    ]));
    assert_eq!(answers.len(), 3);
    assert_eq!(
        answers[0],
        json!({
            "columns": [
                {"name": "ts", "type": "TIMESTAMP", "timePrecision": "MILLISECOND"},
                {"name": "temp", "type": "DOUBLE"},
                {"name": "label", "type": "STRING"}
            ],
            "results": [
                ["2024-05-01T12:05:00.000Z", 23.0, null],
                ["2024-05-01T12:03:00.000Z", 22.5, "ok"],
                ["2024-05-01T12:01:00.000Z", 21.7, null]
            ],
            "offset": 0,
            "limit": 50,
            "total": 3,
            "responseSizeByte": 16 + 18 + 16
        })
    );
    // AVG over no rows (the rows are from 2024): the row shape, empty, total 1.
    assert_eq!(
        answers[1],
        json!({
            "columns": [
                {"name": "ts", "type": "TIMESTAMP", "timePrecision": "MILLISECOND"},
                {"name": "temp", "type": "DOUBLE"},
                {"name": "label", "type": "STRING"}
            ],
            "results": [],
            "offset": 0,
            "limit": 1_000_000,
            "total": 1,
            "responseSizeByte": 0
        })
    );
    assert_eq!(
        answers[2]["columns"],
        json!([
            {"name": "ts", "type": "TIMESTAMP", "timePrecision": "MILLISECOND"},
            {"name": "temp", "type": "DOUBLE"}
        ])
    );
    assert_eq!(answers[2]["results"].as_array().unwrap().len(), 6);
    assert_eq!(
        answers[2]["results"][0],
        json!(["2024-05-01T12:00:00.000Z", 21.5])
    );
    assert_eq!(
        (
            answers[2]["total"].clone(),
            answers[2]["limit"].clone(),
            answers[2]["responseSizeByte"].clone()
        ),
        (json!(6), json!(10), json!(96))
    );

    // Aggregations: `aggregationResult`, DOUBLE (COUNT 6 → 6.0), no paging keys.
    let answers = api.tql(json!([
        {"name": "sensor_a", "stmt": "select count(*)"},
        {"name": "sensor_a", "stmt": "select max(temp) where ts > TIMESTAMP('2024-05-01T12:00:00Z')", "columns": ["label"]},
        {"name": "sensor_a", "stmt": "SELECT MIN(ts)"},
        {"name": "sensor_a", "stmt": "select sum(temp) where label = 'ok'"},
        {"name": "sensor_a", "stmt": "select count(*) where NOT label IS NULL"}
    ]));
    let double = json!([{"name": "aggregationResult", "type": "DOUBLE"}]);
    assert_eq!(answers[0], json!({"columns": double, "results": [[6.0]]}));
    let count_text = serde_json::to_string(&answers[0]).unwrap();
    assert!(count_text.contains("[[6.0]]"), "{count_text}");
    assert_eq!(answers[1], json!({"columns": double, "results": [[23.0]]}));
    assert_eq!(
        answers[2],
        json!({
            "columns": [{"name": "aggregationResult", "type": "TIMESTAMP", "timePrecision": "MILLISECOND"}],
            "results": [["2024-05-01T12:00:00.000Z"]]
        })
    );
    assert_eq!(answers[3], json!({"columns": double, "results": [[64.0]]}));
    assert_eq!(answers[4], json!({"columns": double, "results": [[4.0]]}));

    // Selection functions: total −1; the projection applies.
    let answers = api.tql(json!([
        {"name": "sensor_a", "stmt": "select MAX_ROWS(temp)"},
        {"name": "sensor_a", "stmt": "select TIME_PREV(*, TIMESTAMP('2024-05-01T12:02:30.000Z'))", "columns": ["temp", "ts"]},
        {"name": "sensor_a", "stmt": "select TIME_SAMPLING(temp, TIMESTAMP('2024-05-01T12:00:00.000Z'), TIMESTAMP('2024-05-01T12:01:00.000Z'), 30, SECOND)", "columns": []}
    ]));
    assert_eq!(
        answers[0]["results"],
        json!([["2024-05-01T12:05:00.000Z", 23.0, null]])
    );
    assert_eq!(answers[0]["total"], -1);
    assert_eq!(
        answers[1]["columns"],
        json!([{"name": "temp", "type": "DOUBLE"}, {"name": "ts", "type": "TIMESTAMP", "timePrecision": "MILLISECOND"}])
    );
    assert_eq!(
        answers[1]["results"],
        json!([[19.0, "2024-05-01T12:02:00.000Z"]])
    );
    assert_eq!(
        (
            answers[1]["total"].clone(),
            answers[1]["limit"].clone(),
            answers[1]["offset"].clone()
        ),
        (json!(-1), json!(1_000_000), json!(0))
    );
    assert_eq!(
        answers[2]["results"],
        json!([
            ["2024-05-01T12:00:00.000Z", 21.5, "ok"],
            ["2024-05-01T12:00:30.000Z", 21.6, "ok"],
            ["2024-05-01T12:01:00.000Z", 21.7, null]
        ])
    );

    // LIMIT (§2.9 step 4): capped at maxLimit, added when absent; `total`
    // counts without LIMIT/OFFSET/ORDER BY; CR/LF are spaces; `FROM` may name
    // the container; a trailing `;` is harmless here.
    let answers = api.tql(json!([
        {"name": "sensor_a", "stmt": "select * from sensor_a\r\nwhere temp < 22\norder by temp desc limit 2 offset 1"},
        {"name": "sensor_a", "stmt": "select * limit 5000000 offset 4"},
        {"name": "sensor_a", "stmt": "select * where label = 'ok';"},
        {"name": "sensor_a", "stmt": "select * where label = 'order by limit' -- a comment"}
    ]));
    assert_eq!(
        answers[0]["results"],
        json!([
            ["2024-05-01T12:00:00.000Z", 21.5, "ok"],
            ["2024-05-01T12:04:00.000Z", 20.0, "ok"]
        ])
    );
    assert_eq!(
        (
            answers[0]["total"].clone(),
            answers[0]["offset"].clone(),
            answers[0]["limit"].clone()
        ),
        (json!(4), json!(1), json!(2))
    );
    assert_eq!(
        (
            answers[1]["total"].clone(),
            answers[1]["offset"].clone(),
            answers[1]["limit"].clone()
        ),
        (json!(6), json!(4), json!(1_000_000))
    );
    assert_eq!(answers[1]["results"].as_array().unwrap().len(), 2);
    assert_eq!(
        (answers[2]["total"].clone(), answers[2]["limit"].clone()),
        (json!(3), json!(1_000_000))
    );
    assert_eq!(answers[3]["total"], 0);

    // Our extensions (GridDB rejects both): several aggregates, a column list.
    let answers = api.tql(json!([
        {"name": "sensor_a", "stmt": "SELECT COUNT(*), AVG(temp) WHERE temp > 21"},
        {"name": "sensor_a", "stmt": "SELECT temp, ts WHERE temp > 22 LIMIT 1", "columns": ["ts"]}
    ]));
    assert_eq!(
        answers[0]["columns"],
        json!([{"name": "COUNT(*)", "type": "LONG"}, {"name": "AVG(temp)", "type": "DOUBLE"}])
    );
    assert_eq!(answers[0]["results"], json!([[4, 22.175]]));
    assert_eq!(answers[0]["total"], 1);
    assert_eq!(
        answers[1]["columns"],
        json!([{"name": "ts", "type": "TIMESTAMP", "timePrecision": "MILLISECOND"}])
    );
    assert_eq!(answers[1]["results"], json!([["2024-05-01T12:03:00.000Z"]]));
    assert_eq!(
        (answers[1]["total"].clone(), answers[1]["limit"].clone()),
        (json!(2), json!(1))
    );

    // The errors.
    let one = |stmt: &str, columns: Value| json!([{"name": "sensor_a", "stmt": stmt, "columns": columns}]);
    api.send("POST", "/tql", &one("select *", json!(["TEMP"])))
        .assert_error(400, 0, "Column 'TEMP' not existed");
    api.send("POST", "/tql", &one("select * where", Value::Null))
        .assert_error(400, 151001, "TQL");
    api.send("POST", "/tql", &one("select * from sensor_b", Value::Null))
        .assert_error(400, 151001, "");
    api.send("POST", "/tql", &one("select nope(temp)", Value::Null))
        .assert_error(400, 151001, "");
    api.send("POST", "/tql", &one("EXPLAIN select *", Value::Null))
        .assert_error(400, 0, "EXPLAIN");
    api.send("POST", "/tql", &one("", Value::Null))
        .assert_error(400, 0, "");
    api.send(
        "POST",
        "/tql",
        &json!([
            {"name": "sensor_a", "stmt": "select *"},
            {"name": "nothing", "stmt": "select *"}
        ]),
    )
    .assert_error(404, 0, "Container not existed");
    api.send("POST", "/tql", &json!([]))
        .assert_error(400, 0, "");
    let eleven: Vec<Value> = (0..11)
        .map(|_| json!({"name": "sensor_a", "stmt": "select *"}))
        .collect();
    api.send("POST", "/tql", &json!(eleven))
        .assert_error(400, 0, "");
    let ten: Vec<Value> = (0..10)
        .map(|_| json!({"name": "sensor_a", "stmt": "select count(*)"}))
        .collect();
    assert_eq!(api.tql(json!(ten)).len(), 10);
    api.send("POST", "/tql", &json!([{"name": "sensor_a"}]))
        .assert_error(400, 0, "");
}

#[test]
fn grafana_datasource_requests() {
    let api = WebApi::start();
    api.sensor_a(six_rows());
    let auth = basic(USER, PASSWORD);

    // Save & Test.
    assert_empty(&api.get("/checkConnection"), 200);
    // The container picker.
    let list = api.get("/containers?limit=1000").json();
    assert_eq!(list["names"], json!(["sensor_a"]));
    // The column picker: exact type names, container_type.
    let info = api.get("/containers/sensor_a/info").json();
    assert_eq!(info["container_type"], "TIME_SERIES");
    assert_eq!(info["columns"][0]["type"], "TIMESTAMP");
    assert_eq!(info["columns"][1]["type"], "DOUBLE");

    // A panel query in builder mode, and TIME_SAMPLING with $__interval.
    let from = "TIMESTAMP('2024-05-01T11:00:00.000Z')";
    let to = "TIMESTAMP('2024-05-01T12:03:30.000Z')";
    let body = json!([
        {"name": "sensor_a", "stmt": format!("SELECT * FROM sensor_a WHERE temp >= 20 AND (ts > {from} AND ts < {to}) LIMIT 1000 OFFSET 0"), "columns": ["temp", "ts"]},
        {"name": "sensor_a", "stmt": format!("SELECT TIME_SAMPLING(*, TIMESTAMP('2024-05-01T12:00:00.000Z'), TIMESTAMP('2024-05-01T12:01:00.000Z'), 20000, MILLISECOND) FROM sensor_a WHERE (ts > {from} AND ts < {to})"), "columns": null},
        {"name": "sensor_a", "stmt": "select * where NOT label IS null AND label LIKE 'o%'", "columns": ["ts", "label"]}
    ]);
    let reply = send(
        "POST",
        &api.url("/tql"),
        Some(&auth),
        Some((
            "application/json;charset=UTF-8",
            body.to_string().as_bytes(),
        )),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answers = reply.json();
    assert_eq!(
        answers[0],
        json!({
            "columns": [{"name": "temp", "type": "DOUBLE"}, {"name": "ts", "type": "TIMESTAMP", "timePrecision": "MILLISECOND"}],
            "results": [
                [21.5, "2024-05-01T12:00:00.000Z"],
                [21.7, "2024-05-01T12:01:00.000Z"],
                [22.5, "2024-05-01T12:03:00.000Z"]
            ],
            "offset": 0,
            "limit": 1000,
            "total": 3,
            "responseSizeByte": 48
        })
    );
    // Every 20 s: `*` copies the previous row, keyed at the instant.
    assert_eq!(
        answers[1]["results"],
        json!([
            ["2024-05-01T12:00:00.000Z", 21.5, "ok"],
            ["2024-05-01T12:00:20.000Z", 21.5, "ok"],
            ["2024-05-01T12:00:40.000Z", 21.5, "ok"],
            ["2024-05-01T12:01:00.000Z", 21.7, null]
        ])
    );
    assert_eq!(
        (answers[1]["total"].clone(), answers[1]["limit"].clone()),
        (json!(-1), json!(1_000_000))
    );
    assert_eq!(answers[2]["results"].as_array().unwrap().len(), 3);
    assert_eq!(
        answers[2]["results"][0],
        json!(["2024-05-01T12:00:00.000Z", "ok"])
    );
    // What the plugin shows on failure: errorMessage.
    let bad =
        json!([{"name": "sensor_a", "stmt": "SELECT * FROM sensor_a WHERE", "columns": null}]);
    let reply = send(
        "POST",
        &api.url("/tql"),
        Some(&auth),
        Some(("application/json", bad.to_string().as_bytes())),
    );
    assert!(reply.json()["errorMessage"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

#[test]
fn the_sample_inserted_over_http_reads_back_through_tql() {
    let api = WebApi::start();
    assert_eq!(insert_sample(&api.host).status, 200);
    let answers = api.tql(json!([{"name": "sample", "stmt": "select *", "columns": null}]));
    let answer = &answers[0];
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 6, "{answer}");
    assert_eq!(
        (
            answer["total"].clone(),
            answer["offset"].clone(),
            answer["limit"].clone()
        ),
        (json!(6), json!(0), json!(1_000_000))
    );
    assert_eq!(
        answer["columns"][0],
        json!({"name": "timestamp", "type": "TIMESTAMP", "timePrecision": "MILLISECOND"})
    );
    assert_eq!(results[0][0], "2020-02-18T17:25:38.255Z");
    assert_eq!(results[5][0], "2020-02-18T17:26:28.255Z");
    let temperature = answer["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c["name"] == "temperature")
        .unwrap();
    assert_eq!(results[0][temperature], 78.0);
    // The same rows through the other endpoints.
    assert!(api.get("/containers?limit=1000").json()["names"]
        .as_array()
        .unwrap()
        .contains(&json!("sample")));
    let rows = api
        .expect("POST", "/containers/sample/rows", &json!({"limit": 3}), 200)
        .json();
    assert_eq!(
        (
            rows["total"].clone(),
            rows["rows"].as_array().unwrap().len()
        ),
        (json!(6), 3)
    );
}

#[test]
fn sql_ddl_adds_columns_and_nothing_else() {
    let api = WebApi::start();
    api.sensor_a(six_rows());

    let stmt = "ALTER TABLE sensor_a ADD COLUMN humidity DOUBLE";
    let answers = api
        .expect("POST", "/sql/ddl", &json!([{"stmt": stmt}]), 200)
        .json();
    assert_eq!(
        answers,
        json!([{"status": 1, "message": null, "stmt": stmt}])
    );
    let info = api.get("/containers/sensor_a/info").json();
    assert_eq!(
        info["columns"][3],
        json!({"name": "humidity", "type": "DOUBLE", "index": []})
    );
    // The old rows read the new column as null; puts now need four values.
    let answers = api.tql(json!([{"name": "sensor_a", "stmt": "select * limit 1"}]));
    assert_eq!(
        answers[0]["results"],
        json!([["2024-05-01T12:00:00.000Z", 21.5, "ok", null]])
    );
    api.expect(
        "PUT",
        "/containers/sensor_a/rows",
        &json!([["2024-05-01T12:06:00.000Z", 1.0, "ok", 55.5]]),
        200,
    );

    // Failures are items with status 0; the HTTP status stays 200.
    let answers = api
        .expect(
            "POST",
            "/sql/ddl",
            &json!([
                {"stmt": "alter table sensor_a add flag bool;"},
                {"stmt": "ALTER TABLE sensor_a ADD COLUMN humidity DOUBLE"},
                {"stmt": "ALTER TABLE nothing ADD COLUMN x INTEGER"},
                {"stmt": "ALTER TABLE sensor_a DROP COLUMN temp"}
            ]),
            200,
        )
        .json();
    let status: Vec<i64> = answers
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_i64().unwrap())
        .collect();
    assert_eq!(status, [1, 0, 0, 0], "{answers}");
    assert!(answers[1]["message"].is_string());
    assert_eq!(
        api.get("/containers/sensor_a/info").json()["columns"][4]["type"],
        "BOOL"
    );

    // The SQL endpoints are POST only.
    let reply = api.send("PUT", "/sql/ddl", &json!([{"stmt": stmt}]));
    reply.assert_error(405, 0, "PUT");
    assert_eq!(reply.header("allow"), Some("POST"));

    // The WebAPI's list checks: a statement of another kind, an empty list.
    api.send(
        "POST",
        "/sql/ddl",
        &json!([{"stmt": "select * from sensor_a"}]),
    )
    .assert_exact_error(400, 0, "Statement is invalid");
    api.send(
        "POST",
        "/sql/ddl",
        &json!([{"stmt": "ALTER TABLE sensor_a\nADD COLUMN y INTEGER"}]),
    )
    .assert_exact_error(400, 0, "Statement is invalid");
    api.send("POST", "/sql/ddl", &json!([]))
        .assert_exact_error(400, 0, "List of SQL is empty");

    // Any other SQL: 400.
    api.send(
        "POST",
        "/sql/ddl",
        &json!([{"stmt": "CREATE TABLE t (a INTEGER)"}]),
    )
    .assert_error(400, 0, "SQL is not supported by this server");
    for path in [
        "/sql/dml/query",
        "/sql/dml/update",
        "/sql/dcl",
        "/sql",
        "/sql/select",
        "/sql/update",
    ] {
        api.send("POST", path, &json!([{"stmt": "select * from sensor_a"}]))
            .assert_error(400, 0, "SQL is not supported by this server");
    }
}

/// Jackson's `new ObjectMapper()` (FAIL_ON_UNKNOWN_PROPERTIES): a request
/// body naming a field its DTO lacks is a 400, wherever the field is, and
/// nothing is done. The fields the DTOs do have all pass.
#[test]
fn unknown_fields_in_request_bodies_are_refused() {
    let api = WebApi::start();
    api.sensor_a(json!([]));

    // Must show: the create of a container with a stray field.
    let mut body = sensor_a_schema();
    body["container_name"] = json!("sensor_c");
    body["bogus"] = json!(1);
    api.send("POST", "/containers", &body).assert_exact_error(
        400,
        0,
        "Mapping JSON data error at  field 'bogus'",
    );
    api.get("/containers/sensor_c/info")
        .assert_error(404, 0, "Container not existed");
    let mut body = sensor_a_schema();
    body["container_name"] = json!("sensor_c");
    body["columns"][1]["nullable"] = json!(true);
    api.send("POST", "/containers", &body).assert_exact_error(
        400,
        0,
        "Mapping JSON data error at  field 'columns' object 2 field 'nullable'",
    );
    // A value no Java enum constant names is a mapping error at its field.
    let mut body = sensor_a_schema();
    body["container_type"] = json!("TABLE");
    api.send("POST", "/containers", &body).assert_exact_error(
        400,
        0,
        "Mapping JSON data error at  field 'container_type'",
    );

    // A tql item, a multi-put entry, a row query, an SQL statement.
    api.send(
        "POST",
        "/tql",
        &json!([
            {"name": "sensor_a", "stmt": "select *"},
            {"name": "sensor_a", "stmt": "select *", "limit": 5}
        ]),
    )
    .assert_exact_error(400, 0, "Mapping JSON data error at  object 2 field 'limit'");
    api.send(
        "PUT",
        "/containers/rows",
        &json!([{"containerName": "sensor_a", "rows": [["2024-05-01T12:00:00.000Z", 1.0, "x"]], "rowKey": true}]),
    )
    .assert_exact_error(400, 0, "Mapping JSON data error at  object 1 field 'rowKey'");
    api.send(
        "PUT",
        "/containers/rows",
        &json!([{"container_name": "sensor_a", "rows": [["2024-05-01T12:00:00.000Z", 1.0, "x"]]}]),
    )
    .assert_exact_error(
        400,
        0,
        "Mapping JSON data error at  object 1 field 'container_name'",
    );
    api.send(
        "POST",
        "/containers/sensor_a/rows",
        &json!({"limit": 10, "order": "ts"}),
    )
    .assert_exact_error(400, 0, "Mapping JSON data error at  field 'order'");
    api.send(
        "POST",
        "/sql/ddl",
        &json!([{"stmt": "ALTER TABLE sensor_a ADD COLUMN x INTEGER", "timeout": 5}]),
    )
    .assert_exact_error(
        400,
        0,
        "Mapping JSON data error at  object 1 field 'timeout'",
    );
    assert_eq!(
        api.get("/containers/sensor_a/info").json()["columns"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "a refused statement ran"
    );
    let rows = api
        .expect(
            "POST",
            "/containers/sensor_a/rows",
            &json!({"limit": 10}),
            200,
        )
        .json();
    assert_eq!(rows["total"], 0, "a refused put wrote rows");

    // Every field of GWTQLInput, GWQueryParams, GWBulkPutRow and GWSQLInput.
    api.expect(
        "PUT",
        "/containers/rows",
        &json!([{"containerName": "sensor_a", "columns": null, "rows": [["2024-05-01T12:00:00.000Z", 1.0, "x"]]}]),
        200,
    );
    let answers = api.tql(json!([
        {"name": "sensor_a", "stmt": "select *", "columns": ["temp"], "hasPartialExecution": false}
    ]));
    assert_eq!(answers[0]["results"], json!([[1.0]]));
    let rows = api
        .expect(
            "POST",
            "/containers/sensor_a/rows",
            &json!({"limit": 10, "offset": 0, "condition": "temp > 0", "sort": "ts desc", "fileNameCol": "label"}),
            200,
        )
        .json();
    assert_eq!(rows["total"], 1);
    api.expect(
        "POST",
        "/sql/ddl",
        &json!([{"type": "sql-ddl", "stmt": "ALTER TABLE sensor_a ADD COLUMN x INTEGER"}]),
        200,
    );
}

/// Spring reads and maps a body before the WebAPI looks at the credentials:
/// a wrong content type is a 415 and a bad body a 400 even with a wrong
/// password; a good body with it is the 401.
#[test]
fn bodies_are_mapped_before_the_credentials_are_checked() {
    let api = WebApi::start();
    api.sensor_a(six_rows());
    let wrong = basic(USER, "wrong");
    let tql = api.url("/tql");
    let good = json!([{"name": "sensor_a", "stmt": "select *"}]).to_string();

    send(
        "POST",
        &tql,
        Some(&wrong),
        Some(("text/plain", good.as_bytes())),
    )
    .assert_error(415, 0, "text/plain");
    send(
        "POST",
        &tql,
        Some(&wrong),
        Some(("application/json", b"[{\"name\": ")),
    )
    .assert_error(400, 0, "");
    send(
        "POST",
        &tql,
        Some(&wrong),
        Some((
            "application/json",
            b"[{\"name\": \"sensor_a\", \"stmt\": \"select *\", \"x\": 1}]",
        )),
    )
    .assert_exact_error(400, 0, "Mapping JSON data error at  object 1 field 'x'");
    send("POST", &tql, None, Some(("application/json", b""))).assert_exact_error(
        400,
        0,
        "Required request body is missing",
    );
    let put = api.url("/containers/sensor_a/rows");
    send("PUT", &put, Some(&wrong), Some(("application/json", b"{}"))).assert_error(400, 0, "");
    // The cluster is checked after the body too.
    let other_cluster = format!("{}/v2/myCluster/dbs/public/tql", api.root);
    send(
        "POST",
        &other_cluster,
        Some(&basic(USER, PASSWORD)),
        Some(("text/plain", good.as_bytes())),
    )
    .assert_error(415, 0, "");
    send(
        "POST",
        &other_cluster,
        Some(&basic(USER, PASSWORD)),
        Some(("application/json", good.as_bytes())),
    )
    .assert_error(400, 0, "Cluster not found in repository");

    // A body that maps: now the credentials count.
    send(
        "POST",
        &tql,
        Some(&wrong),
        Some(("application/json", good.as_bytes())),
    )
    .assert_error(401, 10005, "TXN_AUTH_FAILED");
    send(
        "POST",
        &tql,
        None,
        Some(("application/json", good.as_bytes())),
    )
    .assert_error(401, 0, "Basic authentication not found");
    // The method comes before the body.
    send(
        "PUT",
        &tql,
        Some(&wrong),
        Some(("text/plain", good.as_bytes())),
    )
    .assert_error(405, 0, "PUT");
}

/// `maxResponseSize` by the WebAPI's estimate (8 for a TIMESTAMP, the UTF-8
/// length of a STRING): the running sum of the answered rows may reach the
/// limit, one byte past it is 400 "Too many result".
#[test]
fn answers_past_the_response_size_are_too_many_result() {
    const LIMIT: usize = 50;
    let limit = LIMIT.to_string();
    let api = WebApi::start_with(&[("SPIN_VARIABLE_WEBAPI_MAX_RESPONSE_BYTES", &limit)]);
    let schema = json!({
        "container_name": "sized",
        "container_type": "TIME_SERIES",
        "rowkey": true,
        "columns": [{"name": "ts", "type": "TIMESTAMP"}, {"name": "label", "type": "STRING"}]
    });
    api.expect("POST", "/containers", &schema, 201);
    let labels = ["aaaaaaaaa", "bbbbbbbbb", "cccccccc", "ddddddddd"];
    let rows: Vec<Value> = labels
        .iter()
        .enumerate()
        .map(|(i, label)| json!([format!("2024-05-01T12:0{i}:00.000Z"), label]))
        .collect();
    api.expect("PUT", "/containers/sized/rows", &json!(rows), 200);
    let estimate = |picked: &[usize]| picked.iter().map(|&i| 8 + labels[i].len()).sum::<usize>();
    assert_eq!(estimate(&[0, 1, 2]), LIMIT);
    assert_eq!(estimate(&[0, 1, 3]), LIMIT + 1);

    // Get rows: the first three weigh the limit exactly; four are past it.
    let reply = api.expect("POST", "/containers/sized/rows", &json!({"limit": 3}), 200);
    assert_eq!(reply.json()["rows"].as_array().unwrap().len(), 3);
    api.send("POST", "/containers/sized/rows", &json!({"limit": 4}))
        .assert_exact_error(400, 0, "Too many result");
    // TQL: the same rows, and a one-byte-heavier choice of three.
    let answers = api.tql(json!([{"name": "sized", "stmt": "select * limit 3"}]));
    assert_eq!(answers[0]["responseSizeByte"], LIMIT);
    api.send(
        "POST",
        "/tql",
        &json!([{"name": "sized", "stmt": "select * where label <> 'cccccccc'"}]),
    )
    .assert_exact_error(400, 0, "Too many result");
    // One statement past it fails the whole request.
    api.send(
        "POST",
        "/tql",
        &json!([
            {"name": "sized", "stmt": "select count(*)"},
            {"name": "sized", "stmt": "select *"}
        ]),
    )
    .assert_exact_error(400, 0, "Too many result");
    // A projection weighs only its columns; aggregations are not sized.
    let answers = api.tql(json!([
        {"name": "sized", "stmt": "select *", "columns": ["label"]},
        {"name": "sized", "stmt": "select count(*)"},
        {"name": "sized", "stmt": "select *", "columns": ["label"]}
    ]));
    assert_eq!(answers[0]["responseSizeByte"], 35);
    assert_eq!(answers[1]["results"], json!([[4.0]]));
}

/// The `timeZone` setting: answers write TIMESTAMP values at that offset
/// (rows, TQL, MIN/MAX); puts still take only `…SSSZ`, and instants in TQL
/// text are unchanged.
#[test]
fn answers_write_timestamps_in_the_time_zone() {
    let api = WebApi::start_with(&[("SPIN_VARIABLE_WEBAPI_TIME_ZONE", "+09:00")]);
    api.sensor_a(six_rows());
    let rows = api
        .expect(
            "POST",
            "/containers/sensor_a/rows",
            &json!({"limit": 1}),
            200,
        )
        .json();
    assert_eq!(
        rows["rows"],
        json!([["2024-05-01T21:00:00.000+09:00", 21.5, "ok"]])
    );
    let answers = api.tql(json!([
        {"name": "sensor_a", "stmt": "select * where ts = TIMESTAMP('2024-05-01T12:05:00.000Z')"},
        {"name": "sensor_a", "stmt": "select MAX(ts)"},
        {"name": "sensor_a", "stmt": "select TIME_NEXT(*, TIMESTAMP('2024-05-01T12:02:30.000Z'))", "columns": ["ts"]}
    ]));
    assert_eq!(
        answers[0]["results"],
        json!([["2024-05-01T21:05:00.000+09:00", 23.0, null]])
    );
    assert_eq!(
        answers[1],
        json!({
            "columns": [{"name": "aggregationResult", "type": "TIMESTAMP", "timePrecision": "MILLISECOND"}],
            "results": [["2024-05-01T21:05:00.000+09:00"]]
        })
    );
    assert_eq!(
        answers[2]["results"],
        json!([["2024-05-01T21:03:00.000+09:00"]])
    );
    // A put takes what the WebAPI's DateFormatUtils parses: `…SSSZ` only.
    api.send(
        "PUT",
        "/containers/sensor_a/rows",
        &json!([["2024-05-02T06:00:00.000+09:00", 1.0, "x"]]),
    )
    .assert_exact_error(
        400,
        0,
        "The specified data cannot be converted to TIMESTAMP type.",
    );
}

/// `webapi_multi_put = griddb` (the default), as the Java service: entries
/// go into a map by container name, so a container named twice keeps only
/// its last entry's rows, while the answer still lists each entry.
#[test]
fn griddb_multi_put_keeps_the_last_entry_of_a_repeated_container() {
    let api = WebApi::start();
    api.sensor_a(json!([]));
    let mut b = sensor_a_schema();
    b["container_name"] = json!("sensor_b");
    api.expect("POST", "/containers", &b, 201);

    let request = json!([
        {"containerName": "sensor_a", "rows": [["2024-05-01T12:00:00.000Z", 1.0, "first"], ["2024-05-01T12:01:00.000Z", 2.0, "first"]]},
        {"containerName": "sensor_b", "rows": [["2024-05-01T12:00:00.000Z", 3.0, "b"]]},
        {"containerName": "sensor_a", "rows": [["2024-05-01T12:02:00.000Z", 4.0, "last"]]}
    ]);
    assert_eq!(
        api.expect("PUT", "/containers/rows", &request, 200).json(),
        json!([
            {"containerName": "sensor_a", "updatedRows": 2},
            {"containerName": "sensor_b", "updatedRows": 1},
            {"containerName": "sensor_a", "updatedRows": 1}
        ])
    );
    let rows = |name: &str| {
        api.expect(
            "POST",
            &format!("/containers/{name}/rows"),
            &json!({"limit": 10}),
            200,
        )
        .json()["rows"]
            .clone()
    };
    assert_eq!(
        rows("sensor_a"),
        json!([["2024-05-01T12:02:00.000Z", 4.0, "last"]])
    );
    assert_eq!(
        rows("sensor_b"),
        json!([["2024-05-01T12:00:00.000Z", 3.0, "b"]])
    );

    // `atomic`: every entry written, in request order, in one transaction.
    let api = WebApi::start_with(&[("SPIN_VARIABLE_WEBAPI_MULTI_PUT", "atomic")]);
    api.sensor_a(json!([]));
    api.expect("POST", "/containers", &b, 201);
    api.expect("PUT", "/containers/rows", &request, 200);
    assert_eq!(
        api.expect(
            "POST",
            "/containers/sensor_a/rows",
            &json!({"limit": 10}),
            200
        )
        .json()["total"],
        3
    );
}

/// `webapi_version = 5.6`: no `sql/ddl` (nor the other 5.7 SQL paths), which
/// Spring answers 404; `sql/update` adds a column, answering `updatedRows` 0;
/// `hasPartialExecution` is not yet a field.
#[test]
fn release_5_6_adds_columns_through_sql_update() {
    let api = WebApi::start_with(&[("SPIN_VARIABLE_WEBAPI_VERSION", "5.6")]);
    api.sensor_a(six_rows());
    let stmt = "ALTER TABLE sensor_a ADD COLUMN humidity DOUBLE";
    for path in ["/sql/ddl", "/sql/dcl", "/sql/dml/query", "/sql/dml/update"] {
        api.send("POST", path, &json!([{"stmt": stmt}]))
            .assert_spring_not_found(&api.url(path));
    }
    assert_eq!(
        api.get("/containers/sensor_a/info").json()["columns"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let answers = api
        .expect("POST", "/sql/update", &json!([{"stmt": stmt}]), 200)
        .json();
    assert_eq!(
        answers,
        json!([{"updatedRows": 0, "status": 1, "message": null, "stmt": stmt}])
    );
    assert_eq!(
        api.get("/containers/sensor_a/info").json()["columns"][3],
        json!({"name": "humidity", "type": "DOUBLE", "index": []})
    );
    // A failing statement is an item with status 0; the request stays 200.
    let answers = api
        .expect("POST", "/sql/update", &json!([{"stmt": stmt}]), 200)
        .json();
    assert_eq!(
        (&answers[0]["updatedRows"], &answers[0]["status"]),
        (&json!(0), &json!(0))
    );
    assert!(answers[0]["message"].is_string(), "{answers}");
    api.send(
        "POST",
        "/sql/update",
        &json!([{"stmt": "UPDATE sensor_a SET temp = 0"}]),
    )
    .assert_exact_error(400, 0, "SQL is not supported by this server");

    // 5.5's routes are there; 5.7's TQL field is not.
    api.expect(
        "PUT",
        "/containers/rows",
        &json!([{"containerName": "sensor_a", "rows": [["2024-05-01T13:00:00.000Z", 1.0, "x", 50.0]]}]),
        200,
    );
    api.send(
        "POST",
        "/tql",
        &json!([{"name": "sensor_a", "stmt": "select *", "hasPartialExecution": true}]),
    )
    .assert_exact_error(
        400,
        0,
        "Mapping JSON data error at  object 1 field 'hasPartialExecution'",
    );
}

/// `webapi_version = 2.2`: none of 5.5's routes (multi-put, BLOB, sql/select,
/// sql/update), and column DTOs without `timePrecision`, in requests (an
/// unknown field) and in answers.
#[test]
fn release_2_2_has_no_multi_put_and_no_time_precision() {
    let api = WebApi::start_with(&[("SPIN_VARIABLE_WEBAPI_VERSION", "2.2")]);
    let mut precise = sensor_a_schema();
    precise["columns"][0]["timePrecision"] = json!("MILLISECOND");
    api.send("POST", "/containers", &precise)
        .assert_exact_error(
            400,
            0,
            "Mapping JSON data error at  field 'columns' object 1 field 'timePrecision'",
        );
    api.sensor_a(six_rows());

    for (method, path, body) in [
        (
            "PUT",
            "/containers/rows",
            json!([{"containerName": "sensor_a", "rows": []}]),
        ),
        ("POST", "/containers/rows", json!([{"name": "sensor_a"}])),
        (
            "POST",
            "/containers/sensor_a/rows/blob",
            json!({"limit": 1}),
        ),
        ("POST", "/sql/select", json!([{"stmt": "select 1"}])),
        ("POST", "/sql/update", json!([{"stmt": "select 1"}])),
        ("POST", "/sql/ddl", json!([{"stmt": "select 1"}])),
    ] {
        api.send(method, path, &body)
            .assert_spring_not_found(&api.url(path));
    }
    // The legacy `sql` is there (and refused here).
    api.send("POST", "/sql", &json!([{"stmt": "select 1"}]))
        .assert_error(400, 0, "SQL is not supported by this server");

    let ts = json!({"name": "ts", "type": "TIMESTAMP"});
    assert_eq!(
        api.get("/containers/sensor_a/info").json()["columns"][0],
        json!({"name": "ts", "type": "TIMESTAMP", "index": []})
    );
    let rows = api
        .expect(
            "POST",
            "/containers/sensor_a/rows",
            &json!({"limit": 1}),
            200,
        )
        .json();
    assert_eq!(rows["columns"][0], ts);
    let answers = api.tql(json!([
        {"name": "sensor_a", "stmt": "select * limit 1", "columns": ["ts"]},
        {"name": "sensor_a", "stmt": "select MIN(ts)"}
    ]));
    assert_eq!(answers[0]["columns"], json!([ts]));
    assert_eq!(
        answers[1]["columns"],
        json!([{"name": "aggregationResult", "type": "TIMESTAMP"}])
    );
    api.send(
        "POST",
        "/containers/sensor_a/rows",
        &json!({"limit": 1, "fileNameCol": "label"}),
    )
    .assert_exact_error(400, 0, "Mapping JSON data error at  field 'fileNameCol'");
}
