//! Method overrides that frameworks honour after the gateway has routed on the method: `_method`
//! in the query (Laravel, Symfony, Express's `method-override('_method')`) or in a POST body
//! (Rails' Rack::MethodOverride, Laravel, also in JSON, Symfony). The header forms
//! (`X-HTTP-Method-Override`, ...) are stripped in `forward`; these are refused, since the gateway
//! cannot take them out of a query or body without changing what the client sent.

/// Whether a query names `_method` (decoded, any case).
pub fn in_query(query: &str) -> bool {
    // The common query has no `method` at all: no decoding then.
    let lower = query.to_ascii_lowercase();
    (lower.contains("method") || lower.contains("%6d"))
        && form_urlencoded::parse(query.as_bytes())
            .any(|(name, _)| name.trim().eq_ignore_ascii_case("_method"))
}

/// Whether a body could name `_method`: as a form field (also percent-encoded), a multipart
/// part, or a JSON member (also `\u005f`-escaped). A plain byte search, so no body format is
/// read differently from the upstream.
pub fn in_body(body: &[u8]) -> bool {
    const SPELLINGS: [&[u8]; 3] = [b"_method", b"%5fmethod", b"\\u005fmethod"];
    SPELLINGS.iter().any(|needle| body.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_in_queries_and_bodies() {
        for q in ["_method=DELETE", "a=1&_METHOD=PUT", "%5Fmethod=DELETE", "_%6Dethod=DELETE", "+_method=x"] {
            assert!(in_query(q), "{q}");
        }
        for q in ["method=card", "a=1", "payment_method=card", ""] {
            assert!(!in_query(q), "{q}");
        }
        for b in [
            &b"_method=DELETE"[..],
            b"{\"_Method\":\"DELETE\"}",
            b"{\"\\u005fmethod\":1}",
            b"name=\"_method\"",
        ] {
            assert!(in_body(b), "{}", String::from_utf8_lossy(b));
        }
        assert!(!in_body(b"{\"method\":\"card\"}"));
    }
}
