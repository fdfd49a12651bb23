//! The bounded set of `reason` label values: every stable reason code a decision record can
//! carry (the policy's, the refusal table's, the sign-in endpoints'), and `other` for one this
//! list missed (a test keeps it complete). Never a string from the request.

/// Sorted, for a binary search on the request path.
pub const REASONS: [&str; 94] = [
    "alg_not_allowed",
    "amr_malformed",
    "amr_missing",
    "amr_wiaormfa_not_mfa",
    "app_only_allowed",
    "app_only_denied",
    "assertion_replayed",
    "b64_unsupported",
    "bad_request",
    "bad_signature",
    "body_timeout",
    "body_too_large",
    "body_unreadable",
    "claims_invalid",
    "client_closed_request",
    "code_exchange_failed",
    "code_missing",
    "crit_unsupported",
    "decision_log_unavailable",
    "duplicate_json_key",
    "header_name_underscore",
    "header_timeout",
    "header_too_large",
    "host_invalid",
    "host_mismatch",
    "in_response_to_mismatch",
    "invalid_token_request",
    "keys_unavailable",
    "login_required",
    "method_invalid",
    "method_override",
    "mfa_loop_guard",
    "mfa_missing",
    "mfa_not_required",
    "mfa_satisfied",
    "mfa_unknown_v2",
    "nested_jwt",
    "no_permissions_claim",
    "no_route",
    "no_token",
    "nonce_mismatch",
    "one_time_check_unavailable",
    "other",
    "path_backslash",
    "path_bad_escape",
    "path_control_byte",
    "path_double_encoded",
    "path_encoded_delimiter",
    "path_encoded_slash",
    "path_invalid_utf8",
    "path_lookalike_separator",
    "path_not_absolute",
    "path_parameter_dot_segment",
    "path_parameters",
    "path_windows_alias",
    "public_route",
    "saml_busy",
    "saml_idp_mismatch",
    "saml_mfa_missing",
    "saml_not_accepted",
    "saml_response_missing",
    "saml_response_resubmitted",
    "saml_response_too_large",
    "saml_wiaormultiauthn_not_mfa",
    "session_idp_mismatch",
    "session_seal_failed",
    "session_without_mfa",
    "sign_in_refused_by_idp",
    "sign_in_state_invalid",
    "sign_in_state_replayed",
    "signature_misplaced",
    "signed_in",
    "sso_response_not_api_credential",
    "tenant_not_allowed",
    "token_endpoint_auth_unsupported",
    "token_endpoint_unknown",
    "token_expired",
    "token_malformed",
    "token_not_yet_valid",
    "token_too_large",
    "typ_not_allowed",
    "unknown_issuer",
    "unknown_kid",
    "upstream_busy",
    "upstream_error",
    "upstream_timeout",
    "uri_too_long",
    "userinfo_invalid",
    "userinfo_jwt_refused",
    "userinfo_sub_mismatch",
    "userinfo_unavailable",
    "weak_algorithm",
    "wrong_audience",
    "wrong_issuer",
];

/// Where `other` sits in [`REASONS`].
const OTHER: usize = 42;

/// The index of `code` in [`REASONS`] (`other` for one not listed).
pub fn index(code: &str) -> usize {
    REASONS.binary_search(&code).unwrap_or(OTHER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_list_is_sorted_and_other_is_where_it_is_said_to_be() {
        assert!(REASONS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(REASONS[OTHER], "other");
        assert_eq!(index("no_token"), REASONS.iter().position(|r| *r == "no_token").unwrap());
        assert_eq!(index("a string from a request"), OTHER);
    }

    /// Every code a `fn code` returns (the policy's reasons, the refusal table, the OIDC
    /// failures) and every literal a record's `reason` is set to has its own label value: a
    /// new reason added without it here fails this test, instead of landing in `other`.
    #[test]
    fn every_reason_code_in_the_source_is_listed() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
        // Codes of things that are not reasons: anomalies and a session key error.
        let not_reasons = ["idtyp_app_with_scp", "app_only_public_client"];
        let mut codes = Vec::new();
        for file in
            ["src/respond.rs", "src/browser/oidc.rs", "../policy/src/decision.rs", "../policy/src/path.rs"]
        {
            let text = read(file);
            for body in text.split("fn code(").skip(1) {
                let body = body.split("\n    }\n").next().unwrap();
                codes.extend(quoted_after(body, "=> \""));
            }
        }
        for file in ["src/gate/proxy.rs", "src/browser/portal.rs", "src/gate/connection.rs"] {
            let text = read(file);
            for pattern in ["sign_in_failure(rec, \"", "reason = \"", "reason: \""] {
                codes.extend(quoted_after(&text, pattern));
            }
        }
        assert!(codes.len() > 80, "the scan found the codes: {codes:?}");
        for code in codes.iter().filter(|c| !not_reasons.contains(&c.as_str())) {
            assert_ne!(index(code), OTHER, "{code} is not in REASONS");
        }
    }

    fn quoted_after(text: &str, pattern: &str) -> Vec<String> {
        text.split(pattern)
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .filter(|s| {
                !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            })
            .map(str::to_owned)
            .collect()
    }
}
