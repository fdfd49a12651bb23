//! Route matching on the canonical path: longest prefix (on segment boundaries) wins; a route
//! naming the host beats one that does not; then one naming methods.

use crate::config::RouteConfig;
use crate::config::normalize_host;
use http::Method;
use mfagate_policy::path::CanonicalPath;

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
            (std::cmp::Reverse(r.prefix.len()), r.host.is_none(), r.methods.is_empty(), i)
        });
        RouteTable { order }
    }

    /// The index of the route for this request.
    pub fn find(
        &self,
        routes: &[RouteConfig],
        host: Option<&str>,
        method: &Method,
        path: &CanonicalPath,
    ) -> Option<usize> {
        self.for_path(routes, host, path).find(|&i| takes(&routes[i], method))
    }

    /// The routes a POST on this path could become upstream, besides `chosen`: frameworks turn a
    /// POST into the method `_method` names, in the body, the query or a header (Rails, Laravel,
    /// Symfony, Express), so it must pass the rule of every route another method would get here.
    pub fn override_targets(
        &self,
        routes: &[RouteConfig],
        host: Option<&str>,
        path: &CanonicalPath,
        chosen: usize,
    ) -> Vec<usize> {
        let here: Vec<usize> = self.for_path(routes, host, path).collect();
        if here.len() < 2 {
            return Vec::new();
        }
        let mut targets = Vec::new();
        let mut add = |i: Option<usize>| {
            if let Some(i) = i.filter(|&i| i != chosen && !targets.contains(&i)) {
                targets.push(i);
            }
        };
        for method in here.iter().flat_map(|&i| routes[i].methods.iter()) {
            add(here.iter().copied().find(|&i| takes(&routes[i], method)));
        }
        // A method no route here lists goes to the first route without `methods`.
        add(here.iter().copied().find(|&i| routes[i].methods.is_empty()));
        targets
    }

    fn for_path<'a>(
        &'a self,
        routes: &'a [RouteConfig],
        host: Option<&'a str>,
        path: &'a CanonicalPath,
    ) -> impl Iterator<Item = usize> + 'a {
        self.order.iter().copied().filter(move |&i| {
            let r = &routes[i];
            r.prefix.matches(path) && r.host.as_deref().is_none_or(|h| host == Some(h))
        })
    }
}

/// Whether a route takes this method. Frameworks run the GET handler for HEAD: a route that
/// decides GET decides HEAD.
fn takes(route: &RouteConfig, method: &Method) -> bool {
    route.methods.is_empty()
        || route.methods.contains(method)
        || (method == Method::HEAD && route.methods.contains(&Method::GET))
}

/// A request whose host cannot be told for certain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// The URI's authority (HTTP/2 `:authority`, an absolute-form target) and `Host` disagree.
    Mismatch,
    /// Several `Host` headers, or one that is not a host.
    Invalid,
}

/// Whether an authority is one host (a DNS name or an IP literal) and, at most, a port: what
/// `http::uri::Authority` lets through beyond that (`a.test:x`, `b.test[::1]`, `a.test;x`,
/// `a..test`) servers read differently, if at all.
fn plain_authority(a: &http::uri::Authority) -> bool {
    let host = a.host();
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner.strip_suffix(']').is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && !host.contains("..")
            && !host.starts_with('.')
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    };
    let rest = a.as_str().get(host.len()..).unwrap_or("x");
    let port_ok = match rest.strip_prefix(':') {
        None => rest.is_empty(),
        Some(port) => {
            !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok()
        }
    };
    host_ok && port_ok
}

