//! The command line as scripts meet it, through the real binary: a closed pipe is a quiet exit 0,
//! every usage error exits 3, a configuration file is taken either way, and `demo --help` names
//! the ports the demo binds.

use crate::support::*;
use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};

fn mfagate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mfagate"))
}

/// Runs `args` with standard output a pipe whose reader is gone before the command starts, as
/// after `| head` has read its lines, so the first write fails, every time.
fn with_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    mfagate().args(args).stdout(writer).stderr(Stdio::piped()).output().unwrap()
}

fn a_log_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let line =
        r#"{"ts":"2025-12-31T10:00:00.000Z","channel":"api","principal":"app_user","mfa":true,"app_id":"a"}"#;
    std::fs::write(dir.path().join("decisions.jsonl"), format!("{line}\n").repeat(1000)).unwrap();
    dir
}

#[test]
fn every_command_exits_quietly_on_a_closed_pipe() {
    let logs = a_log_folder();
    let log = logs.path().to_str().unwrap();
    let demo = certs().join("../examples/demo.toml");
    let demo = demo.to_str().unwrap();
    let report = ["report", "--now", "2026-01-01T00:00:00Z", "--log", log, "--format"];
    let cases: Vec<Vec<&str>> = vec![
        [&report[..], &["text"]].concat(),
        [&report[..], &["json"]].concat(),
        [&report[..], &["csv"]].concat(),
        vec!["check-config", demo],
        vec!["check-config", "--config", demo],
        vec!["--help"],
        vec!["--version"],
        vec!["report", "--help"],
        vec!["demo", "--help"],
        vec!["help", "run"],
    ];
    for args in cases {
        let out = with_closed_stdout(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        // The demo trusts development certificates: check-config warns, on standard error.
        let only_warnings = args[0] == "check-config" && stderr.lines().all(|l| l.starts_with("warning: "));
        assert!(stderr.is_empty() || only_warnings, "{args:?} wrote to standard error: {stderr}");
    }
    // Both pipes closed, with warnings to give: still no panic (101), still 0.
    std::fs::write(logs.path().join("torn.jsonl"), "{\"ts\":\"2026").unwrap();
    let (out_r, out_w) = std::io::pipe().unwrap();
    let (err_r, err_w) = std::io::pipe().unwrap();
    drop((out_r, err_r));
    let status =
        mfagate().args([&report[..], &["json"]].concat()).stdout(out_w).stderr(err_w).status().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_full_disk_is_an_error_not_a_quiet_exit() {
    let logs = a_log_folder();
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = mfagate()
        .args(["report", "--log", logs.path().to_str().unwrap()])
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("mfagate report: cannot write to standard output"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn usage_errors_exit_3_for_every_command() {
    let logs = a_log_folder();
    let log = logs.path().to_str().unwrap();
    let cases: &[&[&str]] = &[
        &[],
        &["frobnicate"],
        &["--bogus"],
        &["run"],
        &["run", "--bogus"],
        &["run", "a.toml", "--config", "b.toml"],
        &["run", "--config"],
        &["check-config"],
        &["check-config", "--bogus", "a.toml"],
        &["check-config", "a.toml", "--config", "b.toml"],
        &["check-config", "a.toml", "b.toml"],
        &["report"],
        &["report", "--log"],
        &["report", "--log", log, "--bogus"],
        &["report", "--log", log, "--days", "0"],
        &["report", "--log", log, "--days", "-1"],
        &["report", "--log", log, "--days", "seven"],
        &["report", "--log", log, "--days", "3651"],
        &["report", "--log", log, "--format", "xml"],
        &["report", "--log", log, "--now", "yesterday"],
        &["report", "--log", log, "--now", "2026-13-01T00:00:00Z"],
        &["demo", "--bogus"],
        &["demo", "--config"],
    ];
    for args in cases {
        let out = mfagate().args(*args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(stderr.contains("error:") || stderr.contains("Usage:"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let zero = mfagate().args(["report", "--log", log, "--days", "0"]).output().unwrap();
    assert!(String::from_utf8_lossy(&zero.stderr).contains("'--days <DAYS>'"));
    // Help and version are answers, not errors.
    for args in
        [&["--help"][..], &["-h"], &["--version"], &["report", "--help"], &["help"], &["help", "report"]]
    {
        let out = mfagate().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_config_file_is_taken_as_a_name_or_with_config() {
    let demo = certs().join("../examples/demo.toml");
    for args in [&["check-config"][..], &["check-config", "--config"], &["check-config", "-c"]] {
        let out = mfagate().args(args).arg(&demo).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains(": ok ("), "{args:?}");
    }
    // `run FILE` reads the file it is given (and refuses it, before binding anything).
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[decision_log]\npath = \"d\"\nunknown_key = 1\n").unwrap();
    for args in [&["run"][..], &["run", "--config"], &["check-config"]] {
        let out = mfagate().args(args).arg(&bad).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("bad.toml: invalid configuration") && stderr.contains("unknown_key"),
            "{stderr}"
        );
    }
}

#[test]
fn demo_help_names_every_port_the_demo_binds() {
    // The ports the demo binds: its own listeners, and the gateway's and admin's from its config.
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(manifest.join("src/dev/demo.rs")).unwrap();
    let config = std::fs::read_to_string(manifest.join("../examples/demo.toml")).unwrap();
    let mut ports = BTreeSet::new();
    for text in [&source, &config] {
        for rest in text.split("127.0.0.1:").skip(1) {
            let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if !port.is_empty() {
                ports.insert(port);
            }
        }
    }
    assert_eq!(ports.len(), 6, "{ports:?}");
    let out = mfagate().args(["demo", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for port in &ports {
        assert!(help.contains(&format!(":{port})")), "demo --help does not name :{port}:\n{help}");
    }
    assert!(help.contains("six ports"), "{help}");
}
