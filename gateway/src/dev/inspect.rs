//! `mfagate inspect`: is this token or assertion MFA, and what would the gateway do with it?
//! It verifies with the gateway's own code (the JWT and SAML verifiers, the key caches, the
//! policy, the request path's per-route steps and the one response table), explains which claim
//! or SAML location decided, and says what to change at the identity provider. Exit codes for
//! scripts: 0 MFA proven, 1 valid without proven MFA (App-only included), 2 invalid or not
//! verified, 3 usage. It never prints a signature, a key, a whole token or an assertion.

mod advice;
pub mod findings;
pub mod input;
mod jwt;
mod saml;
pub mod sources;
mod text;

use crate::clock::{SharedClock, SystemClock};
use crate::config::{Challenge, Channel, RouteConfig};
use findings::Findings;
use input::{Document, InputError};
use sources::{Context, Source, UsageError};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code for usage errors (an unreadable input or key source).
pub const EXIT_USAGE: u8 = 3;

/// `mfagate inspect` options.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("keys").multiple(false))]
pub struct Args {
    /// A gateway configuration: verify as its issuers and SAML IdPs do, and judge each route.
    #[arg(long, group = "keys", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A JWKS, file or URL (offline with a file).
    #[arg(long, group = "keys", value_name = "FILE_OR_URL")]
    pub jwks: Option<String>,
    /// An OpenID provider: its issuer URL or its discovery document's URL.
    #[arg(long, group = "keys", value_name = "URL")]
    pub issuer: Option<String>,
    /// SAML IdP metadata, file or URL (its signing certificates).
    #[arg(long = "idp-metadata", group = "keys", value_name = "FILE_OR_URL")]
    pub idp_metadata: Option<String>,
    /// Print JSON (the shape is in docs/inspect.md).
    #[arg(long)]
    pub json: bool,
    /// Do not exit 2 only because the signature could not be checked (the verdict is then
    /// labelled unverified); a signature checked and bad still exits 2.
    #[arg(long)]
    pub no_verify: bool,
    /// A JWT, or a SAML Response or Assertion (XML, base64, or a SAMLResponse= form value);
    /// `-` or nothing reads standard input (which keeps it out of shell history). Several words
    /// are one document (`Bearer eyJ...` unquoted).
    // Not one value: clap's error for a second word would print it (a token) back whole.
    #[arg(value_name = "TOKEN", num_args = 0..)]
    pub token: Vec<String>,
}

impl Args {
    fn source(&self) -> Source {
        if let Some(c) = &self.config {
            Source::Config(c.clone())
        } else if let Some(j) = &self.jwks {
            Source::Jwks(j.clone())
        } else if let Some(i) = &self.issuer {
            Source::Issuer(i.clone())
        } else if let Some(m) = &self.idp_metadata {
            Source::IdpMetadata(m.clone())
        } else {
            Source::None
        }
    }
}

/// Why inspect could not look at the document (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum Usage {
    /// The input.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The key source.
    #[error(transparent)]
    Source(#[from] UsageError),
    /// No runtime.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// Runs `mfagate inspect`, printing to standard output; the exit code is the verdict.
pub fn main(args: Args) -> ExitCode {
    match run(&args, Arc::new(SystemClock)) {
        Ok(findings) => {
            print(&findings, args.json);
            ExitCode::from(findings.verdict.exit_code)
        }
        Err(e) => {
            // Not eprintln!, which panics (exit 101) when standard error is a closed pipe.
            crate::cli::warn(&format!("mfagate inspect: {e}\n"));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Inspects the document `args` names, reading time from `clock`.
pub fn run(args: &Args, clock: SharedClock) -> Result<Findings, Usage> {
    let given = (!args.token.is_empty()).then(|| args.token.join(" "));
    let text = input::read(given.as_deref())?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(Usage::Runtime)?;
    rt.block_on(async {
        let mut ctx = Context::new(args.source(), clock)?;
        let findings = match input::recognise(&text, &ctx.saml_decoder()) {
            Ok(Document::Jwt(token)) => jwt::examine(&mut ctx, &token, args.no_verify).await?,
            Ok(Document::Saml { xml, form }) => saml::examine(&mut ctx, &xml, form, args.no_verify).await?,
            Err(why) => {
                let mut f = Findings::new("unknown", "unknown", &ctx.source);
                f.refuse(why);
                f.advice.push(
                    "Give a JWT (three base64url parts), or a SAML Response or Assertion as XML, base64, \
                     or a SAMLResponse= form value."
                        .to_owned(),
                );
                f
            }
        };
        Ok(findings)
    })
}

fn print(f: &Findings, json: bool) {
    use std::io::Write;
    let text = if json {
        serde_json::to_string_pretty(f).map(|j| j + "\n").unwrap_or_default()
    } else {
        text::render(f, text::Paint::for_stdout(), crate::clock::Clock::unix(&SystemClock).0)
    };
    // A closed pipe (`| head`) ends the output quietly.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// The route a gateway configuration gets by default (`mfa = "required"`, Partner Center's
/// challenge), to judge by when no `--config` is given.
pub fn default_route() -> RouteConfig {
    RouteConfig {
        name: "(default route)".to_owned(),
        path_prefix: "/".to_owned(),
        prefix: mfagate_policy::path::Prefix::root(),
        allow_path_parameters: false,
        method_overrides: true,
        host: None,
        methods: Vec::new(),
        upstream: http::Uri::from_static("http://upstream.invalid/"),
        rule: mfagate_policy::RouteRule::default(),
        challenge: Challenge::PartnerCenter,
        strip_authorization: false,
        grant_audience: None,
        upstream_timeout: std::time::Duration::from_secs(60),
        issuers: Vec::new(),
        channel: Channel::Api,
        login: None,
    }
}