/// The request's host without port, from the URI (HTTP/2, absolute form) and the Host header,
/// which must agree when both are present.
pub fn request_host(uri: &http::Uri, headers: &http::HeaderMap) -> Result<Option<String>, HostError> {
    let mut values = headers.get_all(http::header::HOST).iter();
    let header = match (values.next(), values.next()) {
        (Some(_), Some(_)) => return Err(HostError::Invalid),
        (None, _) => None,
        (Some(v), None) => {
            let text = v.to_str().map_err(|_| HostError::Invalid)?;
            let authority = text.parse::<http::uri::Authority>().map_err(|_| HostError::Invalid)?;
            if !plain_authority(&authority) {
                return Err(HostError::Invalid);
            }
            Some(authority)
        }
    };
    let from_uri = uri.authority();
    if from_uri.is_some_and(|a| !plain_authority(a)) {
        return Err(HostError::Invalid);
    }
    match (from_uri, &header) {
        (Some(a), Some(h)) => {
            let ports_differ = matches!((a.port_u16(), h.port_u16()), (Some(x), Some(y)) if x != y);
            if normalize_host(a.host()) != normalize_host(h.host()) || ports_differ {
                return Err(HostError::Mismatch);
            }
            Ok(Some(normalize_host(a.host())))
        }
        (Some(a), None) => Ok(Some(normalize_host(a.host()))),
        (None, Some(h)) => Ok(Some(normalize_host(h.host()))),
        (None, None) => Ok(None),
    }
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
            let path = mfagate_policy::path::canonicalize(p).unwrap();
            t.find(&cfg.routes, host, &m, &path).map(|i| cfg.routes[i].name.as_str())
        };
        assert_eq!(name(None, Method::GET, "/x"), Some("all"));
        assert_eq!(name(None, Method::GET, "/v1/a"), Some("v1"));
        assert_eq!(name(Some("api.example.com"), Method::GET, "/v1/a"), Some("v1-host"));
        assert_eq!(name(None, Method::POST, "/v1/orders/1"), Some("v1-post"));
        assert_eq!(name(None, Method::GET, "/v1/orders/1"), Some("v1"));
        assert_eq!(name(None, Method::GET, "/v1"), Some("v1"));
        assert_eq!(name(None, Method::GET, "/v1evil"), Some("all"));
        assert_eq!(name(None, Method::POST, "/v1/ordersx"), Some("v1"));
        assert_eq!(name(None, Method::HEAD, "/v1/orders/1"), Some("v1"));
        // A POST on /v1/orders/1 could become any method: GET and the rest get "v1".
        let path = mfagate_policy::path::canonicalize("/v1/orders/1").unwrap();
        let post = t.find(&cfg.routes, None, &Method::POST, &path).unwrap();
        let names: Vec<&str> = t
            .override_targets(&cfg.routes, None, &path, post)
            .iter()
            .map(|&i| cfg.routes[i].name.as_str())
            .collect();
        assert_eq!(names, ["v1"]);
        let path = mfagate_policy::path::canonicalize("/v1/x").unwrap();
        let get = t.find(&cfg.routes, None, &Method::POST, &path).unwrap();
        assert!(t.override_targets(&cfg.routes, None, &path, get).is_empty(), "one route for any method");
    }

    #[test]
    fn one_host_or_none() {
        let uri = |u: &str| u.parse::<http::Uri>().unwrap();
        let host = |v: &[&str]| {
            let mut h = http::HeaderMap::new();
            for x in v {
                h.append(http::header::HOST, x.parse().unwrap());
            }
            h
        };
        assert_eq!(
            request_host(&uri("/"), &host(&["API.example.com.:8443"])),
            Ok(Some("api.example.com".into()))
        );
        assert_eq!(request_host(&uri("/"), &host(&["[::1]:80"])), Ok(Some("::1".into())));
        assert_eq!(request_host(&uri("http://a.test/x"), &host(&["A.test"])), Ok(Some("a.test".into())));
        assert_eq!(request_host(&uri("http://a.test/x"), &host(&["b.test"])), Err(HostError::Mismatch));
        assert_eq!(request_host(&uri("http://a.test:1/x"), &host(&["a.test:2"])), Err(HostError::Mismatch));
        assert_eq!(request_host(&uri("/"), &host(&["a.test", "b.test"])), Err(HostError::Invalid));
        assert_eq!(request_host(&uri("/"), &host(&["u@a.test"])), Err(HostError::Invalid));
        assert_eq!(request_host(&uri("/"), &host(&["a b"])), Err(HostError::Invalid));
        assert_eq!(request_host(&uri("/"), &host(&[])), Ok(None));
        for bad in
            ["a.test:x", "b.test[::1]x", "a.test;x", "a.test:99999", "a.test..", "a..test", "a.test:", "[::1"]
        {
            if let Ok(v) = bad.parse::<http::HeaderValue>() {
                let mut h = http::HeaderMap::new();
                h.insert(http::header::HOST, v);
                assert_eq!(request_host(&uri("/"), &h), Err(HostError::Invalid), "{bad}");
            }
        }
        assert_eq!(request_host(&uri("http://a.test:1/x"), &host(&["a.test:x"])), Err(HostError::Invalid));
        assert_eq!(
            request_host(&uri("/"), &host(&["internal_host.corp:8080"])),
            Ok(Some("internal_host.corp".into()))
        );
    }
}
