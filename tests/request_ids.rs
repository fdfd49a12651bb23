//! Request ids and traces: the gateway's request id goes upstream and back to the client under a
//! configurable name, `traceparent` passes through and its trace id is recorded.

use crate::support::*;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn the_request_id_goes_upstream_and_back_and_the_trace_id_is_recorded() {
    let mut g = gateway().start().await;
    let token = g.token(|_| {});
    let req = g
        .request("/v1/traced", Some(&token))
        .header("x-request-id", "client-chosen")
        .header("traceparent", TRACEPARENT)
        .body(Default::default())
        .unwrap();
    let rsp = g.send(req).await;
    assert_eq!(rsp.status, 200, "{}", rsp.body);
    let seen = rsp.json();
    let upstream_id = seen["headers"]["x-request-id"].as_str().unwrap().to_owned();
    assert_ne!(upstream_id, "client-chosen", "the gateway's id replaces the client's");
    assert_eq!(rsp.headers["x-request-id"], upstream_id.as_str());
    assert_eq!(seen["headers"]["traceparent"], TRACEPARENT);
    // A refusal names its request too; a malformed traceparent is not recorded.
    let req = g.request("/v1/refused", None).header("traceparent", "00-xyz-00f067aa0ba902b7-01");
    let refused = g.send(req.body(Default::default()).unwrap()).await;
    assert_eq!(refused.status, 401);
    let refused_id = refused.headers["x-request-id"].to_str().unwrap().to_owned();
    let log = g.stop().await;
    let traced = log.iter().find(|r| r["path"] == "/v1/traced").unwrap();
    assert_eq!(traced["gateway_request_id"], upstream_id.as_str());
    assert_eq!(traced["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    let refused = log.iter().find(|r| r["path"] == "/v1/refused").unwrap();
    assert_eq!(refused["gateway_request_id"], refused_id.as_str());
    assert!(refused.get("trace_id").is_none(), "{refused}");
}

#[tokio::test]
async fn the_request_id_header_name_is_configurable() {
    let g = gateway().listen("request_id_header = \"x-gateway-request-id\"").start().await;
    let rsp = g.get("/v1/named", Some(&g.token(|_| {}))).await;
    let seen = rsp.json();
    let id = seen["headers"]["x-gateway-request-id"].as_str().expect("sent upstream");
    assert_eq!(rsp.headers["x-gateway-request-id"], id);
    assert!(seen["headers"].get("x-request-id").is_none());
    let dir = tempfile::tempdir().unwrap();
    let bad = "[listen]\nrequest_id_header = \"bad name\"\n[decision_log]\npath = \"d.jsonl\"\n";
    let problems = mfagate::Config::from_toml(bad, dir.path()).unwrap_err().problems().join("\n");
    assert!(problems.contains("listen.request_id_header: not a header name"), "{problems}");
}
