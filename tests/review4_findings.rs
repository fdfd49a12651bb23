//! The fourth adversarial review (userinfo fallback, token endpoint authentication, sign-in-only
//! issuers, weak SAML algorithms, the development IdP): each test is the behaviour the gate must
//! have, written before the fix, so it failed until the gate was fixed.

use crate::interop::{Setup, browse, discovering_client};
use http::StatusCode;
use mfagate::dev::idp::DevUserinfo;

/// A sign-in's decision record is the evidence that a user showed MFA. When `amr` came from the
/// userinfo endpoint rather than the signed ID token, the record must say so (a fixed `detail`)
/// and name the `amr` MFA was decided on, as API records do: otherwise an auditor reading
/// `"mfa": true` cannot tell a signed claim from an unsigned answer, nor see what was shown.
#[tokio::test]
async fn a_sign_in_record_names_the_amr_and_whether_userinfo_supplied_it() {
    let id_token: Setup = |_| {};
    let userinfo: Setup = |idp| idp.set_userinfo(DevUserinfo::Userinfo);
    for (setup, detail) in [(id_token, None), (userinfo, Some("amr_from_userinfo"))] {
        let mut g = discovering_client("").idp_setup(setup).start().await;
        let (page, b) = browse(&g).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", b.trail);
        let log = g.stop().await;
        let row = log.iter().find(|r| r["reason"] == "signed_in").unwrap();
        assert_eq!(row["mfa"], true);
        assert_eq!(row["amr"], serde_json::json!(["pwd", "mfa"]), "{row}");
        assert_eq!(row.get("detail").and_then(|d| d.as_str()), detail, "{row}");
    }
}
