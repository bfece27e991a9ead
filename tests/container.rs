//! The container image and the compose stack, checked without Docker: the
//! Dockerfile copies what exists and runs `cromflag up`, which the real binary
//! runs here from the image's layout (its working directory, manifest and
//! component paths, and its environment), answering the HEALTHCHECK and asking
//! for the tokens the comments say how to get; compose.yaml and
//! compose.griddb.yaml parse, build or pull every service and mount only what
//! is in the repository; Prometheus scrapes the host's `/metrics`; Grafana's
//! Prometheus datasource and the operations dashboard parse, and the dashboard
//! queries only the host's metrics, each as its type allows.

use cromflag_tests::access::{bearer, call, token_of};
use cromflag_tests::{cromflag_bin, get, repo_root, sample_of};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use yaml_rust2::{Yaml, YamlLoader};

// ---------------------------------------------------------------------------
// The Dockerfile.

/// One instruction: its stage (0 for the first FROM), keyword (upper case) and
/// arguments (continuation lines joined).
#[derive(Debug)]
struct Instruction {
    stage: usize,
    keyword: String,
    args: String,
}

fn dockerfile() -> Vec<Instruction> {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let mut instructions = Vec::new();
    let mut stage = None;
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        // Comments (the `# syntax=` directive too), also between continued lines.
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(continued) = trimmed.strip_suffix('\\') {
            pending.push_str(continued);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let whole = std::mem::take(&mut pending);
        let (keyword, args) = whole
            .split_once(char::is_whitespace)
            .unwrap_or((&whole, ""));
        let keyword = keyword.to_ascii_uppercase();
        if keyword == "FROM" {
            stage = Some(stage.map_or(0, |s| s + 1));
        }
        instructions.push(Instruction {
            stage: stage.expect("an instruction before the first FROM"),
            keyword,
            args: args.split_whitespace().collect::<Vec<_>>().join(" "),
        });
    }
    assert!(pending.is_empty(), "the Dockerfile ends in a continuation");
    instructions
}

fn last_stage(instructions: &[Instruction]) -> usize {
    instructions.last().unwrap().stage
}

/// The arguments of every `keyword` instruction of `stage`.
fn all<'a>(instructions: &'a [Instruction], stage: usize, keyword: &str) -> Vec<&'a str> {
    instructions
        .iter()
        .filter(|i| i.stage == stage && i.keyword == keyword)
        .map(|i| i.args.as_str())
        .collect()
}

/// The only `keyword` instruction of `stage`.
fn one<'a>(instructions: &'a [Instruction], stage: usize, keyword: &str) -> &'a str {
    let found = all(instructions, stage, keyword);
    assert_eq!(found.len(), 1, "{keyword} in stage {stage}: {found:?}");
    found[0]
}

/// `FROM image [AS name]` of each stage.
fn stages(instructions: &[Instruction]) -> Vec<(String, Option<String>)> {
    (0..=last_stage(instructions))
        .map(|stage| {
            let words: Vec<&str> = one(instructions, stage, "FROM").split(' ').collect();
            match words[..] {
                [image] => (image.to_owned(), None),
                [image, r#as, name] if r#as.eq_ignore_ascii_case("as") => {
                    (image.to_owned(), Some(name.to_owned()))
                }
                _ => panic!("FROM {words:?}"),
            }
        })
        .collect()
}

/// A COPY: `--from` (a stage name, or None for the build context), sources, destination.
#[derive(Debug)]
struct Copy {
    from: Option<String>,
    sources: Vec<String>,
    dest: String,
}

fn copies(instructions: &[Instruction], stage: usize) -> Vec<Copy> {
    all(instructions, stage, "COPY")
        .into_iter()
        .map(|args| {
            let mut from = None;
            let mut paths = Vec::new();
            for word in args.split(' ') {
                if let Some(stage) = word.strip_prefix("--from=") {
                    from = Some(stage.to_owned());
                } else if word.starts_with("--") {
                    // --chown, --chmod, --link: not about what is copied.
                } else {
                    paths.push(word.to_owned());
                }
            }
            let dest = paths.pop().expect("COPY has a destination");
            assert!(!paths.is_empty(), "COPY {args} has no source");
            Copy {
                from,
                sources: paths,
                dest,
            }
        })
        .collect()
}

/// `KEY=value` pairs of every ENV of `stage`.
fn env(instructions: &[Instruction], stage: usize) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for args in all(instructions, stage, "ENV") {
        for pair in args.split(' ') {
            let (key, value) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("ENV {args}: write KEY=value pairs"));
            vars.insert(key.to_owned(), value.to_owned());
        }
    }
    vars
}

/// An exec-form (JSON) ENTRYPOINT or CMD.
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args)
        .unwrap_or_else(|e| panic!("`{args}` is not the exec form (a JSON array): {e}"))
}

/// The files under `dir` whose names match `pattern` (one `*` at most).
fn glob(dir: &Path, pattern: &str) -> Vec<PathBuf> {
    let (prefix, suffix) = pattern.split_once('*').unwrap_or((pattern, ""));
    let exact = !pattern.contains('*');
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_str().unwrap();
            if exact {
                name == pattern
            } else {
                name.len() >= prefix.len() + suffix.len()
                    && name.starts_with(prefix)
                    && name.ends_with(suffix)
            }
        })
        .collect();
    found.sort();
    found
}

