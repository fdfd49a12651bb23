//! An adversarial review of the gate (paths, methods, headers, upgrades, records): each test is a
//! way around it that a server behind the gateway makes real, written as the behaviour the gate
//! must have. Requests go over raw sockets exactly as written (the helpers of the hostile suite).

use crate::hostile::{get, raw};
use crate::support::*;

/// A catch-all public route, as a site that puts its API behind the gateway often has.
const SITE: &str =
    "\n[[route]]\nname = \"site\"\npath_prefix = \"/\"\nupstream = \"{echo}\"\nauth = \"none\"\n";

/// Each path must be refused (400) or decided under the protected route (401 without a token):
/// never forwarded under `site`.
async fn never_under_site(g: &Gateway, paths: &[&str]) -> Vec<String> {
    let mut leaked = Vec::new();
    for path in paths {
        let hits = g.echo.hits();
        let (status, body) = raw(g.addr, &get(path, None, "")).await;
        if g.echo.hits() != hits || !matches!(status, 400 | 401) {
            leaked.push(format!("{path} -> {status} {body}"));
        }
    }
    leaked
}

/// nginx decodes the path into `$uri` and, with `proxy_pass http://app$uri` (or a `rewrite`),
/// sends it on decoded; Apache's `RewriteRule ... [P]` does the same (the class of
/// CVE-2023-25690). `/graphql%3Fquery=...` then reaches the app as `/graphql?query=...`.
#[tokio::test]
async fn encoded_query_and_fragment_delimiters_stay_under_their_route() {
    let mut g = gateway()
        .append(SITE)
        .append("\n[[route]]\nname = \"graphql\"\npath_prefix = \"/graphql\"\nupstream = \"{echo}\"\n")
        .start()
        .await;
    let leaked = never_under_site(
        &g,
        &["/graphql%3Fquery=%7Busers%7Bupn%7D%7D", "/graphql%23", "/admin%3F/users", "/admin%23/users"],
    )
    .await;
    g.stop().await;
    assert!(leaked.is_empty(), "forwarded under the public route: {leaked:#?}");
}

/// Windows resolves `admin.` to `admin` and `admin::$INDEX_ALLOCATION` to the directory itself
/// (IIS's authentication bypasses of that name), and drops trailing spaces and dots at the end of
/// a path: a route that says its upstream is Windows (`case_sensitive = false`) must not let those
/// spellings fall to another route.
#[tokio::test]
async fn windows_aliases_of_a_case_insensitive_route() {
    let mut g = gateway()
        .replace(
            "app_only = \"deny\"\nchallenge = \"rfc9470\"",
            "app_only = \"deny\"\ncase_sensitive = false\nchallenge = \"rfc9470\"",
        )
        .append(SITE)
        .start()
        .await;
    let leaked = never_under_site(
        &g,
        &[
            "/admin./users",
            "/admin%2e/users",
            "/ADMIN./users",
            "/admin::$INDEX_ALLOCATION/users",
            "/admin:$i30:$INDEX_ALLOCATION/users",
            "/admin.",
            "/admin%20",
            "/admin%20.",
        ],
    )
    .await;
    g.stop().await;
    assert!(leaked.is_empty(), "forwarded under the public route: {leaked:#?}");
}

/// Rails routes `/admin.json` to the controller of `/admin` (`(.:format)` in every route), as
/// Spring MVC did by default before 5.3 (suffix pattern matching); Spring before 4.3 trimmed
/// `admin%20` to `admin` (CVE-2016-5007).
#[tokio::test]
async fn what_frameworks_read_as_the_prefix_segment_is_decided_under_it() {
    let mut g = gateway().append(SITE).start().await;
    let leaked = never_under_site(&g, &["/admin.json", "/admin.json/users", "/admin%20/users"]).await;
    g.stop().await;
    assert!(leaked.is_empty(), "forwarded under the public route: {leaked:#?}");
}

/// Express (`caseSensitive: false`), ASP.NET Core endpoint routing and Koa's router match paths
/// case-insensitively by default, on Linux as on Windows: with the default `case_sensitive = true`
/// `/ADMIN/users` is decided under the public route and served by the admin handler. (The issue
/// makes case-insensitivity opt-in; then the README's "for IIS and other Windows upstreams" must
/// name these too.)
#[tokio::test]
async fn the_default_matching_agrees_with_case_insensitive_frameworks() {
    let mut g = gateway().append(SITE).start().await;
    let leaked = never_under_site(&g, &["/ADMIN/users", "/Admin/users"]).await;
    g.stop().await;
    assert!(leaked.is_empty(), "forwarded under the public route: {leaked:#?}");
}
