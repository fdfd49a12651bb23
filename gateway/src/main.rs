//! The `mfagate` command line.

use clap::{Parser, Subcommand};
use mfagate::Config;
use mfagate::cli::{CliError, ConfigFile};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

// mimalloc: the request path allocates small, short-lived strings and header maps, where glibc's
// allocator cost about a sixth of each request's instructions (callgrind, benches/load.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A reverse proxy that enforces multi-factor authentication on partner API calls, logs every
/// decision, and proves it with numbers.
#[derive(Parser)]
#[command(name = "mfagate", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run(ConfigFile),
    /// Validate a configuration file: print each problem with its key path, exit 1 on any error
    /// (warnings are printed to standard error and exit 0).
    CheckConfig(ConfigFile),
    /// The Security requirements status report from decision logs (streamed; files or folders).
    Report(mfagate::cli::report::ReportArgs),
    /// Does a token or SAML assertion prove MFA, and what would the gateway answer? Exit 0 MFA
    /// proven, 1 not proven, 2 invalid or not verified, 3 usage.
    Inspect(mfagate::dev::inspect::Args),
    /// Run a local demo on five ports, printing curl commands to try.
    ///
    /// The ports, all on 127.0.0.1: the gateway (:8080) and its admin port (:9090) as the demo
    /// configuration sets them, a development OIDC identity provider (:8082), a development SAML
    /// identity provider (:8083) and an echo upstream (:8081).
    Demo {
        /// The demo configuration.
        #[arg(long, default_value = "examples/demo.toml")]
        config: PathBuf,
        /// Folder of development keys (DEVELOPMENT ONLY).
        #[arg(long, default_value = "certs")]
        certs: PathBuf,
    },
    /// Development tokens (DEVELOPMENT ONLY): `token mint` prints one shaped as Entra issues it.
    Token {
        #[command(subcommand)]
        command: mfagate::dev::mint::TokenCommand,
    },
    /// Run the development identity providers, OIDC (:8082) and SAML (:8083), for local testing
    /// and CI: DEVELOPMENT ONLY.
    DevIdp(mfagate::dev::serve::DevIdpArgs),
}

fn main() -> ExitCode {
    let cli = match mfagate::cli::parse::<Cli>() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Its fallback for a failed write is eprintln!, which panics on a closed standard error.
        .log_internal_errors(false)
        .init();
    let (name, result) = match cli.command {
        Command::CheckConfig(file) => ("check-config", check_config(&file.path())),
        Command::Run(file) => ("run", run(file.path())),
        Command::Report(args) => ("report", mfagate::cli::report::run(args)),
        // Its exit code is its verdict (0 MFA proven, 1 not, 2 invalid, 3 usage).
        Command::Inspect(args) => return mfagate::dev::inspect::main(args),
        Command::Demo { config, certs } => (
            "demo",
            runtime(async move {
                mfagate::dev::demo::run(&config, &certs, shutdown_signal()).await.map_err(|e| match e {
                    mfagate::dev::demo::DemoError::Output(e) => CliError::Output(e),
                    other => CliError::Failed(other.to_string()),
                })
            }),
        ),
        Command::Token { command } => ("token mint", mfagate::dev::mint::main(command)),
        Command::DevIdp(args) => (
            "dev-idp",
            runtime(async move {
                mfagate::dev::serve::run(args, shutdown_signal())
                    .await
                    .map_err(|e| CliError::Failed(e.to_string()))
            }),
        ),
    };
    result.map_or_else(|e| e.exit(name), |()| ExitCode::SUCCESS)
}

fn load(path: &Path) -> Result<Config, CliError> {
    Config::load(path).map_err(|source| CliError::Config { path: path.to_owned(), source })
}

fn check_config(path: &Path) -> Result<(), CliError> {
    let c = load(path)?;
    mfagate::cli::print_config_warnings(&c.warnings);
    mfagate::cli::print(&format!(
        "{}: ok ({} issuers, {} routes)\n",
        path.display(),
        c.issuers.len(),
        c.routes.len()
    ))
    .map_err(CliError::Output)
}

fn run(path: PathBuf) -> Result<(), CliError> {
    let cfg = load(&path)?;
    for warning in &cfg.warnings {
        tracing::warn!("configuration: {warning}");
    }
    runtime(async move {
        let listener = tokio::net::TcpListener::bind(cfg.listen.addr)
            .await
            .map_err(|e| CliError::Failed(format!("cannot listen on {}: {e}", cfg.listen.addr)))?;
        mfagate::serve(listener, cfg, shutdown_signal()).await.map_err(|e| CliError::Failed(e.to_string()))
    })
}

fn runtime(work: impl std::future::Future<Output = Result<(), CliError>>) -> Result<(), CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the runtime: {e}")))?
        .block_on(work)
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