/// The local files a COPY source names (relative to `base`), with the single
/// `*` only in the file name.
fn matching(base: &Path, source: &str) -> Vec<PathBuf> {
    let path = base.join(source.trim_end_matches('/'));
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        !path.parent().unwrap().to_str().unwrap().contains('*'),
        "{source}: a wildcard only in the file name"
    );
    glob(path.parent().unwrap(), &name)
}

/// Whether `.dockerignore` leaves `source` (relative to the context) out.
/// Its patterns are kept simple: `name`, `dir/`, `a/b` or `**/name`.
fn ignored(source: &str) -> bool {
    let text = std::fs::read_to_string(repo_root().join(".dockerignore")).unwrap();
    let source = source.trim_start_matches("./").trim_end_matches('/');
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .any(|pattern| {
            assert!(
                !pattern.starts_with('!') && !pattern.trim_start_matches("**/").contains('*'),
                "a .dockerignore pattern this test does not read: {pattern}"
            );
            match pattern.strip_prefix("**/") {
                Some(name) => source.split('/').any(|part| part == name),
                None => {
                    let pattern = pattern.trim_end_matches('/');
                    source == pattern || source.starts_with(&format!("{pattern}/"))
                }
            }
        })
}

/// `host:port` → the port.
fn port_of(address: &str) -> u16 {
    address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("{address} is not host:port"))
}

/// The image's files that come from the repository's build, as `image path → local path`.
fn image_files(instructions: &[Instruction]) -> BTreeMap<PathBuf, PathBuf> {
    let names: Vec<Option<String>> = stages(instructions).into_iter().map(|s| s.1).collect();
    let final_stage = last_stage(instructions);
    let mut files = BTreeMap::new();
    for copy in copies(instructions, final_stage) {
        // A stage's files are where its WORKDIR puts them: the repository's layout.
        let base = match &copy.from {
            None => PathBuf::new(),
            Some(from) => {
                let stage = names
                    .iter()
                    .position(|n| n.as_deref() == Some(from.as_str()))
                    .unwrap_or_else(|| panic!("COPY --from={from}: no such stage"));
                PathBuf::from(one(instructions, stage, "WORKDIR"))
            }
        };
        for source in &copy.sources {
            let relative = Path::new(source)
                .strip_prefix(&base)
                .unwrap_or_else(|_| panic!("{source} is not under {}", base.display()));
            for local in matching(&repo_root(), relative.to_str().unwrap()) {
                let name = local.file_name().unwrap();
                let into = if copy.dest.ends_with('/') || copy.sources.len() > 1 {
                    Path::new(&copy.dest).join(name)
                } else {
                    PathBuf::from(&copy.dest)
                };
                files.insert(into, local);
            }
        }
    }
    files
}

/// Must show: the image is built from the repository's sources only, by the
/// command the CI builds with, on the Debian release it runs on; it carries
/// the binary, the manifest and every component the manifest names where the
/// manifest's relative paths find them; it runs `cromflag up` as a user of
/// its own, with its data in a volume, the ports it listens on exposed, and a
/// HEALTHCHECK on `/healthz`.
#[test]
fn the_dockerfile_builds_the_repository_and_runs_cromflag_up() {
    let instructions = dockerfile();
    let stages = stages(&instructions);
    assert_eq!(stages.len(), 2, "a builder and a runtime stage: {stages:?}");
    let (builder_image, builder) = &stages[0];
    assert_eq!(builder.as_deref(), Some("builder"));
    assert!(
        builder_image.starts_with("rust:") && builder_image.ends_with("-bookworm"),
        "{builder_image}: the official Rust image on bookworm"
    );
    // The binary links against the builder's glibc: the runtime is the same release.
    assert_eq!(stages[1].0, "debian:bookworm-slim");
    assert!(
        all(&instructions, 0, "RUN")
            .iter()
            .any(|run| run.ends_with("cargo build --release --locked -p cromflag")),
        "the builder runs `cargo build --release --locked -p cromflag`"
    );

    // Sources from the build context exist, and .dockerignore keeps them in.
    for stage in 0..stages.len() {
        for copy in copies(&instructions, stage)
            .into_iter()
            .filter(|c| c.from.is_none())
        {
            for source in &copy.sources {
                assert!(
                    !matching(&repo_root(), source).is_empty(),
                    "COPY {source}: not in the repository"
                );
                assert!(
                    !ignored(source),
                    "COPY {source}: .dockerignore leaves it out"
                );
            }
        }
    }
    // Build outputs: what this repository's build makes, where it makes it.
    let files = image_files(&instructions);
    let binary = files
        .get(Path::new("/usr/local/bin/cromflag"))
        .expect("the binary at /usr/local/bin/cromflag");
    assert_eq!(binary, &repo_root().join("target/release/cromflag"));

    // The manifest and its components, where `cromflag up` looks from WORKDIR.
    let runtime = last_stage(&instructions);
    let workdir = Path::new(one(&instructions, runtime, "WORKDIR"));
    let vars = env(&instructions, runtime);
    let manifest_name = vars
        .get("CROMFLAG_MANIFEST")
        .map_or("spin.toml", String::as_str);
    assert_eq!(
        files.get(&workdir.join(manifest_name)),
        Some(&repo_root().join("spin.toml")),
        "spin.toml in {}",
        workdir.display()
    );
    let named = manifest_files();
    assert!(named.len() > 5, "{named:?}");
    for source in named {
        let local = files
            .get(&workdir.join(&source))
            .unwrap_or_else(|| panic!("{source}, which spin.toml names, is not in the image"));
        assert_eq!(local, &repo_root().join(&source));
    }

    // How it runs.
    assert_eq!(
        vars.get("CROMFLAG_DATA_DIR").map(String::as_str),
        Some("/data")
    );
    let volumes = one(&instructions, runtime, "VOLUME");
    assert!(volumes.split(' ').any(|v| v == "/data"), "VOLUME {volumes}");
    let listen = &vars["CROMFLAG_LISTEN"];
    let broker = &vars["CROMFLAG_MQTT_BROKER"];
    let exposed: BTreeSet<u16> = one(&instructions, runtime, "EXPOSE")
        .split(' ')
        .map(|p| p.trim_end_matches("/tcp").parse().unwrap())
        .collect();
    assert_eq!(exposed, BTreeSet::from([port_of(listen), port_of(broker)]));
    let user = one(&instructions, runtime, "USER");
    assert!(!["root", "0"].contains(&user), "USER {user}");
    assert!(healthcheck(&instructions).contains("/healthz"));
    assert_eq!(command_line(&instructions), ["cromflag", "up"]);
}

