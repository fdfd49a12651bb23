//! `mfagate demo`: the development identity provider, an echo upstream and the gateway, in one
//! process, with curl commands a newcomer can paste.

use crate::clock::{SharedClock, SystemClock};
use crate::dev::echo::Echo;
use crate::dev::idp::TokenRequest;
use crate::dev::serve::{DevIdpError, DevIdps};
use crate::{Config, Options, serve_with};
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(#[from] crate::ConfigError),
    /// The identity providers could not start.
    #[error("{0}")]
    Idp(#[from] DevIdpError),
    /// A token could not be minted.
    #[error("{0}")]
    Keys(#[from] crate::dev::idp::DevKeyError),
    /// The gateway failed.
    #[error("{0}")]
    Gateway(#[from] crate::StartError),
    /// The curl commands could not be printed (a closed pipe among them).
    #[error("cannot write to standard output: {0}")]
    Output(std::io::Error),
}

async fn bind(addr: &str, what: &str) -> Result<TcpListener, DemoError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| DevIdpError::Bind { what: format!("{what} on {addr}"), source }.into())
}

/// Runs the demo until `shutdown`.
pub async fn run(
    config_path: &Path,
    certs: &Path,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DemoError> {
    let config = Config::load(config_path)?;
    let clock: SharedClock = Arc::new(SystemClock);
    let DevIdps { oidc: idp, saml } =
        crate::dev::serve::start("127.0.0.1:8082", "127.0.0.1:8083", certs, clock.clone()).await?;
    let echo = Echo::start(bind("127.0.0.1:8081", "echo upstream").await?)
        .map_err(|source| DevIdpError::Bind { what: "echo upstream".into(), source })?;
    let addr = config.listen.addr;
    let listener = bind(&addr.to_string(), "gateway").await?;
    let gw = format!("http://{addr}");
    let mfa = idp.mint(&TokenRequest::default())?;
    let no_mfa = idp.mint(&TokenRequest { amr: Some(vec!["pwd".into()]), ..TokenRequest::default() })?;
    let app = idp.mint(&TokenRequest { app_only: true, ..TokenRequest::default() })?;
    crate::cli::print(&format!(
        "\nmfagate demo: gateway {gw}, identity provider {idp_url}, echo upstream {echo_url}, admin http://{admin}\n\
         Decision log: {log}\n\n\
         # 1. App+User token WITH MFA (amr: pwd, mfa): 200, the upstream sees x-auth-mfa: true\n\
         curl -i {gw}/v1/customers -H 'Authorization: Bearer {mfa}'\n\n\
         # 2. App+User token WITHOUT MFA (amr: pwd): 401 Unauthorized - MFA required\n\
         curl -i {gw}/v1/customers -H 'Authorization: Bearer {no_mfa}'\n\n\
         # 3. App-only token (roles, idtyp=app): 200 on /v1/, 403 insufficient_scope on /admin/\n\
         curl -i {gw}/v1/customers -H 'Authorization: Bearer {app}'\n\
         curl -i {gw}/admin/users -H 'Authorization: Bearer {app}'\n\n\
         # 4. No token: 401 with WWW-Authenticate: Bearer realm=\"mfagate\"\n\
         curl -i {gw}/v1/customers\n\n\
         # 5. A browser route: open {gw}/app/ in a browser, or follow the sign-in with curl:\n\
         curl -sL -c /tmp/mfagate.jar -b /tmp/mfagate.jar {gw}/app/hello\n\n\
         # 6. A federated SAML assertion as the credential (AD FS style): SAML 1.1 with MFA (200),\n\
         #    without MFA (401 saml_mfa_missing), and SAML 2.0; add &minutes=60 for longer ones\n\
         curl -i {gw}/v1/customers -H \"Authorization: SAML $(curl -s '{saml_url}&version=1.1')\"\n\
         curl -i {gw}/v1/customers -H \"Authorization: SAML $(curl -s '{saml_url}&version=1.1&mfa=false')\"\n\
         curl -i {gw}/v1/customers -H \"Authorization: SAML $(curl -s '{saml_url}&version=2.0')\"\n\n\
         # 7. An RFC 7522 SAML bearer grant at a token endpoint: exchanged with MFA, 400 invalid_grant without\n\
         curl -i {gw}/oauth2/token -d grant_type=urn:ietf:params:oauth:grant-type:saml1_1-bearer --data-urlencode \"assertion=$(curl -s '{grant_url}&version=1.1&mfa=false')\"\n\n\
         # Mint more tokens (amr=none leaves amr out; kind=app-only; ver=2), or offline, or rotate the key:\n\
         curl -s '{idp_url}/token?amr=pwd,mfa'\n\
         mfagate token mint --iss '{idp_url}/{{tenantid}}/' --amr pwd\n\
         curl -s -X POST '{idp_url}/rotate?remove_after=600'\n\n\
         # Readiness, metrics, and the decisions made so far:\n\
         curl -s http://{admin}/readyz; curl -s http://{admin}/metrics | grep mfagate_requests_total\n\
         tail -n 5 {log}\n\n\
         # The live report, on the private admin port (DEVELOPMENT ONLY token):\n\
         curl -s -H \"Authorization: Bearer $(cat examples/demo-admin-token)\" http://{private}/v1/report\n\n\
         Press Ctrl-C to stop.\n",
        idp_url = idp.base_url(),
        saml_url = saml.assertion_url(&config.saml.entity_id),
        grant_url = saml.assertion_url(
            config
                .routes
                .iter()
                .find_map(|r| r.grant_audience.as_deref())
                .unwrap_or("urn:federation:MicrosoftOnline")
        ),
        echo_url = echo.url(),
        admin = config.admin.map_or_else(|| "(none)".to_owned(), |a| a.to_string()),
        private = config.private_admin.as_ref().map_or_else(|| "(none)".to_owned(), |p| p.addr.to_string()),
        log = config.decision_log.path.display(),
    ))
    .map_err(DemoError::Output)?;
    serve_with(listener, config, Options { clock, admin: None, private_admin: None, reload: None }, shutdown)
        .await?;
    Ok(())
}
