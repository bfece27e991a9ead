//! The components where the `cromflag` host is not: `target/portable/`
//! (insert and fetch composed with the GridDB store, the pass-through
//! pipeline and Spin's variables from the environment) under `wasmtime
//! serve`, against host B's `--webapi` standing in for GridDB (as in
//! tests/griddb.rs); and the same files under the `cromflag` host, whose
//! `allowed_outbound_hosts` lets them reach B.

use cromflag_tests::wasmtime::{portable, WasmtimeServe};
use cromflag_tests::{get, post, repo_root, sample_payload, Answer, Host};
use serde_json::Value;
use std::path::Path;
use tempfile::TempDir;

/// Host B: the embedded store, serving the WebAPI on a port the kernel picks.
fn start_webapi(data: &Path) -> Host {
    Host::start_with(
        &repo_root().join("spin.toml"),
        data,
        &["--webapi", "127.0.0.1:0"],
    )
}

fn griddb_url(b: &Host) -> String {
    format!(
        "http://127.0.0.1:{}/griddb",
        b.webapi_addr.expect("B serves the WebAPI").port()
    )
}

/// What the composed components read: Spin's variables, from the environment.
fn serve_env(b: &Host) -> Vec<(&'static str, String)> {
    vec![
        ("SPIN_VARIABLE_GRIDDB_URL", griddb_url(b)),
        // Fail fast: a call gives up after 5 s.
        ("SPIN_VARIABLE_GRIDDB_TIMEOUT_SECS", "5".into()),
    ]
}

/// The article's curl: the sample document to `/insert/sample`.
fn insert_article(url: &str) -> Answer {
    post(
        &format!("{url}/insert/sample"),
        "application/json",
        &sample_payload(),
    )
}