/// The HEALTHCHECK's shell command.
fn healthcheck(instructions: &[Instruction]) -> String {
    let args = one(instructions, last_stage(instructions), "HEALTHCHECK");
    let (_options, command) = args
        .split_once("CMD ")
        .unwrap_or_else(|| panic!("HEALTHCHECK {args}: no CMD"));
    assert!(
        !command.starts_with('['),
        "the shell form, which expands CROMFLAG_LISTEN"
    );
    command.to_owned()
}

/// ENTRYPOINT followed by CMD: what the container runs.
fn command_line(instructions: &[Instruction]) -> Vec<String> {
    let runtime = last_stage(instructions);
    let mut argv = exec_form(one(instructions, runtime, "ENTRYPOINT"));
    argv.extend(exec_form(one(instructions, runtime, "CMD")));
    argv
}

/// Every file `spin.toml` names: components' `source`s and dependencies' `path`s.
fn manifest_files() -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join("spin.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    let mut files = BTreeSet::new();
    for component in manifest["component"].as_table().unwrap().values() {
        if let Some(source) = component.get("source").and_then(|s| s.as_str()) {
            files.insert(source.to_owned());
        }
        for dependency in component
            .get("dependencies")
            .and_then(|d| d.as_table())
            .into_iter()
            .flat_map(|d| d.values())
        {
            if let Some(path) = dependency.get("path").and_then(|p| p.as_str()) {
                files.insert(path.to_owned());
            }
        }
    }
    files.into_iter().collect()
}

