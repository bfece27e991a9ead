//! Which hosts a component may call over `wasi:http/outgoing-handler`: its
//! `allowed_outbound_hosts`, read as Spin reads them. Nothing by default
//! (Spin's default too); a request elsewhere is answered "denied" without
//! leaving the host.
//!
//! An entry is `scheme://host[:port]` with no path:
//! - `scheme`: `http`, `https`, or `*` for both;
//! - `host`: a name or address, `*` for any, or `*.example.com` for its
//!   subdomains;
//! - `port`: a number, a range `8000-8010`, `*`, or nothing for the
//!   scheme's default (80, 443).
//!
//! Templates (`{{ griddb_host }}`) are expanded by the manifest reader
//! before they reach here.

use anyhow::{bail, Context, Result};
use std::future::Future;
use std::sync::Arc;
use wasmtime_wasi_http::{RequestOptions, WasiBody};

/// One `allowed_outbound_hosts` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    ports: Ports,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.suffix`: names ending in `.suffix`.
    Subdomains(String),
    Exact(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Ports {
    Any,
    /// The scheme's own port (80 for http, 443 for https).
    Default,
    Range(u16, u16),
}

impl AllowedHost {
    /// Reads one entry; the message says what Spin would refuse.
    pub fn parse(entry: &str) -> Result<AllowedHost> {
        let what = || format!("allowed_outbound_hosts entry {entry:?}");
        let Some((scheme, rest)) = entry.split_once("://") else {
            bail!("{}: write it as scheme://host:port", what());
        };
        let scheme = match scheme {
            "*" => None,
            "http" | "https" => Some(scheme.to_owned()),
            other => bail!(
                "{}: scheme `{other}` cannot be called over wasi:http (http, https or *)",
                what()
            ),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            bail!("{}: no path, only scheme://host:port", what());
        }
        let (host, port) = match rest.rsplit_once(':') {
            // An IPv6 address without a port: its colons are inside brackets.
            Some((host, port)) if !port.ends_with(']') => (host, Some(port)),
            _ => (rest, None),
        };
        if host.is_empty() {
            bail!("{}: no host", what());
        }
        let host = match host {
            "*" => HostPattern::Any,
            _ if host.starts_with("*.") => HostPattern::Subdomains(host[2..].to_ascii_lowercase()),
            _ if host.contains('*') => {
                bail!("{}: `*` only as the whole host or `*.domain`", what())
            }
            _ => HostPattern::Exact(host.to_ascii_lowercase()),
        };
        let number = |text: &str| {
            text.parse::<u16>()
                .with_context(|| format!("{}: port `{text}`", what()))
        };
        let ports = match port {
            None => {
                if scheme.is_none() {
                    bail!("{}: `*://` needs a port (a number, a range or *)", what());
                }
                Ports::Default
            }
            Some("*") => Ports::Any,
            Some(range) => match range.split_once('-') {
                Some((low, high)) => {
                    let (low, high) = (number(low)?, number(high)?);
                    if low > high {
                        bail!("{}: port range {low}-{high} is empty", what());
                    }
                    Ports::Range(low, high)
                }
                None => {
                    let port = number(range)?;
                    Ports::Range(port, port)
                }
            },
        };
        Ok(AllowedHost {
            scheme,
            host,
            ports,
        })
    }

    /// Whether a request to `uri` is allowed by this entry.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let Some(scheme) = uri.scheme_str() else {
            return false;
        };
        let Some(host) = uri.host().map(str::to_ascii_lowercase) else {
            return false;
        };
        let default_port = if scheme == "https" { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default_port);
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
            HostPattern::Exact(name) => *name == host,
        };
        let port_ok = match self.ports {
            Ports::Any => true,
            Ports::Default => port == default_port,
            Ports::Range(low, high) => (low..=high).contains(&port),
        };
        scheme_ok && host_ok && port_ok
    }
}

/// The outgoing-request hook of one instance: what its component's
/// `allowed_outbound_hosts` allow is sent (wasmtime's own client), anything
/// else denied.
pub struct OutboundHttp {
    pub allowed: Arc<[AllowedHost]>,
}

impl wasmtime_wasi_http::WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                )>,
            > + Send,
    > {
        if !self.allowed.iter().any(|host| host.allows(request.uri())) {
            tracing::debug!(uri = %request.uri(), "outbound HTTP denied: not in allowed_outbound_hosts");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(entry: &str, uri: &str) -> bool {
        AllowedHost::parse(entry)
            .unwrap()
            .allows(&uri.parse().unwrap())
    }

    #[test]
    fn entries_match_scheme_host_and_port() {
        assert!(allows(
            "http://127.0.0.1:8081",
            "http://127.0.0.1:8081/griddb/v2"
        ));
        assert!(!allows("http://127.0.0.1:8081", "http://127.0.0.1:8082/"));
        assert!(!allows("http://127.0.0.1:8081", "https://127.0.0.1:8081/"));
        assert!(allows(
            "https://cloud.griddb.com",
            "https://cloud.griddb.com/x"
        ));
        assert!(!allows(
            "https://cloud.griddb.com",
            "https://cloud.griddb.com:8443/x"
        ));
        assert!(allows(
            "https://*.griddb.com",
            "https://eu.cloud.griddb.com/x"
        ));
        assert!(!allows("https://*.griddb.com", "https://griddb.com/x"));
        assert!(!allows("https://*.griddb.com", "https://evilgriddb.com/x"));
        assert!(allows("*://localhost:8000-8010", "http://localhost:8005/"));
        assert!(allows("*://localhost:8000-8010", "https://LOCALHOST:8010/"));
        assert!(!allows("*://localhost:8000-8010", "http://localhost:8011/"));
        assert!(allows("*://*:*", "http://anything:1/"));
    }

    #[test]
    fn entries_spin_refuses_are_refused() {
        for (entry, message) in [
            ("127.0.0.1:8081", "scheme://host:port"),
            ("http://127.0.0.1:8081/griddb", "no path"),
            ("ftp://example.com", "scheme `ftp`"),
            ("*://example.com", "needs a port"),
            ("http://ex*ample.com", "`*` only"),
            ("http://example.com:99999", "port `99999`"),
            ("http://example.com:9-1", "is empty"),
            ("http://:80", "no host"),
        ] {
            let error = format!("{:#}", AllowedHost::parse(entry).unwrap_err());
            assert!(error.contains(message), "{entry}: {error}");
        }
    }
}
