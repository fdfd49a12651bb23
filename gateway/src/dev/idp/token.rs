//! What a development token says: the claims of Entra's v1 and v2 access tokens, App+User or
//! App-only, and how a request for one is read (the token endpoint's query, `token mint`).

use serde_json::{Value, json};

/// The tenant the demo and tests use (not a real tenant).
pub const DEV_TENANT: &str = "11111111-2222-4333-8444-555555555555";
/// The audience the demo and tests use.
pub const DEV_AUDIENCE: &str = "api://mfagate-demo";
/// The client (application) id on minted tokens.
pub const DEV_APP_ID: &str = "00000000-0000-4000-8000-00000000a990";
/// The development user.
pub const DEV_UPN: &str = "adele@contoso.test";
/// Entra's v1 issuer (`{tenantid}` is the token's `tid`).
pub const ENTRA_V1_ISSUER: &str = "https://sts.windows.net/{tenantid}/";
/// Entra's v2 issuer.
pub const ENTRA_V2_ISSUER: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";

const USER_OID: &str = "00000000-0000-4000-8000-0000000b0001";
const APP_OID: &str = "00000000-0000-4000-8000-0000000a0001";
/// Entra's `sub` for a user is pairwise and opaque.
const USER_SUB: &str = "m2Hq9dWlxbGVAY29udG9zby50ZXN0LWRldi1vbmx5";

/// What a token should say.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// `amr` values; `None` leaves the claim out.
    pub amr: Option<Vec<String>>,
    /// App-only (`roles`, `idtyp=app`) instead of App+User (`scp`).
    pub app_only: bool,
    /// "1.0" or "2.0".
    pub ver: String,
    /// Tenant.
    pub tid: String,
    /// Audience.
    pub aud: String,
    /// Seconds until `exp`.
    pub lifetime: u64,
    /// User principal name (App+User): `upn` in v1, `preferred_username` in v2.
    pub upn: String,
}

impl Default for TokenRequest {
    fn default() -> Self {
        TokenRequest {
            amr: Some(vec!["pwd".into(), "mfa".into()]),
            app_only: false,
            ver: "1.0".into(),
            tid: DEV_TENANT.into(),
            aud: DEV_AUDIENCE.into(),
            lifetime: 3600,
            upn: DEV_UPN.into(),
        }
    }
}

/// The issuer template of a provider at `base` for a token version, as Entra lays them out.
pub fn issuer_at(base: &str, ver: &str) -> String {
    if ver == "2.0" { format!("{base}/{{tenantid}}/v2.0") } else { format!("{base}/{{tenantid}}/") }
}