/// Must show: every `CROMFLAG_*` variable the image sets is one `cromflag up`
/// reads (its `--help` names each flag's variable).
#[test]
fn cromflag_up_reads_every_variable_the_image_sets() {
    let instructions = dockerfile();
    let output = Command::new(cromflag_bin())
        .args(["up", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    let vars = env(&instructions, last_stage(&instructions));
    let ours: Vec<&String> = vars.keys().filter(|k| k.starts_with("CROMFLAG_")).collect();
    assert!(ours.len() >= 3, "{ours:?}");
    for var in ours {
        assert!(help.contains(&format!("env: {var}=")), "{var}:\n{help}");
    }
}

/// `cromflag` run as the image runs it: `dir/app` laid out as the image's
/// WORKDIR (spin.toml, and the built components under the path it names),
/// the image's environment with its data directory at `dir/data`.
struct ImageRun {
    app: PathBuf,
    env: BTreeMap<String, String>,
}

impl ImageRun {
    fn new(dir: &Path) -> ImageRun {
        let instructions = dockerfile();
        let app = dir.join("app");
        let components = "target/components/wasm32-wasip2/component";
        std::fs::create_dir_all(app.join(components).parent().unwrap()).unwrap();
        std::fs::copy(repo_root().join("spin.toml"), app.join("spin.toml")).unwrap();
        std::os::unix::fs::symlink(repo_root().join(components), app.join(components)).unwrap();
        let mut env = env(&instructions, last_stage(&instructions));
        env.insert(
            "CROMFLAG_DATA_DIR".into(),
            dir.join("data").to_str().unwrap().into(),
        );
        // The image's addresses (beyond loopback), on ports the kernel picks.
        for var in ["CROMFLAG_LISTEN", "CROMFLAG_MQTT_BROKER"] {
            let (host, _port) = env[var].rsplit_once(':').unwrap();
            env.insert(var.into(), format!("{host}:0"));
        }
        // Not the image's: compiled code shared with the other tests, as
        // tests/support's hosts share it, so nothing is compiled twice.
        env.insert(
            "CROMFLAG_CACHE_DIR".into(),
            repo_root()
                .join("target/test-compile-cache")
                .to_str()
                .unwrap()
                .into(),
        );
        ImageRun { app, env }
    }

    /// `cromflag <args>` in the WORKDIR with the image's environment and no
    /// other CROMFLAG_ or SPIN_VARIABLE_ variable.
    fn command(&self, args: &[String]) -> Command {
        let mut command = Command::new(cromflag_bin());
        command.args(args).current_dir(&self.app);
        for (key, _) in std::env::vars() {
            if key.starts_with("CROMFLAG_") || key.starts_with("SPIN_VARIABLE_") {
                command.env_remove(key);
            }
        }
        command.envs(&self.env);
        command
    }

    /// As `docker compose exec cromflag cromflag <args>`: stdout, or a panic.
    fn exec(&self, args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let Output {
            status,
            stdout,
            stderr,
        } = self.command(&args).output().unwrap();
        assert!(
            status.success(),
            "cromflag {args:?}: {}",
            String::from_utf8_lossy(&stderr)
        );
        String::from_utf8(stdout).unwrap()
    }
}

/// The container's main process; killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Must show: the image's command line (ENTRYPOINT + CMD, from WORKDIR, with
/// its ENV) starts the stack from the image's layout; the HEALTHCHECK passes
/// without a token; beyond loopback a read needs a token; and the tokens the
/// Dockerfile says how to get (`cromflag devices add`, `cromflag readers add`
/// in the running container) work against it.
#[test]
fn the_image_command_runs_the_stack_and_answers_its_healthcheck() {
    let instructions = dockerfile();
    let dir = tempfile::tempdir().unwrap();
    let image = ImageRun::new(dir.path());
    let argv = command_line(&instructions);
    let mut child = image
        .command(&argv[1..])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let running = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr = rest
                    .split(|c: char| c.is_whitespace() || c == '/')
                    .next()
                    .unwrap_or_default();
                let _ = tx.send(Ok(addr.parse::<SocketAddr>().unwrap()));
            }
            log.push_str(&line);
            log.push('\n');
        }
        let _ = tx.send(Err(log));
    });
    let addr = match rx.recv_timeout(Duration::from_secs(180)) {
        Ok(Ok(addr)) => addr,
        other => panic!("`{}` did not start: {other:?}", argv.join(" ")),
    };
    assert!(addr.ip().is_unspecified(), "{addr}: the image's 0.0.0.0");
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", addr.port());

    let health = get(&url("/healthz"));
    assert_eq!(health.status, 200, "{}", health.text());
    assert_eq!(health.json(), serde_json::json!({"status": "alive"}));
    // The HEALTHCHECK itself, where curl is installed as in the image.
    if Command::new("curl").arg("--version").output().is_ok() {
        let status = Command::new("sh")
            .arg("-c")
            .arg(healthcheck(&instructions))
            .env("CROMFLAG_LISTEN", format!("0.0.0.0:{}", addr.port()))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "the HEALTHCHECK failed");
    }

    // Beyond loopback: tokens.
    let refused = call("GET", &url("/fetch/devices"), None, b"");
    assert_eq!(refused.status, 401, "{}", refused.text());
    let device = token_of(&image.exec(&["devices", "add", "sensor-1"]));
    let stored = call(
        "POST",
        &url("/insert/sensor-1"),
        Some(&bearer(&device)),
        &sample_of("sensor-1"),
    );
    assert_eq!((stored.status, stored.text()), (200, "True".to_owned()));
    let reader = token_of(&image.exec(&["readers", "add", "prometheus"]));
    let devices = call("GET", &url("/fetch/devices"), Some(&bearer(&reader)), b"");
    assert_eq!(devices.status, 200, "{}", devices.text());
    assert!(devices.text().contains("sensor-1"), "{}", devices.text());

    // What Prometheus scrapes (deploy/prometheus/prometheus.yml): /metrics
    // with a reader token; every metric the dashboard shows is there.
    let unscraped = call("GET", &url("/metrics"), None, b"");
    assert_eq!(unscraped.status, 401, "{}", unscraped.text());
    let scraped = call("GET", &url("/metrics"), Some(&bearer(&reader)), b"");
    assert_eq!(scraped.status, 200, "{}", scraped.text());
    check_exported(&scraped.text());
    drop(running);
}

// ---------------------------------------------------------------------------
// compose.yaml, compose.griddb.yaml, Prometheus.

fn yaml(path: &str) -> Yaml {
    let text =
        std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(docs.len(), 1, "{path}: one document");
    docs.remove(0)
}

fn str_of<'a>(value: &'a Yaml, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what}: a string, not {value:?}"))
}

fn strings(value: &Yaml, what: &str) -> Vec<String> {
    match value {
        Yaml::BadValue => Vec::new(),
        Yaml::Array(items) => items.iter().map(|i| str_of(i, what).to_owned()).collect(),
        other => panic!("{what}: a list, not {other:?}"),
    }
}

/// The services of a compose file, by name.
fn services(compose: &Yaml) -> BTreeMap<String, &Yaml> {
    compose["services"]
        .as_hash()
        .expect("services")
        .iter()
        .map(|(name, service)| (str_of(name, "a service name").to_owned(), service))
        .collect()
}

/// A service's `environment`, written as a mapping (so that an override file
/// merges into it): name → value.
fn environment(service: &Yaml, what: &str) -> BTreeMap<String, String> {
    match &service["environment"] {
        Yaml::BadValue => BTreeMap::new(),
        Yaml::Hash(vars) => vars
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => panic!("{what}: {k:?} = {other:?}"),
                };
                (str_of(k, what).to_owned(), value)
            })
            .collect(),
        other => panic!("{what}: environment as a mapping, not {other:?}"),
    }
}

fn depends_on(service: &Yaml, what: &str) -> Vec<String> {
    match &service["depends_on"] {
        Yaml::Hash(map) => map.keys().map(|k| str_of(k, what).to_owned()).collect(),
        other => strings(other, what),
    }
}

