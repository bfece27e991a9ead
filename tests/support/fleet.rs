//! What tests/fleet.rs needs beyond `get` and `post`: keep-alive clients used
//! from many threads at once, calls with a JSON body and Basic credentials
//! (the WebAPI), and listings read to their end by following each answer's
//! next-page link, so a test works whether or not the listing is paged.

use crate::{answer, Answer, Host};
use base64::Engine as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// A keep-alive HTTP client: its connections are reused from call to call.
/// Make one per thread.
pub fn client() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .max_idle_connections_per_host(4)
        .build()
}

/// `method url`, with a JSON body if `json` is given, and Basic credentials
/// if `basic` is; any status is an answer.
pub fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    basic: Option<(&str, &str)>,
    json: Option<&[u8]>,
) -> Answer {
    let mut request = agent.request(method, url);
    if let Some((user, password)) = basic {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request = request.set("Authorization", &format!("Basic {token}"));
    }
    answer(match json {
        Some(body) => request
            .set("Content-Type", "application/json")
            .send_bytes(body),
        None => request.call(),
    })
}

/// The target of `Link: <target>; rel="next"` in `link` (a Link header's
/// value, which may hold several links).
pub fn next_link(link: &str) -> Option<&str> {
    let mut rest = link;
    while let Some(open) = rest.find('<') {
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        let params_end = rest[close..].find('<').map_or(rest.len(), |at| close + at);
        let params = &rest[close + 1..params_end];
        let rel_next = params.split(';').any(|param| {
            let param = param.trim().trim_end_matches(',').trim();
            param.eq_ignore_ascii_case("rel=\"next\"") || param.eq_ignore_ascii_case("rel=next")
        });
        if rel_next {
            return Some(target);
        }
        rest = &rest[params_end..];
    }
    None
}

/// The path (or URL) of the page after `answer`, the answer to `path`: its
/// `Link: <…>; rel="next"`, or else its `X-Next-Cursor` put into `path` as
/// `cursor`; `None` on the last page.
pub fn next_page(path: &str, answer: &Answer) -> Option<String> {
    if let Some(target) = answer.header_values("link").into_iter().find_map(next_link) {
        return Some(target.to_owned());
    }
    let cursor = answer.header_values("x-next-cursor").first()?.to_string();
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let mut params: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("cursor="))
        .map(str::to_owned)
        .collect();
    params.push(format!("cursor={cursor}"));
    Some(format!("{base}?{}", params.join("&")))
}

/// `GET path` and every page after it, by `next_page`, until the last one;
/// each page must answer 200. `path` starts with `/`; a next link may be a
/// path or a whole URL.
pub fn all_pages(agent: &ureq::Agent, host: &Host, path: &str) -> Vec<Answer> {
    let mut pages = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut next = Some(path.to_owned());
    while let Some(target) = next {
        assert!(
            seen.insert(target.clone()),
            "paging loops: {target} comes twice after {path}"
        );
        let url = if target.starts_with("http://") || target.starts_with("https://") {
            target.clone()
        } else {
            host.url(&target)
        };
        let page = call(agent, "GET", &url, None, None);
        assert_eq!(page.status, 200, "GET {target}: {}", page.text());
        next = next_page(&target, &page);
        pages.push(page);
    }
    pages
}

/// Every row of a JSON listing (`/fetch/devices`, `/fetch/<device>`), read
/// page by page to its end.
pub fn all_rows(agent: &ureq::Agent, host: &Host, path: &str) -> Vec<serde_json::Value> {
    all_pages(agent, host, path)
        .iter()
        .flat_map(|page| match page.json() {
            serde_json::Value::Array(rows) => rows,
            other => panic!("GET {path}: a page is not an array: {other}"),
        })
        .collect()
}

/// Runs `work(client, i)` for every `i` in `0..count` on `threads` threads,
/// each with its own keep-alive client, and returns the results in `i` order.
/// A panic in one thread stops the others' next items and is raised again.
pub fn in_parallel<T: Send>(
    threads: usize,
    count: usize,
    work: impl Fn(&ureq::Agent, usize) -> T + Sync,
) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    /// Raises `stop` when its thread unwinds.
    struct StopOnPanic<'a>(&'a AtomicBool);
    impl Drop for StopOnPanic<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.store(true, Ordering::SeqCst);
            }
        }
    }
    let done: Vec<Vec<(usize, T)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let _guard = StopOnPanic(&stop);
                    let agent = client();
                    let mut done = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= count {
                            break;
                        }
                        done.push((i, work(&agent, i)));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e))
            })
            .collect()
    });
    let mut results: Vec<Option<T>> = (0..count).map(|_| None).collect();
    for (i, result) in done.into_iter().flatten() {
        results[i] = Some(result);
    }
    results
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}
