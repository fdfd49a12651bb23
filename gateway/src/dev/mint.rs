//! `mfagate token mint`: a token shaped as Entra issues it (see [`TokenRequest::claims`]), signed
//! with a development key or the one given, for curl and scripts: one line on standard output and
//! nothing else; `mfagate token saml` the same for SAML bearer assertions. DEVELOPMENT ONLY: the
//! default keys are public.

use crate::dev::idp::{DEV_AUDIENCE, DEV_TENANT, DevKey, DevKeyError, TokenRequest};
use std::path::PathBuf;

/// `mfagate token ...`.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Print a token signed with a development key (DEVELOPMENT ONLY): one line on stdout.
    Mint(MintArgs),
    /// Print a signed SAML bearer assertion, base64, for `Authorization: SAML` (DEVELOPMENT
    /// ONLY): the development SAML IdP's `/assertion`, without the IdP.
    Saml(SamlArgs),
}

/// `mfagate token saml`'s flags.
#[derive(Debug, clap::Args)]
pub struct SamlArgs {
    /// The SP's entity id (`Audience`).
    #[arg(long)]
    pub audience: String,
    /// The IdP's entity id (`Issuer`).
    #[arg(long, default_value = "http://127.0.0.1:8083/saml")]
    pub issuer: String,
    /// 2.0, or 1.1 (AD FS to WS-Federation relying parties).
    #[arg(long, default_value = "2.0", value_parser = ["2.0", "1.1"])]
    pub version: String,
    /// Whether the assertion says MFA.
    #[arg(long, default_value = "true", value_parser = ["true", "false"])]
    pub mfa: String,
    /// Where it says how the user signed in (as `/assertion`'s `location`).
    #[arg(long)]
    pub location: Option<String>,
    /// Minutes until `NotOnOrAfter`.
    #[arg(long, default_value_t = 5)]
    pub minutes: u64,
    /// Folder of development keys: saml-idp.key and saml-idp.pem (DEVELOPMENT ONLY).
    #[arg(long, default_value = "certs")]
    pub certs: PathBuf,
    /// Print this many assertions, one per line, each with its own ID.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub count: u32,
}

/// Signs `args.count` assertions issued at `now`.
pub fn saml(args: &SamlArgs, now: u64) -> Result<Vec<String>, MintError> {
    let read = |name: &str| {
        let path = args.certs.join(name);
        std::fs::read(&path).map_err(|source| MintError::Read { path: path.display().to_string(), source })
    };
    let signer =
        crate::dev::saml_idp::DevSamlSigner::from_pem(&read("saml-idp.key")?, &read("saml-idp.pem")?)
            .map_err(|e| MintError::Flags(e.to_string()))?;
    let get = |name: &str| match name {
        "audience" => Some(args.audience.clone()),
        "version" => Some(args.version.clone()),
        "mfa" => Some(args.mfa.clone()),
        "location" => args.location.clone(),
        "minutes" => Some(args.minutes.to_string()),
        _ => None,
    };
    (0..args.count)
        .map(|_| {
            crate::dev::saml_idp::sign_bearer(&signer, &args.issuer, now, &get).map_err(MintError::Flags)
        })
        .collect()
}