/// A service's bind mounts and named volumes: (source, target).
fn mounts(service: &Yaml, what: &str) -> Vec<(String, String)> {
    match &service["volumes"] {
        Yaml::BadValue => Vec::new(),
        Yaml::Array(items) => items
            .iter()
            .map(|item| match item {
                Yaml::String(short) => {
                    let parts: Vec<&str> = short.split(':').collect();
                    assert!(
                        (2..=3).contains(&parts.len()),
                        "{what}: {short}: source:target[:mode]"
                    );
                    (parts[0].to_owned(), parts[1].to_owned())
                }
                long => (
                    str_of(&long["source"], what).to_owned(),
                    str_of(&long["target"], what).to_owned(),
                ),
            })
            .collect(),
        other => panic!("{what}: volumes {other:?}"),
    }
}

fn is_bind(source: &str) -> bool {
    source.starts_with("./") || source.starts_with("../") || source.starts_with('/')
}

/// The host path (relative to the repository) a service mounts at a
/// container path, through the bind mount that contains it.
fn host_path(service: &Yaml, what: &str, container_path: &str) -> PathBuf {
    mounts(service, what)
        .into_iter()
        .filter(|(source, _)| is_bind(source))
        .find_map(|(source, target)| {
            let rest = Path::new(container_path).strip_prefix(&target).ok()?;
            Some(Path::new(&source).join(rest))
        })
        .unwrap_or_else(|| panic!("{what}: nothing mounted at {container_path}"))
}

/// The container ports a service publishes ("host:container").
fn published(service: &Yaml, what: &str) -> BTreeSet<u16> {
    strings(&service["ports"], what)
        .iter()
        .map(|p| port_of(p.split('/').next().unwrap()))
        .collect()
}

/// `scheme://host:port/...` → (host, port).
fn host_and_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").expect("a URL").1;
    let authority = rest.split('/').next().unwrap();
    let (host, port) = authority.rsplit_once(':').expect("a port in the URL");
    (host.to_owned(), port.parse().unwrap())
}

fn profiles(service: &Yaml) -> Vec<String> {
    strings(&service["profiles"], "profiles")
}

/// The variables `spin.toml` declares, as SPIN_VARIABLE_<NAME> names them.
fn manifest_variables() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo_root().join("spin.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    manifest["variables"]
        .as_table()
        .unwrap()
        .keys()
        .map(|k| format!("SPIN_VARIABLE_{}", k.to_ascii_uppercase()))
        .collect()
}

/// Must show: both compose files parse; every service is built from this
/// repository or pulled; every host path mounted exists here and every named
/// volume is declared; dependencies exist and no always-on service waits on
/// one behind a profile; cromflag publishes what the image exposes and keeps
/// its data in a volume at the image's data directory; every SPIN_VARIABLE_
/// is a variable of spin.toml; Grafana gets every variable its provisioning
/// reads, sees the dashboards where the provider looks, and reaches cromflag
/// at the image's port; the GridDB override points cromflag at the WebAPI
/// service of the `griddb` profile.
#[test]
fn the_compose_files_run_what_the_repository_has() {
    let instructions = dockerfile();
    let image_env = env(&instructions, last_stage(&instructions));
    let compose = yaml("compose.yaml");
    let griddb = yaml("compose.griddb.yaml");
    let base = services(&compose);
    let overrides = services(&griddb);
    let declared: BTreeSet<String> = compose["volumes"]
        .as_hash()
        .map(|v| v.keys().map(|k| str_of(k, "a volume").to_owned()).collect())
        .unwrap_or_default();
    let variables = manifest_variables();

    for (file, services) in [("compose.yaml", &base), ("compose.griddb.yaml", &overrides)] {
        for (name, service) in services.iter() {
            let what = format!("{file}: {name}");
            if file == "compose.yaml" {
                let build = &service["build"];
                let context = build.as_str().or_else(|| build["context"].as_str());
                match context {
                    Some(context) => assert!(
                        repo_root().join(context).join("Dockerfile").is_file(),
                        "{what}: no Dockerfile in {context}"
                    ),
                    None => assert!(service["image"].as_str().is_some(), "{what}: no image"),
                }
            } else {
                assert!(base.contains_key(name), "{what}: an override of no service");
            }
            for (source, target) in mounts(service, &what) {
                if is_bind(&source) {
                    assert!(
                        !source.starts_with('/'),
                        "{what}: {source}: a path outside the repository"
                    );
                    assert!(
                        repo_root().join(&source).exists(),
                        "{what}: {source} (at {target}) is not in the repository"
                    );
                } else {
                    assert!(declared.contains(&source), "{what}: volume {source}");
                }
            }
            let service_profiles = base.get(name).map(|s| profiles(s)).unwrap_or_default();
            for dependency in depends_on(service, &what) {
                let depended = base
                    .get(&dependency)
                    .unwrap_or_else(|| panic!("{what}: depends on no service {dependency}"));
                let needed = profiles(depended);
                assert!(
                    needed.is_empty()
                        || file == "compose.griddb.yaml"
                        || needed.iter().any(|p| service_profiles.contains(p)),
                    "{what}: depends on {dependency}, which only runs with {needed:?}"
                );
            }
            for var in environment(service, &what).into_keys() {
                if var.starts_with("SPIN_VARIABLE_") {
                    assert!(
                        variables.contains(&var),
                        "{what}: {var} is no spin.toml variable"
                    );
                }
            }
        }
    }

    // cromflag, as the image runs it.
    let cromflag = base["cromflag"];
    let exposed: BTreeSet<u16> = one(&instructions, last_stage(&instructions), "EXPOSE")
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(published(cromflag, "cromflag"), exposed);
    let data = mounts(cromflag, "cromflag");
    assert!(
        data.iter()
            .any(|(s, t)| declared.contains(s) && t == &image_env["CROMFLAG_DATA_DIR"]),
        "cromflag's data directory in a named volume: {data:?}"
    );
    assert_eq!(profiles(base["mosquitto"]), ["broker"]);
    assert_eq!(profiles(base["griddb"]), ["griddb"]);
    assert_eq!(profiles(base["griddb-webapi"]), ["griddb"]);
    let conf =
        std::fs::read_to_string(repo_root().join("deploy/mosquitto/mosquitto.conf")).unwrap();
    assert!(conf.lines().any(|l| l.trim() == "listener 1883"), "{conf}");
    assert_eq!(
        host_path(
            base["mosquitto"],
            "mosquitto",
            "/mosquitto/config/mosquitto.conf"
        ),
        Path::new("./deploy/mosquitto/mosquitto.conf")
    );

    // Grafana: its provisioning's variables, the provider's path, cromflag's address.
    let grafana = base["grafana"];
    let grafana_env = environment(grafana, "grafana");
    for (dir, container) in [
        ("datasources", "/etc/grafana/provisioning/datasources"),
        ("dashboards", "/etc/grafana/provisioning/dashboards"),
    ] {
        assert_eq!(
            host_path(grafana, "grafana", container),
            Path::new(&format!("./grafana/provisioning/{dir}"))
        );
        for file in glob(
            &repo_root().join("grafana/provisioning").join(dir),
            "*.yaml",
        ) {
            let text = std::fs::read_to_string(&file).unwrap();
            for var in text
                .split("${")
                .skip(1)
                .map(|s| s.split('}').next().unwrap())
            {
                assert!(
                    grafana_env.contains_key(var),
                    "{}: ${{{var}}} is not set for grafana",
                    file.display()
                );
            }
        }
    }
    let providers = yaml("grafana/provisioning/dashboards/cromflag.yaml");
    let path = str_of(
        &providers["providers"][0]["options"]["path"],
        "the provider's path",
    );
    assert_eq!(
        host_path(grafana, "grafana", path),
        Path::new("./grafana/dashboards")
    );
    let (host, port) = host_and_port(&grafana_env["CROMFLAG_URL"]);
    assert!(base.contains_key(&host), "CROMFLAG_URL: no service {host}");
    assert_eq!(port, port_of(&image_env["CROMFLAG_LISTEN"]));

    // GridDB: the store's variables point at the profile's WebAPI.
    let store = environment(overrides["cromflag"], "compose.griddb.yaml: cromflag");
    assert_eq!(store["SPIN_VARIABLE_STORE"], "griddb");
    let url = &store["SPIN_VARIABLE_GRIDDB_URL"];
    assert!(url.ends_with("/griddb"), "{url}");
    let (host, port) = host_and_port(url);
    let webapi = base
        .get(&host)
        .unwrap_or_else(|| panic!("{url}: no service {host}"));
    assert_eq!(profiles(webapi), ["griddb"]);
    assert_eq!(
        store["SPIN_VARIABLE_GRIDDB_ORIGIN"],
        format!("http://{host}:{port}")
    );
    assert!(depends_on(overrides["cromflag"], "cromflag").contains(&host));
}

