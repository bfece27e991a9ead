//! Compiled-code cache: a component is compiled once per content and engine
//! configuration, then loaded from `<data-dir>/cache/<sha256>.cwasm`.
//!
//! The key hashes the component's bytes with the engine's compatibility hash
//! (wasmtime version, target, settings), so a changed component or an upgraded
//! host simply misses. Loading machine code is `unsafe` in wasmtime because the
//! file is trusted to be what this host wrote: the cache lives in the host's own
//! data directory for that reason.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

/// A compiled component and the SHA-256 of its bytes (hex), which names the
/// version in logs.
pub struct Loaded {
    pub component: Component,
    pub sha256: String,
}

pub fn load(engine: &Engine, path: &Path, cache_dir: &Path) -> Result<Loaded> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading component {}", path.display()))?;
    let sha256 = sha256_hex(&bytes);
    let component = compile(engine, path, &bytes, cache_dir)?;
    Ok(Loaded { component, sha256 })
}

/// The SHA-256 of `bytes`, in hex: a component version's name.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn compile(engine: &Engine, path: &Path, bytes: &[u8], cache_dir: &Path) -> Result<Component> {
    let cached = cache_path(engine, bytes, cache_dir);
    if cached.exists() {
        // SAFETY: the file was written by `Component::serialize` of an engine
        // with the same compatibility hash (it is part of the file name).
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(component) => {
                tracing::debug!(component = %path.display(), cache = %cached.display(), "loaded compiled code");
                return Ok(component);
            }
            Err(e) => {
                tracing::warn!(cache = %cached.display(), error = %e, "ignoring an unusable cache entry")
            }
        }
    }
    let started = std::time::Instant::now();
    let component = Component::new(engine, bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("compiling component {}", path.display()))?;
    tracing::info!(component = %path.display(), elapsed = ?started.elapsed(), "compiled");
    // Write-then-rename, so a crash never leaves a truncated entry behind.
    let partial = cached.with_extension("partial");
    let written = component
        .serialize()
        .and_then(|code| Ok(std::fs::write(&partial, code)?))
        .and_then(|()| Ok(std::fs::rename(&partial, &cached)?));
    if let Err(e) = written {
        tracing::warn!(cache = %cached.display(), error = %e, "could not cache compiled code");
    }
    Ok(component)
}

fn cache_path(engine: &Engine, bytes: &[u8], cache_dir: &Path) -> PathBuf {
    let mut compat = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compat);
    let digest = Sha256::new()
        .chain_update(compat.finish().to_le_bytes())
        .chain_update(bytes)
        .finalize();
    cache_dir.join(format!("{}.cwasm", hex(&digest)))
}
