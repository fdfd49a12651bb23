//! Prints a development token signed with `certs/dev-idp-rsa-a.key`, for the demo's issuer.
//!
//! ```sh
//! cargo run -p mfagate --example mint_token -- pwd,mfa        # App+User with MFA
//! cargo run -p mfagate --example mint_token -- pwd            # App+User without MFA
//! cargo run -p mfagate --example mint_token -- app_only       # App-only
//! ```
//! DEVELOPMENT ONLY: the key is public.

use mfagate::dev::idp::{DEV_APP_ID, DEV_AUDIENCE, DEV_TENANT, DevKey};
use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "pwd,mfa".into());
    let pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../certs/dev-idp-rsa-a.key"))?;
    let key = DevKey::rsa("dev-rsa-a", &pem)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut claims = json!({
        "aud": DEV_AUDIENCE, "iss": format!("http://127.0.0.1:8082/{DEV_TENANT}/"), "tid": DEV_TENANT,
        "iat": now, "nbf": now, "exp": now + 3600, "ver": "1.0", "appid": DEV_APP_ID,
        "oid": "00000000-0000-4000-8000-0000000b0001",
    });
    if arg == "app_only" {
        claims["roles"] = json!(["Partner.Read.All"]);
        claims["idtyp"] = json!("app");
    } else {
        claims["scp"] = json!("user_impersonation");
        claims["upn"] = json!("adele@contoso.test");
        claims["amr"] = json!(arg.split(',').collect::<Vec<_>>());
    }
    println!("{}", key.sign(&claims)?);
    Ok(())
}