/// Must show: Prometheus' configuration, as compose mounts it, parses and
/// scrapes `/metrics` of the cromflag service at the image's port with a
/// bearer token read from a file in the mounted directory (kept out of git);
/// Grafana's datasource reaches the prometheus service and assumes its scrape
/// interval.
#[test]
fn prometheus_scrapes_the_host_metrics() {
    let instructions = dockerfile();
    let image_env = env(&instructions, last_stage(&instructions));
    let compose = yaml("compose.yaml");
    let base = services(&compose);
    let prometheus = base["prometheus"];
    let config_file = strings(&prometheus["command"], "prometheus' command")
        .iter()
        .find_map(|arg| arg.strip_prefix("--config.file=").map(str::to_owned))
        .expect("--config.file");
    let config_path = host_path(prometheus, "prometheus", &config_file);
    assert_eq!(config_path, Path::new("./deploy/prometheus/prometheus.yml"));
    let config = yaml("deploy/prometheus/prometheus.yml");

    let jobs = config["scrape_configs"].as_vec().expect("scrape_configs");
    let job = jobs
        .iter()
        .find(|j| j["job_name"].as_str() == Some("cromflag"))
        .expect("a cromflag job");
    // Prometheus' default metrics_path is /metrics.
    assert_eq!(
        job["metrics_path"].as_str().unwrap_or("/metrics"),
        "/metrics"
    );
    let targets: Vec<String> = job["static_configs"]
        .as_vec()
        .unwrap()
        .iter()
        .flat_map(|c| strings(&c["targets"], "targets"))
        .collect();
    let listen_port = port_of(&image_env["CROMFLAG_LISTEN"]);
    assert_eq!(targets, [format!("cromflag:{listen_port}")]);
    assert!(base.contains_key("cromflag"));

    let authorization = &job["authorization"];
    assert_eq!(authorization["type"].as_str().unwrap_or("Bearer"), "Bearer");
    let credentials = str_of(&authorization["credentials_file"], "credentials_file");
    let token_file = host_path(prometheus, "prometheus", credentials);
    let token_file = token_file.strip_prefix("./").unwrap();
    assert!(
        token_file.starts_with("deploy/"),
        "{}",
        token_file.display()
    );
    let ignore = std::fs::read_to_string(repo_root().join("deploy/.gitignore")).unwrap();
    let in_deploy = token_file.strip_prefix("deploy").unwrap();
    assert!(
        ignore
            .lines()
            .any(|l| Path::new(l.trim().trim_start_matches('/')) == in_deploy),
        "deploy/.gitignore keeps {} out of git",
        token_file.display()
    );
    assert!(
        ignored(token_file.to_str().unwrap()),
        "and out of the image"
    );

    let datasource = prometheus_datasource();
    let (host, port) = host_and_port(str_of(&datasource["url"], "url"));
    assert_eq!(host, "prometheus");
    assert!(published(prometheus, "prometheus").contains(&port));
    assert_eq!(
        datasource["jsonData"]["timeInterval"].as_str(),
        config["global"]["scrape_interval"].as_str(),
        "the datasource's minimum interval is the scrape interval"
    );
}

