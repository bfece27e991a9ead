//! Property tests of what a request presents as its credential
//! (`access::from_authorization`, `access::presented`, the `access_token`
//! query parameter) and of what each route needs (`access::need`).
//!
//! Why: these run on every request before anything else, on headers and
//! paths from anyone. Whatever the bytes, they must answer a token, nothing,
//! or "unreadable" (a 401), never panic; a token sent as `Bearer` or as Basic's
//! password is read back exactly; and the query parameter that carries a token
//! is always taken out of the URI that goes on.
//!
//! Failures are not persisted to files: a case found is kept as a plain test.

use base64::Engine;
use cromflag::access::{self, Need, Presented};
use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;
use proptest::test_runner::Config;

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Token-like text: what a header value can carry.
fn token() -> impl Strategy<Value = String> {
    "[!-~]{1,80}"
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn any_authorization_header_is_a_token_nothing_or_unreadable(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        match access::from_authorization(&bytes) {
            Presented::Token(t) => prop_assert!(!t.is_empty()),
            Presented::Unreadable(why) => prop_assert!(!why.is_empty()),
            Presented::Nothing => prop_assert!(false, "a header present is never nothing"),
        }
    }

    #[test]
    fn bearer_and_basic_tokens_read_back_exactly(token in token(), user in "[a-zA-Z0-9._-]{0,20}") {
        let bearer = format!("Bearer {token}");
        prop_assert_eq!(access::from_authorization(bearer.as_bytes()), Presented::Token(token.trim().to_owned()));
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
        prop_assert_eq!(access::from_authorization(format!("Basic {basic}").as_bytes()), Presented::Token(token.clone()));
    }

    #[test]
    fn the_token_parameter_never_goes_on(
        before in "[a-z]{1,5}=[a-z0-9%+]{0,8}",
        token in "[A-Za-z0-9_%+-]{1,40}",
        after in "[a-z]{1,5}=[a-z0-9%+]{0,8}",
    ) {
        let query = format!("{before}&access_token={token}&{after}");
        let kept = access::without_access_token(&query).unwrap_or_default();
        prop_assert!(!kept.contains("access_token"));
        prop_assert_eq!(kept, format!("{before}&{after}"));
        let presented = access::presented(&Method::GET, &HeaderMap::new(), Some(&query));
        prop_assert!(matches!(presented, Presented::Token(_)));
    }

    #[test]
    fn any_path_needs_something_definite(path in "/[a-z%0-9/._~-]{0,60}", post in any::<bool>()) {
        let method = if post { Method::POST } else { Method::GET };
        let need = access::need(&method, &path);
        // The page is the only thing anyone may read, and only with GET.
        if need == Need::Nothing {
            prop_assert!(!post);
        }
        if path.starts_with("/admin/") {
            prop_assert!(matches!(need, Need::Admin | Need::Upload));
        }
    }
}

#[test]
fn a_header_takes_precedence_over_the_query() {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_static("Bearer cfr_header"),
    );
    assert_eq!(
        access::presented(&Method::GET, &headers, Some("access_token=cfr_query")),
        Presented::Token("cfr_header".into())
    );
    // Only a GET takes the query parameter (EventSource, links).
    assert_eq!(
        access::presented(
            &Method::POST,
            &HeaderMap::new(),
            Some("access_token=cfr_query")
        ),
        Presented::Nothing
    );
}