impl TokenRequest {
    /// Entra's issuer for this token's version.
    pub fn entra_issuer(&self) -> &'static str {
        if self.ver == "2.0" { ENTRA_V2_ISSUER } else { ENTRA_V1_ISSUER }
    }

    /// The claims Entra would put in such a token, issued by `issuer` (`{tenantid}` filled in)
    /// at `now` (Unix seconds). v1: `appid`, `upn`; v2: `azp`, `preferred_username`. App-only:
    /// `roles` and `idtyp: app`, and nothing of a user.
    pub fn claims(&self, issuer: &str, now: u64) -> Value {
        let v2 = self.ver == "2.0";
        let mut c = json!({
            "aud": self.aud, "iss": issuer.replace("{tenantid}", &self.tid),
            "iat": now, "nbf": now, "exp": now.saturating_add(self.lifetime),
            "ver": self.ver, "tid": self.tid,
            "oid": if self.app_only { APP_OID } else { USER_OID },
            "sub": if self.app_only { APP_OID } else { USER_SUB },
        });
        c[if v2 { "azp" } else { "appid" }] = json!(DEV_APP_ID);
        c[if v2 { "azpacr" } else { "appidacr" }] = json!(if self.app_only { "2" } else { "0" });
        if self.app_only {
            c["roles"] = json!(["Partner.Read.All"]);
            c["idtyp"] = json!("app");
        } else {
            c["scp"] = json!("user_impersonation");
            c[if v2 { "preferred_username" } else { "upn" }] = json!(self.upn);
            if let Some(amr) = &self.amr {
                c["amr"] = json!(amr);
            }
        }
        c
    }

    /// Reads a request from named parameters (the token endpoint's query, `token mint`'s flags):
    /// `kind` app-user | app-only, `ver` 1 | 2, `amr` (comma-separated, or `none`; by default
    /// `pwd,mfa` in v1 and none in v2, as Entra's v2 access tokens carry no `amr`), `tenant`,
    /// `aud`, `upn`, `ttl` (seconds). An App-only token with `amr` or `upn` is refused: it has no
    /// user.
    pub fn from_params(get: impl Fn(&str) -> Option<String>) -> Result<TokenRequest, String> {
        let app_only = match get("kind").as_deref() {
            None | Some("app-user" | "app_user") => false,
            Some("app-only" | "app_only") => true,
            Some(other) => return Err(format!("kind: app-user or app-only, not {other:?}")),
        };
        let ver = match get("ver").as_deref() {
            None | Some("1" | "1.0") => "1.0".into(),
            Some("2" | "2.0") => "2.0".into(),
            Some(other) => return Err(format!("ver: 1 or 2, not {other:?}")),
        };
        let mut t = TokenRequest { app_only, ver, ..TokenRequest::default() };
        let amr = get("amr");
        if t.app_only && (amr.is_some() || get("upn").is_some()) {
            return Err("an App-only token has no user: leave out amr and upn".into());
        }
        t.amr = match amr.as_deref() {
            Some("none") => None,
            Some(list) => {
                Some(list.split(',').map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect())
            }
            None if t.ver == "2.0" => None,
            None => t.amr,
        };
        if let Some(tid) = get("tenant") {
            t.tid = tid;
        }
        if let Some(aud) = get("aud") {
            t.aud = aud;
        }
        if let Some(upn) = get("upn") {
            t.upn = upn;
        }
        if let Some(ttl) = get("ttl") {
            t.lifetime = ttl.parse().map_err(|_| format!("ttl: whole seconds, not {ttl:?}"))?;
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<TokenRequest, String> {
        TokenRequest::from_params(|k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn v1_and_v2_are_shaped_as_entra_issues_them() {
        let v1 = from(&[]).unwrap();
        let c = v1.claims(v1.entra_issuer(), 100);
        assert_eq!(c["iss"], format!("https://sts.windows.net/{DEV_TENANT}/"));
        assert_eq!((&c["ver"], &c["appid"], &c["upn"]), (&json!("1.0"), &json!(DEV_APP_ID), &json!(DEV_UPN)));
        assert_eq!(c["amr"], json!(["pwd", "mfa"]));
        assert_eq!((c["exp"].as_u64(), c.get("azp"), c.get("preferred_username")), (Some(3700), None, None));

        let v2 = from(&[("ver", "2")]).unwrap();
        let c = v2.claims(v2.entra_issuer(), 100);
        assert_eq!(c["iss"], format!("https://login.microsoftonline.com/{DEV_TENANT}/v2.0"));
        assert_eq!(
            (&c["ver"], &c["azp"], &c["preferred_username"]),
            (&json!("2.0"), &json!(DEV_APP_ID), &json!(DEV_UPN))
        );
        assert_eq!(
            (c.get("amr"), c.get("upn"), c.get("appid")),
            (None, None, None),
            "v2: no amr unless asked"
        );
        let asked = from(&[("ver", "2"), ("amr", "pwd,mfa")]).unwrap();
        assert_eq!(asked.claims(ENTRA_V2_ISSUER, 0)["amr"], json!(["pwd", "mfa"]));
    }

    #[test]
    fn app_only_tokens_carry_roles_and_no_user() {
        let app = from(&[("kind", "app-only"), ("ver", "2")]).unwrap();
        let c = app.claims("https://issuer.test/{tenantid}", 0);
        assert_eq!(
            (&c["roles"], &c["idtyp"], &c["azpacr"]),
            (&json!(["Partner.Read.All"]), &json!("app"), &json!("2"))
        );
        for user in ["amr", "upn", "preferred_username", "scp"] {
            assert!(c.get(user).is_none(), "{user}");
        }
        assert_eq!(c["iss"], format!("https://issuer.test/{DEV_TENANT}"));
        assert!(from(&[("kind", "app-only"), ("amr", "mfa")]).is_err());
        assert!(from(&[("kind", "app-only"), ("upn", "x@y.test")]).is_err());
    }

    #[test]
    fn bad_parameters_are_named() {
        for (pairs, field) in
            [(&[("kind", "user")][..], "kind"), (&[("ver", "3")][..], "ver"), (&[("ttl", "1h")][..], "ttl")]
        {
            assert!(from(pairs).unwrap_err().starts_with(field), "{field}");
        }
        let t = from(&[("amr", "none"), ("ttl", "60"), ("tenant", "t"), ("aud", "a"), ("upn", "u")]).unwrap();
        assert_eq!(
            (t.amr, t.lifetime, t.tid.as_str(), t.aud.as_str(), t.upn.as_str()),
            (None, 60, "t", "a", "u")
        );
        assert_eq!(from(&[("amr", "pwd, mfa")]).unwrap().amr.unwrap(), ["pwd", "mfa"]);
    }
}
