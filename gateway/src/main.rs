//! The `mfagate` command line.

use clap::{Parser, Subcommand};
use mfagate::Config;
use std::path::PathBuf;
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
    Run {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file: print each problem with its key path, exit 1 on any.
    CheckConfig {
        /// The configuration file (TOML).
        file: PathBuf,
    },
    /// The Security requirements status report from decision logs (streamed; files or folders).
    Report {
        /// Decision-log files or folders (rotated files, several instances: all merged).
        #[arg(long = "log", required = true, num_args = 1..)]
        logs: Vec<PathBuf>,
        /// End of the window, RFC 3339 (default: now).
        #[arg(long)]
        now: Option<String>,
        /// Window length in days of 24 hours.
        #[arg(long, default_value_t = 7)]
        days: u64,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Also write Partner Center's three CSV exports into this folder.
        #[arg(long)]
        out: Option<PathBuf>,
        /// A gateway config whose [report] section declares what mfagate cannot observe.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Does a token or SAML assertion prove MFA, and what would the gateway answer? Exit 0 MFA
    /// proven, 1 not proven, 2 invalid or not verified, 3 usage.
    Inspect(mfagate::dev::inspect::Args),
    /// Run a local demo: a development identity provider (:8082), an echo upstream (:8081) and
    /// the gateway (:8080), printing curl commands to try.
    Demo {
        /// The demo configuration.
        #[arg(long, default_value = "examples/demo.toml")]
        config: PathBuf,
        /// Folder of development keys (DEVELOPMENT ONLY).
        #[arg(long, default_value = "certs")]
        certs: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(c) => {
                println!("{}: ok ({} issuers, {} routes)", file.display(), c.issuers.len(), c.routes.len());
                ExitCode::SUCCESS
            }
            Err(e) => config_failure(&file, &e),
        },
        Command::Run { config } => {
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => return config_failure(&config, &e),
            };
            runtime(async move {
                let listener = tokio::net::TcpListener::bind(cfg.listen.addr)
                    .await
                    .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen.addr))?;
                mfagate::serve(listener, cfg, shutdown_signal()).await.map_err(|e| e.to_string())
            })
        }
        Command::Report { logs, now, days, format, out, config } => {
            report(&logs, now.as_deref(), days, format, out, config)
        }
        Command::Inspect(args) => mfagate::dev::inspect::main(args),
        Command::Demo { config, certs } => runtime(async move {
            mfagate::dev::demo::run(&config, &certs, shutdown_signal()).await.map_err(|e| e.to_string())
        }),
    }
}

fn config_failure(file: &std::path::Path, e: &mfagate::ConfigError) -> ExitCode {
    eprintln!("{}: invalid configuration", file.display());
    for problem in e.problems() {
        eprintln!("  {problem}");
    }
    ExitCode::from(1)
}

fn runtime(work: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mfagate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mfagate: {e}");
            ExitCode::FAILURE
        }
    }
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

fn report(
    logs: &[PathBuf],
    now: Option<&str>,
    days: u64,
    format: Format,
    out: Option<PathBuf>,
    config: Option<PathBuf>,
) -> ExitCode {
    use mfagate::clock::Clock;
    let now_ms = match now {
        None => mfagate::clock::SystemClock.now_millis(),
        Some(t) => match mfagate::evidence::report::parse_ts_ms(t) {
            Some(ms) => ms,
            None => {
                eprintln!("mfagate report: --now is not RFC 3339: {t}");
                return ExitCode::from(2);
            }
        },
    };
    let report_cfg = match config.as_deref().map(Config::load).transpose() {
        Ok(c) => c.map(|c| c.report).unwrap_or_default(),
        Err(e) => return config_failure(config.as_deref().unwrap_or(std::path::Path::new("")), &e),
    };
    let (report, warnings) = match mfagate::evidence::report::build(logs, now_ms, days) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mfagate report: {e}");
            return ExitCode::FAILURE;
        }
    };
    for w in warnings.iter().take(20) {
        eprintln!("warning: {w}");
    }
    if warnings.len() > 20 {
        eprintln!("warning: {} more lines skipped", warnings.len() - 20);
    }
    if let Some(dir) = out {
        let names = |id: &str| report_cfg.application_name(id);
        if let Err(e) = mfagate::evidence::report::write_exports(&report, &dir, &names) {
            eprintln!("mfagate report: {e}");
            return ExitCode::FAILURE;
        }
    }
    match format {
        Format::Text => print!("{}", mfagate::evidence::report::to_text(&report, &report_cfg.declared)),
        Format::Json => println!("{:#}", mfagate::evidence::report::to_json(&report, &report_cfg.declared)),
    }
    ExitCode::SUCCESS
}
