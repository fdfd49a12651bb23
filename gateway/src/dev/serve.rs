//! `mfagate dev-idp`: the development identity providers (OIDC and SAML) as one long-running
//! command, for a partner's CI and local testing. `mfagate demo` starts the same two, and the
//! tests start their servers ([`DevIdp`], [`DevSamlIdp`]) directly. DEVELOPMENT ONLY: they sign
//! with the public keys of `certs/` and with keys made up at run time.

use crate::clock::{SharedClock, SystemClock};
use crate::dev::idp::{DevIdp, DevKeyError, DevMfa, load_dev_keys};
use crate::dev::saml_idp::{DevSamlIdp, DevSamlSigner};
use mfagate_policy::SamlLocation;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;

/// `mfagate dev-idp`'s flags.
#[derive(Debug, clap::Args)]
pub struct DevIdpArgs {
    /// Where the OpenID provider listens (discovery, JWKS, token, authorize, rotate).
    #[arg(long, default_value = "127.0.0.1:8082")]
    pub addr: String,
    /// Where the SAML identity provider listens (metadata, SSO, bearer assertions).
    #[arg(long, default_value = "127.0.0.1:8083")]
    pub saml_addr: String,
    /// Folder of development keys (DEVELOPMENT ONLY: they are public).
    #[arg(long, default_value = "certs")]
    pub certs: PathBuf,
    /// When browser sign-ins (OIDC /authorize, SAML /sso) show MFA; `when-asked`: only when the
    /// request asks for it (`amr_values=mfa`, a `multipleauthn` class reference).
    #[arg(long, value_enum, default_value = "always")]
    pub mfa: SignInMfa,
    /// Where SAML SSO Responses carry the authentication method: an `mfa_locations` entry
    /// (authn_context, authenticationmethod, authnmethodsreferences).
    #[arg(long, default_value = "authn_context", value_parser = ["authn_context", "authenticationmethod", "authnmethodsreferences"])]
    pub saml_mfa_location: String,
}

/// When sign-ins show MFA.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SignInMfa {
    /// Every sign-in.
    Always,
    /// None.
    Never,
    /// Only those that ask for it.
    WhenAsked,
}

/// Why the identity providers could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevIdpError {
    /// A port is taken or a socket failed.
    #[error("{what}: {source}")]
    Bind {
        /// Which listener.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The OIDC keys could not be loaded.
    #[error("{0}")]
    Keys(#[from] DevKeyError),
    /// The SAML key or certificate could not be loaded.
    #[error("dev SAML key: {0}")]
    SamlKey(String),
    /// A flag is not usable.
    #[error("{0}")]
    Flag(String),
}

/// The two development identity providers, running.
pub struct DevIdps {
    /// The OpenID provider.
    pub oidc: DevIdp,
    /// The SAML identity provider (entity id `http://<its address>/saml`).
    pub saml: DevSamlIdp,
}

async fn bind(addr: &str, what: &str) -> Result<TcpListener, DevIdpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| DevIdpError::Bind { what: format!("{what} on {addr}"), source })
}

/// Starts both providers with the keys of `certs`.
pub async fn start(
    oidc_addr: &str,
    saml_addr: &str,
    certs: &Path,
    clock: SharedClock,
) -> Result<DevIdps, DevIdpError> {
    let read = |name: &str| {
        let path = certs.join(name);
        std::fs::read(&path).map_err(|e| DevIdpError::SamlKey(format!("{}: {e}", path.display())))
    };
    let keys = load_dev_keys(certs)?;
    let signer = DevSamlSigner::from_pem(&read("saml-idp.key")?, &read("saml-idp.pem")?)
        .map_err(|e| DevIdpError::SamlKey(e.to_string()))?;
    let what = "identity provider";
    let oidc = DevIdp::start(bind(oidc_addr, what).await?, keys, clock.clone())
        .map_err(|source| DevIdpError::Bind { what: what.into(), source })?;
    let what = "SAML identity provider";
    let listener = bind(saml_addr, what).await?;
    let entity_id = listener
        .local_addr()
        .map(|a| format!("http://{a}/saml"))
        .map_err(|source| DevIdpError::Bind { what: what.into(), source })?;
    let saml = DevSamlIdp::start(listener, signer, &entity_id, clock)
        .map_err(|source| DevIdpError::Bind { what: what.into(), source })?;
    Ok(DevIdps { oidc, saml })
}

