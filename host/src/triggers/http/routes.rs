//! Spin's HTTP route syntax and matching.
//!
//! A route is a path of segments: a literal (`/insert`), a named parameter
//! (`/:device`), or a trailing wildcard (`/...`, matching the path itself and
//! anything below it). When several routes match, the most specific wins, as in
//! Spin: an exact route beats a wildcard, a literal segment beats a parameter,
//! and a longer prefix beats a shorter one.

use anyhow::{bail, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Clone, Debug)]
struct Route<T> {
    pattern: String,
    segments: Vec<Segment>,
    wildcard: bool,
    target: T,
}

impl<T> Route<T> {
    /// Higher is more specific.
    fn specificity(&self) -> (bool, usize, usize) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        (!self.wildcard, self.segments.len(), literals)
    }

    fn matches(&self, path: &[&str]) -> bool {
        let fits = |(segment, part): (&Segment, &&str)| match segment {
            Segment::Literal(lit) => lit == part,
            Segment::Param(_) => !part.is_empty(),
        };
        if self.wildcard {
            path.len() >= self.segments.len() && self.segments.iter().zip(path).all(fits)
        } else {
            path.len() == self.segments.len() && self.segments.iter().zip(path).all(fits)
        }
    }
}

/// What a request path matched.
#[derive(Debug, PartialEq, Eq)]
pub struct Match<'a, T> {
    pub target: &'a T,
    /// The route as written in the manifest (with the base), e.g. `/insert/...`.
    pub route: &'a str,
    /// The part of the path the wildcard matched, with a leading `/` (or empty).
    pub path_info: String,
}

#[derive(Debug)]
pub struct Router<T> {
    routes: Vec<Route<T>>,
}

impl<T> Router<T> {
    /// Builds a router under `base`; two routes with the same pattern are an error.
    pub fn new(base: &str, routes: impl IntoIterator<Item = (String, T)>) -> Result<Router<T>> {
        let mut parsed: Vec<Route<T>> = Vec::new();
        for (pattern, target) in routes {
            let full = join(base, &pattern);
            let mut segments = Vec::new();
            let mut wildcard = false;
            let parts: Vec<String> = split(&full).map(str::to_owned).collect();
            let mut parts = parts.iter().map(String::as_str).peekable();
            while let Some(part) = parts.next() {
                if part == "..." {
                    if parts.peek().is_some() {
                        bail!("route `{pattern}`: `...` must be the last segment");
                    }
                    wildcard = true;
                } else if let Some(name) = part.strip_prefix(':') {
                    segments.push(Segment::Param(name.to_owned()));
                } else {
                    segments.push(Segment::Literal(part.to_owned()));
                }
            }
            if parsed
                .iter()
                .any(|r| r.segments == segments && r.wildcard == wildcard)
            {
                bail!("duplicate route `{pattern}`");
            }
            parsed.push(Route {
                pattern: full,
                segments,
                wildcard,
                target,
            });
        }
        // Most specific first, so the first match is the best one.
        parsed.sort_by_key(|r| std::cmp::Reverse(r.specificity()));
        Ok(Router { routes: parsed })
    }

    pub fn route(&self, path: &str) -> Option<Match<'_, T>> {
        let parts: Vec<&str> = split(path).collect();
        let route = self.routes.iter().find(|r| r.matches(&parts))?;
        let rest = &parts[route.segments.len().min(parts.len())..];
        let path_info = rest.iter().map(|p| format!("/{p}")).collect();
        Some(Match {
            target: &route.target,
            route: &route.pattern,
            path_info,
        })
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

fn join(base: &str, route: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        route.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[&str]) -> Router<String> {
        Router::new("/", routes.iter().map(|r| (r.to_string(), r.to_string()))).unwrap()
    }

    #[test]
    fn exact_wildcard_and_params() {
        let r = router(&[
            "/insert/...",
            "/fetch/...",
            "/fetch/devices",
            "/users/:id",
            "/...",
        ]);
        let m = r.route("/insert/sample").unwrap();
        assert_eq!(
            (m.target.as_str(), m.path_info.as_str()),
            ("/insert/...", "/sample")
        );
        assert_eq!(r.route("/insert").unwrap().target, "/insert/...");
        assert_eq!(r.route("/fetch/devices").unwrap().target, "/fetch/devices");
        assert_eq!(r.route("/fetch/sample").unwrap().target, "/fetch/...");
        assert_eq!(r.route("/users/7").unwrap().target, "/users/:id");
        assert_eq!(r.route("/users/7/x").unwrap().target, "/...");
        assert_eq!(r.route("/anything").unwrap().target, "/...");
    }

    #[test]
    fn no_match_and_base() {
        let r = router(&["/insert/..."]);
        assert!(r.route("/fetch/x").is_none());
        assert!(r.route("/insertx").is_none());
        let based = Router::new("/api", [("/insert/...".to_string(), 1)]).unwrap();
        assert_eq!(*based.route("/api/insert/a").unwrap().target, 1);
        assert!(based.route("/insert/a").is_none());
    }

    #[test]
    fn duplicates_and_misplaced_wildcards_are_errors() {
        assert!(Router::new("/", [("/a/...".to_string(), 1), ("/a/...".to_string(), 2)]).is_err());
        assert!(Router::new("/", [("/a/.../b".to_string(), 1)]).is_err());
    }
}