/// `mfagate token mint`'s flags.
#[derive(Debug, clap::Args)]
pub struct MintArgs {
    /// `amr` values, comma-separated, or `none` [default: pwd,mfa in v1; none in v2, as Entra's v2
    /// access tokens carry no amr].
    #[arg(long)]
    pub amr: Option<String>,
    /// App+User (`scp` and a user) or App-only (`roles`, `idtyp: app`, no user).
    #[arg(long, default_value = "app-user", value_parser = ["app-user", "app-only"])]
    pub kind: String,
    /// 1: `iss` https://sts.windows.net/{tid}/, `appid`, `upn`, `ver` "1.0";
    /// 2: `iss` https://login.microsoftonline.com/{tid}/v2.0, `azp`, `preferred_username`.
    #[arg(long, default_value = "1", value_parser = ["1", "2"])]
    pub ver: String,
    /// The tenant (`tid`).
    #[arg(long, default_value = DEV_TENANT)]
    pub tenant: String,
    /// The audience (`aud`).
    #[arg(long, default_value = DEV_AUDIENCE)]
    pub aud: String,
    /// The user of an App+User token [default: adele@contoso.test].
    #[arg(long)]
    pub upn: Option<String>,
    /// Seconds from now until `exp`.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
    /// The private key to sign with, PEM: RSA (RS256) or EC P-256 (ES256) / P-384 (ES384)
    /// [default: dev-idp-rsa-a.key in --certs].
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The `kid` header [default: dev-rsa-a for the development key, else the key's RFC 7638
    /// thumbprint].
    #[arg(long)]
    pub kid: Option<String>,
    /// The issuer; `{tenantid}` becomes the tenant [default: Entra's, for the version]. The
    /// development IdP's: http://127.0.0.1:8082/{tenantid}/ (v1), .../{tenantid}/v2.0 (v2).
    #[arg(long)]
    pub iss: Option<String>,
    /// Folder of development keys (DEVELOPMENT ONLY).
    #[arg(long, default_value = "certs")]
    pub certs: PathBuf,
    /// Print this many tokens, one per line, each with its own `uti` (a load run's pool of new
    /// tokens); signed on every core.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub count: u32,
}

/// Why no token was minted: a bad flag or an unusable key, both the caller's to fix.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The flags ask for a token that cannot be.
    #[error("{0}")]
    Flags(String),
    /// The key file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The key cannot be used.
    #[error("{0}")]
    Key(#[from] DevKeyError),
}

/// Mints the token `args` describe, issued at `now` (Unix seconds).
pub fn mint(args: &MintArgs, now: u64) -> Result<String, MintError> {
    let (key, claims) = prepare(args, now)?;
    Ok(key.sign(&claims)?)
}

/// Mints `args.count` tokens that differ only in `uti` (Entra's unique token id), signed on
/// every core, in order.
pub fn mint_many(args: &MintArgs, now: u64) -> Result<Vec<String>, MintError> {
    let (key, claims) = prepare(args, now)?;
    let count = args.count as usize;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(count);
    let per = count.div_ceil(threads);
    let parts: Vec<Result<Vec<String>, DevKeyError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (key, claims) = (&key, &claims);
                scope.spawn(move || {
                    let mut claims = claims.clone();
                    (t * per..((t + 1) * per).min(count))
                        .map(|i| {
                            claims["uti"] = serde_json::json!(format!("mint-{now}-{i}"));
                            key.sign(&claims)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(DevKeyError("a signing thread failed".into()))))
            .collect()
    });
    let mut tokens = Vec::with_capacity(count);
    for part in parts {
        tokens.extend(part?);
    }
    Ok(tokens)
}

/// The signing key and the claims `args` describe.
fn prepare(args: &MintArgs, now: u64) -> Result<(DevKey, serde_json::Value), MintError> {
    let given = |name: &str| -> Option<String> {
        match name {
            "kind" => Some(args.kind.clone()),
            "ver" => Some(args.ver.clone()),
            "amr" => args.amr.clone(),
            "tenant" => Some(args.tenant.clone()),
            "aud" => Some(args.aud.clone()),
            "upn" => args.upn.clone(),
            "ttl" => Some(args.ttl.to_string()),
            _ => None,
        }
    };
    let req = TokenRequest::from_params(given).map_err(MintError::Flags)?;
    let (path, kid) = match &args.key {
        Some(path) => (path.clone(), args.kid.as_deref()),
        None => (args.certs.join("dev-idp-rsa-a.key"), Some(args.kid.as_deref().unwrap_or("dev-rsa-a"))),
    };
    let pem = std::fs::read(&path)
        .map_err(|source| MintError::Read { path: path.display().to_string(), source })?;
    let key = DevKey::from_pem(kid, &pem)?;
    let issuer = args.iss.as_deref().unwrap_or(req.entra_issuer());
    Ok((key, req.claims(issuer, now)))
}

/// Runs a `token` command: the token on stdout; a token that cannot be made is a usage error
/// (exit 3), a closed pipe a quiet exit.
pub fn main(command: TokenCommand) -> Result<(), crate::cli::CliError> {
    use crate::clock::Clock;
    let now = crate::clock::SystemClock.unix().0;
    let tokens = match command {
        TokenCommand::Mint(args) if args.count == 1 => mint(&args, now).map(|t| vec![t]),
        TokenCommand::Mint(args) => mint_many(&args, now),
        TokenCommand::Saml(args) => saml(&args, now),
    }
    .map_err(|e| crate::cli::CliError::Usage(e.to_string()))?;
    let mut out = String::with_capacity(tokens.iter().map(|t| t.len() + 1).sum());
    for token in tokens {
        out.push_str(&token);
        out.push('\n');
    }
    crate::cli::print(&out).map_err(crate::cli::CliError::Output)
}
