//! Method overrides that frameworks honour after the gateway has routed on the method. The header
//! forms (`X-HTTP-Method-Override`, ...) are stripped in `forward`; `_method` in the query
//! (Laravel, Symfony, Express's `method-override('_method')`) is refused here, since the gateway
//! cannot take it out without changing what the client sent. A body can name `_method` in more
//! spellings than a gateway could list (Rails' Rack::MethodOverride, Laravel's JSON input,
//! compressed bodies), so a POST is instead held to every route it could become
//! (`routes::RouteTable::override_targets`).

/// Whether a query names `_method`, decoded, in any case, and with `.`, ` ` or `[` for `_` (PHP
/// reads `.method` as `_method`).
pub fn in_query(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes()).any(|(name, _)| {
        // PHP ends a name at NUL.
        let name = name.split('\0').next().unwrap_or_default().trim();
        name.len() == 7
            && matches!(name.as_bytes()[0], b'_' | b'.' | b' ' | b'[')
            && name[1..].eq_ignore_ascii_case("method")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_in_queries() {
        let named = [
            "_method=DELETE",
            "a=1&_METHOD=PUT",
            "%5Fmethod=DELETE",
            "_%6Dethod=DELETE",
            "+_method=x",
            ".method=x",
            "m=1&%5b%6d%65%74%68%6f%64=x",
            "_method%00x=DELETE",
        ];
        for q in named {
            assert!(in_query(q), "{q}");
        }
        for q in ["method=card", "a=1", "payment_method=card", "", "__method=x"] {
            assert!(!in_query(q), "{q}");
        }
    }
}
