//! A small browser: follows redirects, keeps cookies, and submits auto-posting forms (the IdP's,
//! the ACS's re-post). It ignores SameSite and cookie prefixes: tests/chromium.rs covers those.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use std::collections::BTreeMap;

pub struct Browser {
    client: Client<HttpConnector, Full<Bytes>>,
    pub cookies: BTreeMap<String, String>,
    /// Every response seen: (status, url).
    pub trail: Vec<(u16, String)>,
    /// URLs starting with the first are sent to the second: a load balancer's choice.
    pub via: Option<(String, String)>,
}

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
    pub url: String,
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

fn attr_after<'a>(html: &'a str, marker: &str, attr: &str) -> Option<&'a str> {
    let at = html.find(marker)?;
    let rest = &html[at..];
    let start = rest.find(&format!("{attr}=\""))? + attr.len() + 2;
    let len = rest[start..].find('"')?;
    Some(&rest[start..start + len])
}

/// `scheme://host:port` of a URL.
fn origin(url: &str) -> String {
    url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/")
}

impl Browser {
    pub fn new() -> Browser {
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        Browser { client, cookies: BTreeMap::new(), trail: Vec::new(), via: None }
    }

    /// Sends what goes to `public` to `actual` from now on.
    pub fn via(&mut self, public: &str, actual: &str) {
        self.via = Some((public.to_owned(), actual.to_owned()));
    }

    async fn send(&mut self, method: Method, url: &str, body: Option<String>, accept: &str) -> Page {
        let target = match &self.via {
            Some((public, actual)) if url.starts_with(public.as_str()) => {
                format!("{actual}{}", &url[public.len()..])
            }
            _ => url.to_owned(),
        };
        let mut b = Request::builder().method(method).uri(&target).header("accept", accept);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            b = b.header("cookie", jar.join("; "));
        }
        if body.is_some() {
            b = b.header("content-type", "application/x-www-form-urlencoded");
        }
        let req = b.body(Full::new(Bytes::from(body.unwrap_or_default()))).unwrap();
        let rsp = self.client.request(req).await.unwrap();
        let (parts, body) = rsp.into_parts();
        for c in parts.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            let pair = c.split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                if c.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        let body = String::from_utf8_lossy(&body.collect().await.unwrap().to_bytes()).into_owned();
        self.trail.push((parts.status.as_u16(), url.to_owned()));
        Page { status: parts.status, headers: parts.headers, body, url: url.to_owned() }
    }

    /// Opens a page as a browser would: redirects followed, the IdP's form submitted.
    pub async fn open(&mut self, url: &str) -> Page {
        let page = self.send(Method::GET, url, None, "text/html").await;
        self.open_page(page).await
    }

    /// Goes on from `page` as a browser would: redirects followed, auto-posting forms submitted.
    pub async fn open_page(&mut self, mut page: Page) -> Page {
        for _ in 0..20 {
            if page.status == StatusCode::FOUND || page.status == StatusCode::SEE_OTHER {
                let location = page.headers["location"].to_str().unwrap().to_owned();
                let next = if location.starts_with('/') {
                    format!("{}{location}", origin(&page.url))
                } else {
                    location
                };
                page = self.send(Method::GET, &next, None, "text/html").await;
            } else if page.status == StatusCode::OK && page.body.contains("document.forms[0].submit()") {
                page = self.submit(&page).await;
            } else {
                return page;
            }
        }
        panic!("redirect loop: {:?}", self.trail);
    }

    /// Posts an auto-submitting form's hidden fields to its action, as its script would.
    pub async fn submit(&mut self, page: &Page) -> Page {
        let action = unescape(attr_after(&page.body, "<form", "action").unwrap());
        let action = if action.starts_with('/') { format!("{}{action}", origin(&page.url)) } else { action };
        let mut form = form_urlencoded::Serializer::new(String::new());
        let mut rest = page.body.as_str();
        while let Some(at) = rest.find("<input type=\"hidden\"") {
            rest = &rest[at + 1..];
            let name = unescape(attr_after(rest, "", "name").unwrap());
            form.append_pair(&name, &unescape(attr_after(rest, "", "value").unwrap_or_default()));
        }
        self.send(Method::POST, &action, Some(form.finish()), "text/html").await
    }

    /// One GET, nothing followed.
    pub async fn get(&mut self, url: &str) -> Page {
        self.send(Method::GET, url, None, "text/html").await
    }

    /// The SAMLResponse and RelayState of an IdP's auto-posting form.
    pub fn form_fields(page: &Page) -> (String, String) {
        let response = unescape(attr_after(&page.body, "name=\"SAMLResponse\"", "value").unwrap());
        let relay = unescape(attr_after(&page.body, "name=\"RelayState\"", "value").unwrap_or_default());
        (response, relay)
    }

    /// A script's request: no redirects followed.
    pub async fn fetch_json(&mut self, url: &str) -> Page {
        self.send(Method::GET, url, None, "application/json").await
    }

    /// Posts a form without following anything.
    pub async fn post_form(&mut self, url: &str, form: String) -> Page {
        self.send(Method::POST, url, Some(form), "text/html").await
    }
}