fn prometheus_datasource() -> Yaml {
    let provisioning = yaml("grafana/provisioning/datasources/prometheus.yaml");
    let all = provisioning["datasources"].as_vec().expect("datasources");
    let found: Vec<&Yaml> = all
        .iter()
        .filter(|d| d["uid"].as_str() == Some("prometheus"))
        .collect();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["type"].as_str(), Some("prometheus"));
    found[0].clone()
}

// ---------------------------------------------------------------------------
// The operations dashboard.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// What the host exports: name, type and labels.
const METRICS: &[(&str, Kind, &[&str])] = &[
    (
        "cromflag_ingest_messages_total",
        Kind::Counter,
        &["transport", "outcome"],
    ),
    ("cromflag_ingest_rows_total", Kind::Counter, &["transport"]),
    (
        "cromflag_http_request_duration_seconds",
        Kind::Histogram,
        &["route", "status"],
    ),
    ("cromflag_component_instances", Kind::Gauge, &[]),
    (
        "cromflag_component_traps_total",
        Kind::Counter,
        &["component"],
    ),
    ("cromflag_store_commit_batch_size", Kind::Histogram, &[]),
    (
        "cromflag_store_commit_duration_seconds",
        Kind::Histogram,
        &[],
    ),
    ("cromflag_store_errors_total", Kind::Counter, &["backend"]),
    ("cromflag_mqtt_connections", Kind::Gauge, &[]),
    ("cromflag_mqtt_inflight", Kind::Gauge, &[]),
    (
        "cromflag_cron_runs_total",
        Kind::Counter,
        &["trigger", "status"],
    ),
    (
        "cromflag_transform_rejections_total",
        Kind::Counter,
        &["transform"],
    ),
    ("cromflag_stream_clients", Kind::Gauge, &[]),
    (
        "cromflag_retention_deleted_rows_total",
        Kind::Counter,
        &["container_kind"],
    ),
];

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// A series name in a query → (the metric, its kind, its labels, the series' suffix).
fn series(name: &str) -> (&'static str, Kind, &'static [&'static str], &'static str) {
    for &(metric, kind, labels) in METRICS {
        if kind == Kind::Histogram {
            for suffix in ["_bucket", "_sum", "_count"] {
                if name.strip_suffix(suffix) == Some(metric) {
                    return (metric, kind, labels, suffix);
                }
            }
        } else if name == metric {
            return (metric, kind, labels, "");
        }
    }
    panic!("{name} is not a series the host exports");
}

/// Checks a `/metrics` answer, after one HTTP insert, against `METRICS`:
/// each is exported with its type (a labelled family only once it has a
/// series: those this insert moved, at least), and its samples carry only
/// its labels.
fn check_exported(text: &str) {
    let types: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    for &(metric, kind, labels) in METRICS {
        // OpenMetrics names a counter's family without its `_total`.
        let (family, expected) = match kind {
            Kind::Counter => (metric.strip_suffix("_total").unwrap(), "counter"),
            Kind::Gauge => (metric, "gauge"),
            Kind::Histogram => (metric, "histogram"),
        };
        let moved = [
            "cromflag_ingest_messages_total",
            "cromflag_ingest_rows_total",
            "cromflag_http_request_duration_seconds",
        ];
        match types.get(family) {
            Some(exported) => assert_eq!(exported, &expected, "{family}"),
            None => assert!(
                !labels.is_empty() && !moved.contains(&metric),
                "{family} is not exported:\n{text}"
            ),
        }
    }
    let mut seen = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let known = METRICS.iter().any(|m| name.starts_with(m.0));
        if !known {
            continue;
        }
        let (_, _, labels, suffix) = series(name);
        for label in sample_labels(&line[name_end..]) {
            assert!(
                labels.contains(&label.as_str()) || (suffix == "_bucket" && label == "le"),
                "{line}: {label} is not a label the dashboard knows"
            );
        }
        seen += 1;
    }
    assert!(seen > 0, "no sample of the host's metrics:\n{text}");
}

