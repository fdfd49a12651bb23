//! The `mfagate` command line.

use clap::{Parser, Subcommand};
use mfagate::Config;
use mfagate::cli::{CliError, ConfigFile};
use mfagate::config::LogFormat;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

// mimalloc: the request path allocates small, short-lived strings and header maps, where glibc's
// allocator cost about a sixth of each request's instructions (callgrind, benches/load/mfagate.toml).
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
    Run(RunArgs),
    /// Validate a configuration file: print each problem with its key path, exit 1 on any error
    /// (warnings are printed to standard error and exit 0).
    CheckConfig(ConfigFile),
    /// The Security requirements status report from decision logs (streamed; files or folders).
    Report(mfagate::cli::report::ReportArgs),
    /// Does a token or SAML assertion prove MFA, and what would the gateway answer? Exit 0 MFA
    /// proven, 1 not proven, 2 invalid or not verified, 3 usage.
    Inspect(mfagate::dev::inspect::Args),
    /// Run a local demo on six ports, printing curl commands to try.
    ///
    /// The ports, all on 127.0.0.1: the gateway (:8080), its admin port (:9090) and its private
    /// admin port for the report (:9091) as the demo configuration sets them, a development OIDC identity provider (:8082), a development SAML
    /// identity provider (:8083) and an echo upstream (:8081).
    Demo {
        /// The demo configuration.
        #[arg(long, default_value = "examples/demo.toml")]
        config: PathBuf,
        /// Folder of development keys (DEVELOPMENT ONLY).
        #[arg(long, default_value = "certs")]
        certs: PathBuf,
    },
    /// Development tokens (DEVELOPMENT ONLY): `token mint` prints one shaped as Entra issues it,
    /// `token saml` a signed SAML bearer assertion.
    Token {
        #[command(subcommand)]
        command: mfagate::dev::mint::TokenCommand,
    },
    /// Run the development identity providers, OIDC (:8082) and SAML (:8083), for local testing
    /// and CI: DEVELOPMENT ONLY.
    DevIdp(mfagate::dev::serve::DevIdpArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    file: ConfigFile,
    /// The operational log on standard error: json or text. Default: `[log] format`, else json
    /// unless standard error is a terminal.
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    /// Do not watch the configuration file for changes (SIGHUP still reloads it).
    #[arg(long)]
    no_watch_config: bool,
}

fn main() -> ExitCode {
    let cli = match mfagate::cli::parse::<Cli>() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let terminal = std::io::stderr().is_terminal();
    let (name, result) = match cli.command {
        Command::Run(args) => {
            // The configuration may choose the log's format, so it is read before logging starts
            // (its problems are printed apart from the log).
            let result = load(&args.file.path()).and_then(|cfg| {
                let default = if terminal { LogFormat::Text } else { LogFormat::Json };
                // xmlsec's raw error lines become log events (evidence/xmlsec_log.rs).
                let capture = mfagate::evidence::xmlsec_log::capture();
                let writer = match &capture {
                    Ok(c) => BoxMakeWriter::new(c.original()),
                    Err(_) => BoxMakeWriter::new(std::io::stderr),
                };
                init_log(args.log_format.or(cfg.log_format).unwrap_or(default), terminal, writer);
                if let Err(e) = &capture {
                    tracing::warn!(error = %e, "xmlsec's errors stay raw on standard error");
                }
                let result = run(cfg, args.file.path(), !args.no_watch_config);
                drop(capture);
                result
            });
            ("run", result)
        }
        // Its exit code is its verdict (0 MFA proven, 1 not, 2 invalid, 3 usage).
        Command::Inspect(args) => {
            init_log(LogFormat::Text, terminal, BoxMakeWriter::new(std::io::stderr));
            return mfagate::dev::inspect::main(args);
        }
        command => {
            init_log(LogFormat::Text, terminal, BoxMakeWriter::new(std::io::stderr));
            other(command)
        }
    };
    result.map_or_else(|e| e.exit(name), |()| ExitCode::SUCCESS)
}

/// The operational log on standard error: colours only on a terminal (and not with NO_COLOR).
fn init_log(format: LogFormat, terminal: bool, writer: BoxMakeWriter) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(writer)
        .with_ansi(terminal && std::env::var_os("NO_COLOR").is_none())
        // Its fallback for a failed write is eprintln!, which panics on a closed standard error.
        .log_internal_errors(false);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Every command but `run`.
fn other(command: Command) -> (&'static str, Result<(), CliError>) {
    match command {
        Command::Run(_) | Command::Inspect(_) => ("run", Err(CliError::Failed("started by main".into()))),
        Command::CheckConfig(file) => ("check-config", check_config(&file.path())),
        Command::Report(args) => ("report", mfagate::cli::report::run(args)),
        Command::Demo { config, certs } => (
            "demo",
            runtime(async move {
                mfagate::dev::demo::run(&config, &certs, shutdown_signal()).await.map_err(|e| match e {
                    mfagate::dev::demo::DemoError::Output(e) => CliError::Output(e),
                    other => CliError::Failed(other.to_string()),
                })
            }),
        ),
        Command::Token { command } => ("token", mfagate::dev::mint::main(command)),
        Command::DevIdp(args) => (
            "dev-idp",
            runtime(async move {
                mfagate::dev::serve::run(args, shutdown_signal())
                    .await
                    .map_err(|e| CliError::Failed(e.to_string()))
            }),
        ),
    }
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

fn run(cfg: Config, path: PathBuf, watch: bool) -> Result<(), CliError> {
    for warning in &cfg.warnings {
        tracing::warn!("configuration: {warning}");
    }
    runtime(async move {
        let triggers = mfagate::reload::triggers();
        reload_on_hangup(triggers.0.clone());
        let listener = tokio::net::TcpListener::bind(cfg.listen.addr)
            .await
            .map_err(|e| CliError::Failed(format!("cannot listen on {}: {e}", cfg.listen.addr)))?;
        let reload = Some(mfagate::reload::Reloading { path, watch, triggers });
        let options = mfagate::Options { reload, ..mfagate::Options::default() };
        mfagate::serve_with(listener, cfg, options, shutdown_signal())
            .await
            .map_err(|e| CliError::Failed(e.to_string()))
    })
}

fn runtime(work: impl std::future::Future<Output = Result<(), CliError>>) -> Result<(), CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the runtime: {e}")))?
        .block_on(work)
}

/// SIGHUP (the unit's `ExecReload`) reloads the configuration. The handler is installed before
/// the listener is bound, so an early SIGHUP is a reload, not the signal's default action (exit).
fn reload_on_hangup(triggers: tokio::sync::mpsc::Sender<mfagate::reload::Trigger>) {
    #[cfg(unix)]
    if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the configuration");
                // Full: a reload is already waiting, and it reads the file as it is now.
                let _ = triggers.try_send(mfagate::reload::Trigger::Signal);
            }
        });
    }
    #[cfg(not(unix))]
    drop(triggers);
}

/// Completes on SIGTERM or Ctrl-C. The handlers are installed when this is called, not when it
/// is first polled: a SIGTERM that arrives between "listening" and the first poll must start the
/// drain, not kill the process with the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (term, int) = {
        use tokio::signal::unix::{SignalKind, signal};
        (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok())
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {},
                () = wait(int) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