fn json_of(answer: &Answer) -> Value {
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

#[test]
fn the_composed_components_import_nothing_but_wasi() {
    for name in ["insert", "fetch"] {
        let bytes = std::fs::read(portable(name)).unwrap();
        let imports = cromflag_compose::imports(&bytes).unwrap();
        let foreign: Vec<&String> = imports.iter().filter(|i| !i.starts_with("wasi:")).collect();
        assert!(foreign.is_empty(), "{name} imports {foreign:?}");
        // The store is plugged in, and it reaches GridDB over wasi:http.
        assert!(
            imports
                .iter()
                .any(|i| i.starts_with("wasi:http/outgoing-handler@")),
            "{name}: {imports:?}"
        );
    }
    // What the host provides natively is what the plugs replaced.
    let insert = std::fs::read(cromflag_tests::component("insert_http")).unwrap();
    let imports = cromflag_compose::imports(&insert).unwrap();
    for plugged in [
        "cromflag:iot/store@0.1.0",
        "cromflag:iot/pipeline@0.1.0",
        "cromflag:iot/types@0.1.0",
    ] {
        assert!(imports.iter().any(|i| i == plugged), "{imports:?}");
    }
}

#[test]
fn wasmtime_serve_runs_the_article_against_the_webapi() {
    let dir = TempDir::new().unwrap();
    let b = start_webapi(&dir.path().join("b"));
    let env = serve_env(&b);
    let insert = WasmtimeServe::start(&portable("insert"), &env);
    let fetch = WasmtimeServe::start(&portable("fetch"), &env);

    let answer = insert_article(&insert.url(""));
    assert_eq!(
        (answer.status, answer.text()),
        (200, "True".to_owned()),
        "{}",
        insert.log()
    );

    // The rows are in B's store, and come back the same through either.
    let sample: Value = serde_json::from_slice(&sample_payload()).unwrap();
    let sent = sample["tsdata"].as_array().unwrap();
    let stored = json_of(&get(&b.url("/fetch/sample")));
    let served = json_of(&get(&fetch.url("/fetch/sample")));
    assert_eq!(served, stored);
    let rows = served.as_array().unwrap();
    assert_eq!(rows.len(), sent.len());
    for (row, sent) in rows.iter().zip(sent) {
        for (column, value) in sent.as_object().unwrap() {
            if column != "timestamp" {
                assert_eq!(&row[column], value, "{column} of {row}");
            }
        }
    }
    assert_same_answers(|p| fetch.url(p), &b, "/fetch/devices");
    // A range with an aggregate is the store's query, through the WebAPI.
    let aggregate = "/fetch/sample?agg=max&interval=1m&columns=temperature";
    assert_eq!(
        json_of(&get(&fetch.url(aggregate))),
        json_of(&get(&b.url(aggregate)))
    );

    // Bad input: the same 4xx and body as under the host.
    for body in [
        &br#"{"tsdata": 3}"#[..],
        b"not json",
        br#"{"deviceinfo": {"deviceid": "other"}, "tsdata": []}"#,
    ] {
        let portable = post(&insert.url("/insert/sample"), "application/json", body);
        let native = post(&b.url("/insert/sample"), "application/json", body);
        assert!((400..500).contains(&portable.status), "{}", portable.text());
        assert_eq!(
            (portable.status, portable.json()),
            (native.status, native.json())
        );
    }
}

/// `path` answers the same JSON through `a` (a URL of it) as through `b`. B writes the
/// last-seen times `/fetch/devices` lists once a second after a commit: the
/// two reads may fall on either side of that write, so a disagreement is
/// read again until it is done (5 s).
fn assert_same_answers(a: impl Fn(&str) -> String, b: &Host, path: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (via_a, via_b) = (json_of(&get(&a(path))), json_of(&get(&b.url(path))));
        if via_a == via_b || std::time::Instant::now() > deadline {
            assert_eq!(via_a, via_b, "{path}");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A manifest running the composed files under the `cromflag` host, which
/// provides their WASI imports; `allowed` is their `allowed_outbound_hosts`.
fn portable_manifest(dir: &Path, b: &Host, allowed: &str) -> std::path::PathBuf {
    let mut text = String::from(
        "spin_manifest_version = 2\n[application]\nname = \"portable\"\n\
         [[trigger.http]]\nroute = \"/insert/...\"\ncomponent = \"insert\"\n\
         [[trigger.http]]\nroute = \"/fetch/...\"\ncomponent = \"fetch\"\n",
    );
    for id in ["insert", "fetch"] {
        text.push_str(&format!(
            "[component.{id}]\nsource = \"{}\"\nallowed_outbound_hosts = [{allowed}]\n\
             environment = {{ SPIN_VARIABLE_GRIDDB_URL = \"{}\", SPIN_VARIABLE_GRIDDB_TIMEOUT_SECS = \"5\" }}\n",
            portable(id).display(),
            griddb_url(b),
        ));
    }
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_host_runs_the_composed_components_with_the_same_answers() {
    let dir = TempDir::new().unwrap();
    let b = start_webapi(&dir.path().join("b"));
    let port = b.webapi_addr.unwrap().port();
    let manifest = portable_manifest(dir.path(), &b, &format!("\"http://127.0.0.1:{port}\""));
    let a = Host::start_with(&manifest, &dir.path().join("a"), &["--mqtt-broker", "off"]);

    let answer = insert_article(&a.url(""));
    assert_eq!(
        (answer.status, answer.text()),
        (200, "True".to_owned()),
        "{}",
        a.log()
    );
    for path in [
        "/fetch/sample",
        "/fetch/devices",
        "/fetch/sample?agg=avg&interval=1m&columns=humidity",
    ] {
        assert_same_answers(|p| a.url(p), &b, path);
    }
    let bad = post(
        &a.url("/insert/sample"),
        "application/json",
        br#"{"tsdata": 3}"#,
    );
    let native = post(
        &b.url("/insert/sample"),
        "application/json",
        br#"{"tsdata": 3}"#,
    );
    assert_eq!((bad.status, bad.json()), (native.status, native.json()));
}

#[test]
fn outbound_http_goes_only_where_allowed_outbound_hosts_says() {
    let dir = TempDir::new().unwrap();
    let b = start_webapi(&dir.path().join("b"));
    let port = b.webapi_addr.unwrap().port();
    // Another port of the same host: not B.
    let elsewhere = if port == 65535 { port - 1 } else { port + 1 };
    let manifest = portable_manifest(dir.path(), &b, &format!("\"http://127.0.0.1:{elsewhere}\""));
    let a = Host::start_with(&manifest, &dir.path().join("a"), &["--mqtt-broker", "off"]);
    let answer = insert_article(&a.url(""));
    // The store could not reach GridDB: 503, and nothing was written.
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert!(
        answer.text().contains("denied") || answer.text().contains("Denied"),
        "{}",
        answer.text()
    );
    assert_eq!(get(&b.url("/fetch/sample")).status, 404);
}

/// What Spin does with the repository's `spin.toml`: every component that
/// imports `cromflag:iot/store` or `cromflag:iot/pipeline` names a
/// dependency for it (the interface, not the package, so the type-only
/// `cromflag:iot/types` import is left alone), inherits its configuration
/// (the store's SQLite database and variables), and composing it in as
/// Spin would leaves no cromflag import with functions: the plug fits.
#[test]
fn spin_toml_names_a_dependency_for_every_import_spin_lacks() {
    let root = repo_root();
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(root.join("spin.toml")).unwrap()).unwrap();
    let components = manifest["component"].as_table().unwrap();
    let mut checked = 0;
    for (id, component) in components {
        let source = root.join(component["source"].as_str().unwrap());
        let bytes = std::fs::read(&source).unwrap();
        let needed: Vec<String> = cromflag_compose::imports(&bytes)
            .unwrap()
            .into_iter()
            .filter(|i| {
                i.starts_with("cromflag:iot/store@") || i.starts_with("cromflag:iot/pipeline@")
            })
            .collect();
        if needed.is_empty() {
            continue;
        }
        assert_eq!(
            component.get("dependencies_inherit_configuration"),
            Some(&toml::Value::Boolean(true)),
            "{id}"
        );
        let dependencies = component["dependencies"]
            .as_table()
            .unwrap_or_else(|| panic!("{id}"));
        let mut plugs = Vec::new();
        for import in &needed {
            let interface = import.split('@').next().unwrap();
            let path = dependencies[interface]["path"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: {interface}"));
            let plug = std::fs::read(root.join(path)).unwrap();
            assert!(
                cromflag_compose::exports(&plug).unwrap().contains(import),
                "{id}: {path}"
            );
            plugs.push((path.to_owned(), plug));
        }
        let parts: Vec<cromflag_compose::Part> = plugs
            .iter()
            .map(|(path, bytes)| cromflag_compose::Part { name: path, bytes })
            .collect();
        let composed = cromflag_compose::compose(
            cromflag_compose::Part {
                name: id,
                bytes: &bytes,
            },
            &parts,
        )
        .unwrap();
        let imports = cromflag_compose::imports(&composed).unwrap();
        for import in &needed {
            assert!(!imports.contains(import), "{id} still imports {import}");
        }
        // The store runs on Spin's SQLite, which the component must be given.
        if imports.iter().any(|i| i == "fermyon:spin/sqlite@2.0.0") {
            let databases = component["sqlite_databases"]
                .as_array()
                .unwrap_or_else(|| panic!("{id}"));
            assert!(
                databases.contains(&toml::Value::String("default".into())),
                "{id}"
            );
        }
        checked += 1;
    }
    // insert, fetch, the three report components and the report route.
    assert_eq!(checked, 6);
    let insert = components["insert"]["dependencies"].as_table().unwrap();
    assert!(
        insert.contains_key("cromflag:iot/store") && insert.contains_key("cromflag:iot/pipeline")
    );
}