/// The label names of a sample line's `{name="value",...}` (from its start).
fn sample_labels(rest: &str) -> Vec<String> {
    let Some(mut rest) = rest.strip_prefix('{') else {
        return Vec::new();
    };
    let mut names = Vec::new();
    while !rest.starts_with('}') {
        let (name, value) = rest.split_once("=\"").expect("name=\"value\"");
        names.push(name.trim_start_matches(',').to_owned());
        // The value ends at the first quote no backslash escapes.
        let mut escaped = false;
        let end = value
            .char_indices()
            .find(|&(_, c)| {
                let close = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                close
            })
            .expect("a closed label value")
            .0;
        rest = value[end + 1..].trim_start_matches(',');
    }
    names
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The `cromflag_…` names in a PromQL expression.
fn names_in(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("cromflag_") {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let end = tail.find(|c| !is_ident(c)).unwrap_or(tail.len());
        if !before.is_some_and(is_ident) {
            names.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// The text between the parenthesis that opens at `open` and the one that closes it.
fn group(text: &str, open: usize) -> &str {
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[open + 1..open + i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses in {text}");
}

/// The arguments of every call of `function` in `expr`.
fn calls<'a>(expr: &'a str, function: &str) -> Vec<&'a str> {
    let pattern = format!("{function}(");
    expr.match_indices(&pattern)
        .filter(|(at, _)| !expr[..*at].chars().next_back().is_some_and(is_ident))
        .map(|(at, _)| group(expr, at + function.len()))
        .collect()
}

/// The label lists of the `by (...)` clauses in `expr`.
fn by_labels(expr: &str) -> Vec<Vec<String>> {
    expr.match_indices("by (")
        .map(|(at, _)| {
            group(expr, at + 3)
                .split(',')
                .map(|l| l.trim().to_owned())
                .collect()
        })
        .collect()
}

fn dashboard(path: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join(path)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Must show: Grafana's Prometheus datasource parses; the operations dashboard
/// is valid dashboard JSON like the device dashboard (same schema version,
/// its own uid, unique panel ids, panels on the 24-column grid without
/// overlapping), every panel and query uses the provisioned Prometheus
/// datasource, every series it queries is one the host exports and every
/// metric is shown; counters and histograms only through rate/increase,
/// gauges never; quantiles from buckets by `le`; grouping and legends only by
/// labels the metric has.
#[test]
fn the_operations_dashboard_queries_the_host_metrics() {
    let datasource = prometheus_datasource();
    let uid = str_of(&datasource["uid"], "uid");
    let ops = dashboard("grafana/dashboards/cromflag-operations.json");
    let devices = dashboard("grafana/dashboards/cromflag.json");
    assert_eq!(ops["schemaVersion"], devices["schemaVersion"]);
    assert_ne!(ops["uid"], devices["uid"]);
    assert!(ops["title"].as_str().is_some_and(|t| !t.is_empty()));

    let panels = ops["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    let mut shown = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("a title");
        assert!(
            ids.insert(panel["id"].as_u64().expect("an id")),
            "{title}: id"
        );
        let pos = &panel["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| pos[k].as_u64().expect("gridPos"));
        assert!(w > 0 && h > 0 && x + w <= 24, "{title}: {pos}");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "{title} overlaps another panel");
            }
        }
        if panel["type"] == "row" {
            assert!(panel.get("targets").is_none(), "{title}");
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], uid, "{title}");
        assert_eq!(panel["datasource"]["type"], "prometheus", "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for target in targets {
            assert!(
                refs.insert(target["refId"].as_str().expect("refId")),
                "{title}: refId"
            );
            assert_eq!(target["datasource"]["uid"], uid, "{title}");
            let expr = target["expr"].as_str().expect("expr");
            check_query(title, expr, target["legendFormat"].as_str().unwrap_or(""));
            shown.extend(names_in(expr).iter().map(|n| series(n).0));
        }
    }
    let exported: BTreeSet<&str> = METRICS.iter().map(|m| m.0).collect();
    assert_eq!(shown, exported, "every metric on a panel");
}

fn check_query(title: &str, expr: &str, legend: &str) {
    let what = format!("{title}: {expr}");
    assert_eq!(
        expr.matches('(').count(),
        expr.matches(')').count(),
        "{what}"
    );
    assert_eq!(
        expr.matches('[').count(),
        expr.matches(']').count(),
        "{what}"
    );
    let names = names_in(expr);
    assert!(!names.is_empty(), "{what}: no metric");
    let mut labels: BTreeSet<&str> = TARGET_LABELS.into_iter().collect();
    let mut rated = BTreeSet::new();
    for function in ["rate", "increase", "irate"] {
        for args in calls(expr, function) {
            assert!(
                args.contains("[$__"),
                "{what}: {function} over a Grafana interval"
            );
            rated.extend(names_in(args));
        }
    }
    for name in &names {
        let (metric, kind, metric_labels, suffix) = series(name);
        labels.extend(metric_labels.iter().copied());
        if suffix == "_bucket" {
            labels.insert("le");
        }
        match kind {
            Kind::Gauge => assert!(!rated.contains(name), "{what}: {metric} is a gauge"),
            Kind::Counter | Kind::Histogram => {
                assert!(
                    rated.contains(name),
                    "{what}: {name} only through rate or increase"
                )
            }
        }
    }
    for args in calls(expr, "histogram_quantile") {
        assert!(
            names_in(args).iter().all(|n| n.ends_with("_bucket")),
            "{what}: quantiles of buckets"
        );
        assert!(
            by_labels(args)
                .iter()
                .any(|by| by.iter().any(|l| l == "le")),
            "{what}: buckets summed by le"
        );
    }
    let grouped = by_labels(expr);
    for label in grouped.iter().flatten() {
        assert!(labels.contains(label.as_str()), "{what}: no label {label}");
    }
    // A legend names labels the outermost grouping kept.
    let kept: BTreeSet<&str> = match grouped.first() {
        Some(outer) => outer.iter().map(String::as_str).collect(),
        None => labels,
    };
    for label in legend
        .split("{{")
        .skip(1)
        .map(|s| s.split("}}").next().unwrap())
    {
        assert!(
            kept.contains(label.trim()),
            "{what}: legend {{{{{label}}}}}"
        );
    }
}
