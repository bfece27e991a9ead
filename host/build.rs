//! Builds every component in `components/` for `wasm32-wasip2`, so that one
//! `cargo build` at the root yields the host *and* the `.wasm` files `spin.toml`
//! points at (`target/components/wasm32-wasip2/component/*.wasm`).
//!
//! The components get their own target directory: a nested cargo cannot share
//! the outer build's directory lock. A missing `wasm32-wasip2` target is added
//! with rustup, so a fresh machine needs nothing but rustup (and Node.js with
//! npm, which bundle the built-in page from `ui/`; see `build_ui`). The nested
//! cargo rebuilds only the components whose sources changed.
//!
//! `CROMFLAG_BUILD_ASSETS=0` skips both (for `cargo check` and rust-analyzer,
//! which need neither Node nor a nested cargo): the page is then empty and
//! the host answers 503 for it, and `spin.toml` finds whatever components
//! an earlier build left. Without npm on the PATH the page is left out the
//! same way, with a warning, rather than failing the build.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The wasm32-wasip2 crates, by package name (see `components/*/Cargo.toml`).
const COMPONENTS: &[&str] = &[
    "insert",
    "fetch",
    "report",
    "fault",
    "probe",
    "spin_insert",
    // Transforms (components/transforms/, world `transformer`, no_std: no WASI).
    "fahrenheit_to_celsius",
    "dew_point",
    "range_filter",
    "scale",
    "faulty",
    "wasi_importer",
    // What other platforms are given instead of this host's imports
    // (components/portable/; composed below into target/portable).
    "insert_http",
    "griddb_store",
    "pass_through_pipeline",
    "environment_variables",
    // Spin's SQLite as the store (`spin up`); not composed.
    "spin_sqlite_store",
];
const TARGET: &str = "wasm32-wasip2";
/// Set to `0`, the components and the page are not built.
const SKIP_VARIABLE: &str = "CROMFLAG_BUILD_ASSETS";
/// The page's files, as `triggers/http/builtin.rs` includes them.
const PAGE_FILES: [&str; 3] = ["index.html", "app.js", "app.css"];

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap())
        .parent()
        .expect("host/ lives in the workspace root")
        .to_path_buf();
    for watched in ["components", "crates", "wit", "Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed={SKIP_VARIABLE}");
    let page = PathBuf::from(env::var("OUT_DIR").unwrap()).join("ui");
    if env::var(SKIP_VARIABLE).is_ok_and(|v| v == "0") {
        leave_out_page(&page);
        return;
    }
    ensure_target();
    build_ui(&root, &page);

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(&root)
        .args([
            "build",
            "--profile",
            "component",
            "--target",
            TARGET,
            "--target-dir",
        ])
        .arg(root.join("target").join("components"));
    for package in COMPONENTS {
        build.args(["-p", package]);
    }
    // Flags meant for the host build must not leak into the wasm build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        build.env_remove(var);
    }
    let output = build
        .output()
        .expect("could not run cargo for the components");
    if !output.status.success() {
        panic!(
            "building the components for {TARGET} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    compose_portable(&root);
}

/// The components for `wasmtime serve` and Wasm clouds, composed ahead of
/// time into `target/portable/`: each HTTP component plugged with the GridDB
/// store, the pass-through pipeline (which also serves the type-only
/// `cromflag:iot/types` import) and Spin's variables from the environment.
/// What is left must be WASI alone: a plug that did not fit would leave its
/// import behind, so the build fails on anything else.
fn compose_portable(root: &Path) {
    let built = root
        .join("target/components")
        .join(TARGET)
        .join("component");
    let read = |name: &str| {
        let path = built.join(format!("{name}.wasm"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let (variables, pipeline, store) = (
        read("environment_variables"),
        read("pass_through_pipeline"),
        read("griddb_store"),
    );
    let out = root.join("target/portable");
    std::fs::create_dir_all(&out).expect("target/ is writable");
    for (composed, socket) in [("insert", "insert_http"), ("fetch", "fetch")] {
        let socket_bytes = read(socket);
        let part = |name, bytes| cromflag_compose::Part { name, bytes };
        let bytes = cromflag_compose::compose(
            part(socket, &socket_bytes),
            &[
                part("environment_variables", &variables),
                part("pass_through_pipeline", &pipeline),
                part("griddb_store", &store),
            ],
        )
        .unwrap_or_else(|e| panic!("composing target/portable/{composed}.wasm: {e:#}"));
        let imports = cromflag_compose::imports(&bytes).expect("a composed component");
        let foreign: Vec<&String> = imports.iter().filter(|i| !i.starts_with("wasi:")).collect();
        if !foreign.is_empty() {
            panic!("target/portable/{composed}.wasm still imports {foreign:?}: a plug did not fit");
        }
        std::fs::write(out.join(format!("{composed}.wasm")), bytes).expect("target/ is writable");
    }
}

/// Adds the wasm32-wasip2 standard library with rustup when it is missing.
fn ensure_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if libdir.as_deref().is_some_and(|dir| Path::new(dir).exists()) {
        return;
    }
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    if !status.is_ok_and(|s| s.success()) {
        panic!("the {TARGET} target is missing and `rustup target add {TARGET}` failed");
    }
}

/// Empty page files, which the host answers 503 for: enough to compile it.
fn leave_out_page(page: &Path) {
    std::fs::create_dir_all(page).expect("OUT_DIR is writable");
    for file in PAGE_FILES {
        std::fs::write(page.join(file), b"").expect("OUT_DIR is writable");
    }
}

/// Bundles the built-in page (`ui/`: uPlot and the page's script, with esbuild)
/// into `page` (`$OUT_DIR/ui`), where the HTTP trigger includes it from.
/// Dependencies are installed with `npm ci` from the lock file when they are
/// missing or stale. Without npm the page is left out, with a warning.
fn build_ui(root: &Path, page: &Path) {
    let ui = root.join("ui");
    // node_modules too: the browser tests drive Chromium with the playwright-core
    // installed there, so a deleted node_modules is installed again on the next
    // build even when nothing else changed.
    for watched in [
        "src",
        "build.mjs",
        "package.json",
        "package-lock.json",
        "node_modules/.package-lock.json",
    ] {
        println!("cargo:rerun-if-changed={}", ui.join(watched).display());
    }
    if Command::new("npm").arg("--version").output().is_err() {
        println!(
            "cargo:warning=npm is not on the PATH: this build has no built-in page (`/` answers 503); install Node.js with npm and build again"
        );
        leave_out_page(page);
        return;
    }
    let out = page;
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let installed = modified(&ui.join("node_modules/.package-lock.json"));
    if installed.is_none() || installed < modified(&ui.join("package-lock.json")) {
        npm(&ui, &["ci", "--no-audit", "--no-fund"], out);
    }
    npm(&ui, &["run", "build"], out);
}

fn npm(ui: &Path, args: &[&str], out: &Path) {
    let output = Command::new("npm")
        .args(args)
        .current_dir(ui)
        .env("UI_OUT_DIR", out)
        .output()
        .unwrap_or_else(|e| {
            panic!("could not run npm (Node.js and npm build the built-in page): {e}")
        });
    if !output.status.success() {
        panic!(
            "`npm {}` in {} failed:\n{}{}",
            args.join(" "),
            ui.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