impl DevIdps {
    /// What they serve, and curl commands to mint tokens and assertions and to rotate the key.
    pub fn banner(&self) -> String {
        let (idp, saml) = (self.oidc.base_url(), self.saml.base_url());
        let locations: Vec<&str> = SamlLocation::ALL.iter().map(|l| l.name()).collect();
        format!(
            "mfagate dev-idp: DEVELOPMENT ONLY. It signs with the public keys of certs/ and with keys it makes up:\n\
             never trust this issuer outside development and tests.\n\n\
             OpenID provider {idp}\n\
             \x20 discovery  {idp}/.well-known/openid-configuration\n\
             \x20 issuer     {idp}/{{tenantid}}/ (v1), {idp}/{{tenantid}}/v2.0 (v2)\n\
             \x20 keys       {idp}/keys\n\
             \x20 token      {idp}/token?kind=app-user|app-only&ver=1|2&amr=pwd,mfa|none&tenant=..&aud=..&upn=..&ttl=SECS\n\
             \x20 authorize  {idp}/authorize (code flow with PKCE S256: signs the development user in at once)\n\
             \x20 rotate     POST {idp}/rotate?remove_after=SECS&alg=RS256|ES256\n\
             SAML identity provider {saml}, entity id {entity}\n\
             \x20 metadata   {saml}/metadata\n\
             \x20 sso        {saml}/sso (HTTP-Redirect; posts a signed Response; add &mfa=false or &location=.. to the SSO URL)\n\
             \x20 assertion  {saml}/assertion?audience=..&version=2.0|1.1&mfa=true|false&location=..&minutes=5\n\
             \x20            location: {locations}\n\n\
             # An App+User token with MFA, one without, an App-only one (v2), as JSON:\n\
             curl -s '{idp}/token?amr=pwd,mfa'\n\
             curl -s '{idp}/token?amr=pwd'\n\
             curl -s '{idp}/token?kind=app-only&ver=2'\n\n\
             # Rotate: a new kid is published and signs now; the old one leaves the JWKS after remove_after seconds:\n\
             curl -s -X POST '{idp}/rotate?remove_after=600'\n\
             curl -s '{idp}/keys'\n\n\
             # A signed SAML 1.1 assertion with MFA in the authnmethodsreferences attribute, base64 (Authorization: SAML ...):\n\
             curl -s '{saml}/assertion?audience=https://gateway.example/saml&version=1.1&location=authnmethodsreferences'\n\n\
             # The same tokens without a server: mfagate token mint --iss '{idp}/{{tenantid}}/' --amr pwd,mfa\n\n\
             Press Ctrl-C to stop.\n",
            entity = self.saml.entity_id(),
            locations = locations.join(", "),
        )
    }
}

/// Runs `mfagate dev-idp` until `shutdown`.
pub async fn run(
    args: DevIdpArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DevIdpError> {
    let location = SamlLocation::named(&args.saml_mfa_location)
        .ok_or_else(|| DevIdpError::Flag(format!("--saml-mfa-location: {}", args.saml_mfa_location)))?;
    let clock: SharedClock = Arc::new(SystemClock);
    let idps = start(&args.addr, &args.saml_addr, &args.certs, clock).await?;
    let mode = match args.mfa {
        SignInMfa::Always => DevMfa::Always,
        SignInMfa::Never => DevMfa::Never,
        SignInMfa::WhenAsked => DevMfa::WhenAsked,
    };
    idps.oidc.set_mfa(mode);
    idps.saml.set_mfa(mode);
    idps.saml.set_mfa_location(location);
    tracing::warn!(
        "Development identity providers: their keys are public; never trust them outside development"
    );
    for addr in [idps.oidc.addr(), idps.saml.addr()] {
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "The development identity provider is reachable from other hosts: its keys are public");
        }
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(idps.banner().as_bytes()).and_then(|()| out.flush());
    drop(out);
    shutdown.await;
    Ok(())
}
