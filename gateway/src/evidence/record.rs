//! The decision record: what the log writes for each request, what the report and the live
//! view read.

use serde::Serialize;

/// One decision, as written. Field names are a contract (README, report).
#[derive(Debug, Clone, Serialize, Default)]
pub struct DecisionRecord {
    /// RFC 3339 UTC with milliseconds.
    pub ts: String,
    /// `MS-RequestId` if sent, else the gateway's id.
    pub request_id: String,
    /// The gateway's own id for this request, unique whatever the client sends.
    pub gateway_request_id: String,
    /// `MS-CorrelationId`.
    pub correlation_id: Option<String>,
    /// The W3C trace id of a valid `traceparent` the client sent (passed upstream unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// "api" (browser routes: "portal").
    pub channel: &'static str,
    /// The route's name.
    pub route: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Path without query string.
    pub path: String,
    /// "METHOD route-template".
    pub operation: String,
    /// Client address.
    pub source_ip: String,
    /// Configured issuer name.
    pub issuer: Option<String>,
    /// `tid`.
    pub tenant_id: Option<String>,
    /// `oid`.
    pub object_id: Option<String>,
    /// UPN, for display.
    pub upn: Option<String>,
    /// `appid` / `azp`.
    pub app_id: Option<String>,
    /// app_user | app_only | anonymous.
    pub principal: &'static str,
    /// `amr` values.
    pub amr: Vec<String>,
    /// MFA for App+User callers; null otherwise.
    pub mfa: Option<bool>,
    /// allow | deny | challenge.
    pub decision: &'static str,
    /// False in report-only mode.
    pub enforced: bool,
    /// Stable reason code.
    pub reason: &'static str,
    /// What the reason code alone does not say, never a secret and always a fixed string: for
    /// `weak_algorithm`, the refused algorithm's URI; for an OIDC `signed_in`,
    /// `amr_from_userinfo` when `amr` came from the userinfo endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'static str>,
    /// Status sent to the client (499: the client went away first; 408 `header_timeout`: closed,
    /// nothing sent).
    pub status: u16,
    /// Time to the response head, microseconds.
    pub latency_us: u64,
    /// What went wrong after the decision to forward (`upstream_error`, `upstream_timeout`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    /// Oddities of an accepted token.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<&'static str>,
}
