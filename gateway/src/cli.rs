//! The command line's shared plumbing: clap's errors mapped to the exit codes every command
//! shares, output that survives a reader who went away (`| head`), the configuration-file
//! argument, and the commands that are more than a call (`report`).

pub mod report;

use crate::ConfigError;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit statuses every command shares (README, "Exit codes").
pub mod status {
    /// Done, also when the reader of standard output went away.
    pub const OK: u8 = 0;
    /// The work failed: an invalid configuration, a file that cannot be read or written, a port
    /// that cannot be bound.
    pub const FAILED: u8 = 1;
    /// The command line is wrong: an unknown flag, a missing or bad value.
    pub const USAGE: u8 = 3;
}

/// Parses the command line. `Err` holds the status to exit with once clap's message is printed:
/// 0 for `--help` and `--version`, 3 for every usage error (clap's own default is 2, which
/// `inspect` uses for an invalid credential).
pub fn parse<T: clap::Parser>() -> Result<T, ExitCode> {
    parse_from(std::env::args_os())
}

/// [`parse`] on given arguments (the first is the program name).
pub fn parse_from<T: clap::Parser, I>(args: I) -> Result<T, ExitCode>
where
    I: IntoIterator,
    I::Item: Into<std::ffi::OsString> + Clone,
{
    T::try_parse_from(args).map_err(|e| {
        let code = if e.exit_code() == 0 { status::OK } else { status::USAGE };
        // A help text nobody reads (a closed pipe) is no reason to fail.
        let _ = e.print();
        ExitCode::from(code)
    })
}

/// A configuration file, as `FILE` or as `--config FILE`: either, not both.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct ConfigFile {
    /// The configuration file (TOML).
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// The configuration file (TOML), the same as FILE.
    #[arg(long = "config", short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
}

impl ConfigFile {
    /// The file given, either way.
    pub fn path(&self) -> PathBuf {
        // clap's group makes exactly one of them present.
        self.file.clone().or_else(|| self.config.clone()).unwrap_or_default()
    }
}

/// Why a command did not finish.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line is wrong in a way clap cannot see (exit 3).
    #[error("{0}")]
    Usage(String),
    /// The work failed (exit 1).
    #[error("{0}")]
    Failed(String),
    /// A configuration file is invalid (exit 1, each problem on its own line).
    #[error("{}: invalid configuration", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// Its problems.
        source: ConfigError,
    },
    /// Standard output could not be written: a closed pipe exits 0 quietly, as ripgrep does.
    #[error("cannot write to standard output: {0}")]
    Output(std::io::Error),
}

impl CliError {
    /// Prints the error to standard error as `mfagate <command>: ...` and gives the exit status.
    pub fn exit(&self, command: &str) -> ExitCode {
        let code = match self {
            CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return ExitCode::SUCCESS,
            CliError::Usage(_) => status::USAGE,
            CliError::Failed(_) | CliError::Config { .. } | CliError::Output(_) => status::FAILED,
        };
        match self {
            CliError::Config { source, .. } => {
                let mut text = format!("{self}\n");
                for problem in source.problems() {
                    text.push_str(&format!("  {problem}\n"));
                }
                for warning in source.warnings() {
                    text.push_str(&format!("  warning: {warning}\n"));
                }
                warn(&text);
            }
            other => warn(&format!("mfagate {command}: {other}\n")),
        }
        ExitCode::from(code)
    }
}

/// Prints a configuration's warnings to standard error, one `warning: key.path: ...` a line.
pub fn print_config_warnings(warnings: &[String]) {
    let text: String = warnings.iter().map(|w| format!("warning: {w}\n")).collect();
    warn(&text);
}

/// Writes `text` to standard output and flushes it, handing back the error instead of panicking
/// as `print!` does on a closed pipe.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Writes `text` to standard error; an error there has nowhere left to be reported.
pub fn warn(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Probe {
        #[command(flatten)]
        config: ConfigFile,
    }

    #[test]
    fn a_config_file_either_way_but_not_both() {
        let by_position = parse_from::<Probe, _>(["p", "a.toml"]).unwrap();
        assert_eq!(by_position.config.path(), PathBuf::from("a.toml"));
        let by_flag = parse_from::<Probe, _>(["p", "--config", "b.toml"]).unwrap();
        assert_eq!(by_flag.config.path(), PathBuf::from("b.toml"));
        let short = parse_from::<Probe, _>(["p", "-c", "c.toml"]).unwrap();
        assert_eq!(short.config.path(), PathBuf::from("c.toml"));
        for wrong in [&["p"][..], &["p", "a.toml", "--config", "b.toml"], &["p", "a.toml", "b.toml"]] {
            let err = Probe::try_parse_from(wrong).unwrap_err();
            assert_ne!(err.exit_code(), 0, "{wrong:?}");
            assert_eq!(
                format!("{:?}", parse_from::<Probe, _>(wrong).unwrap_err()),
                format!("{:?}", ExitCode::from(3))
            );
        }
    }

    #[test]
    fn a_closed_pipe_is_quiet_and_successful() {
        let closed = CliError::Output(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert_eq!(format!("{:?}", closed.exit("x")), format!("{:?}", ExitCode::SUCCESS));
        let full = CliError::Output(std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert_eq!(format!("{:?}", full.exit("x")), format!("{:?}", ExitCode::from(1)));
        assert_eq!(
            format!("{:?}", CliError::Usage("u".into()).exit("x")),
            format!("{:?}", ExitCode::from(3))
        );
    }
}
