//! Route matching: longest `path_prefix` wins; a route naming the host beats one that does not.

use crate::config::RouteConfig;
use http::Method;

/// Routes in match order.
pub struct RouteTable {
    order: Vec<usize>,
}

impl RouteTable {
    /// Orders the routes once, so a lookup is the first match.
    pub fn new(routes: &[RouteConfig]) -> RouteTable {
        let mut order: Vec<usize> = (0..routes.len()).collect();
        order.sort_by_key(|&i| {
            let r = &routes[i];
            (std::cmp::Reverse(r.path_prefix.len()), r.host.is_none(), r.methods.is_empty(), i)
        });
        RouteTable { order }
    }

    /// The index of the route for this request.
    pub fn find(
        &self,
        routes: &[RouteConfig],
        host: Option<&str>,
        method: &Method,
        path: &str,
    ) -> Option<usize> {
        self.order.iter().copied().find(|&i| {
            let r = &routes[i];
            path.starts_with(r.path_prefix.as_str())
                && r.host.as_deref().is_none_or(|h| host.is_some_and(|x| x.eq_ignore_ascii_case(h)))
                && (r.methods.is_empty() || r.methods.contains(method))
        })
    }
}

/// The request's host without port, from the URI (HTTP/2) or the Host header.
pub fn request_host(uri: &http::Uri, headers: &http::HeaderMap) -> Option<String> {
    let raw = match uri.host() {
        Some(h) => h.to_owned(),
        None => {
            let v = headers.get(http::header::HOST)?.to_str().ok()?;
            v.parse::<http::uri::Authority>().ok()?.host().to_owned()
        }
    };
    Some(raw.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn longest_prefix_then_host_then_methods() {
        let cfg = Config::from_toml(
            r#"
            [decision_log]
            path = "d.jsonl"
            [[route]]
            name = "all"
            path_prefix = "/"
            upstream = "http://127.0.0.1:1"
            auth = "none"
            [[route]]
            name = "v1"
            path_prefix = "/v1/"
            upstream = "http://127.0.0.1:1"
            auth = "none"
            [[route]]
            name = "v1-host"
            path_prefix = "/v1/"
            host = "API.example.com"
            upstream = "http://127.0.0.1:1"
            auth = "none"
            [[route]]
            name = "v1-post"
            path_prefix = "/v1/orders"
            methods = ["post"]
            upstream = "http://127.0.0.1:1"
            auth = "none"
            "#,
            std::path::Path::new("."),
        )
        .unwrap();
        let t = RouteTable::new(&cfg.routes);
        let name = |host: Option<&str>, m: Method, p: &str| {
            t.find(&cfg.routes, host, &m, p).map(|i| cfg.routes[i].name.as_str())
        };
        assert_eq!(name(None, Method::GET, "/x"), Some("all"));
        assert_eq!(name(None, Method::GET, "/v1/a"), Some("v1"));
        assert_eq!(name(Some("api.example.com"), Method::GET, "/v1/a"), Some("v1-host"));
        assert_eq!(name(None, Method::POST, "/v1/orders/1"), Some("v1-post"));
        assert_eq!(name(None, Method::GET, "/v1/orders/1"), Some("v1"));
    }
}
