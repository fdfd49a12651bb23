//! The Debian package on this machine: installed with `dpkg -i`, its config checked, the binary
//! started as the unit's `ExecStart` and `User=` say, and purged. It changes the system (root,
//! Debian), so it runs only with `MFAGATE_PACKAGE_TEST=1`, after `deploy/build-deb.sh`; .ci/run
//! does both.

use crate::deploy::{deb_file_name, repo};
use crate::hostile::{get, raw};
use crate::support::lines_of;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A command's standard output; panics with its standard error when it fails.
fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn id(flag: &str) -> u32 {
    sh("id", &[flag, "mfagate"]).trim().parse().unwrap()
}

/// Purges the package when the test ends, passed or not.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "mfagate"]).stdout(Stdio::null()).status();
    }
}

/// Kills the gateway if the test ends before it is stopped.
struct Gateway(std::process::Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `Key=value` lines of the installed unit.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines().filter_map(|l| l.strip_prefix(key)?.strip_prefix('=')).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_package_installs_passes_check_config_runs_as_its_user_and_purges() {
    if std::env::var("MFAGATE_PACKAGE_TEST").as_deref() != Ok("1") {
        eprintln!("skipped: set MFAGATE_PACKAGE_TEST=1 after deploy/build-deb.sh (it installs a package)");
        return;
    }
    let deb = repo().join("target/debian").join(deb_file_name());
    assert!(deb.is_file(), "{} is missing: run deploy/build-deb.sh", deb.display());
    let installed = Installed;
    sh("dpkg", &["-i", deb.to_str().unwrap()]);

    // What dpkg recorded: the conffile, the libraries dpkg-shlibdeps found, the unit.
    let conffiles = sh("dpkg-query", &["-W", "-f=${Conffiles}", "mfagate"]);
    assert!(conffiles.contains("/etc/mfagate/mfagate.toml"), "{conffiles}");
    let depends = sh("dpkg-query", &["-W", "-f=${Depends}", "mfagate"]);
    for lib in ["libxmlsec1", "libxml2", "libssl3", "libc6"] {
        assert!(depends.contains(lib), "{lib} not in Depends: {depends}");
    }
    let files = sh("dpkg", &["-L", "mfagate"]);
    let unit_path = files.lines().find(|f| f.ends_with("/systemd/system/mfagate.service")).expect("the unit");
    let unit = std::fs::read_to_string(unit_path).unwrap();
    for line in [
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ReadWritePaths=/var/log/mfagate",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "LimitNOFILE=1048576",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} not in {unit_path}");
    }

    // systemd's own parser takes the unit (it needs no running systemd).
    let verify = Command::new("systemd-analyze").args(["verify", "--man=no", unit_path]).output().unwrap();
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // The service user owns the log folder; the config is root's, readable by that user only.
    let (uid, gid) = (id("-u"), id("-g"));
    assert_eq!(unit_values(&unit, "User"), ["mfagate"]);
    let log_dir = std::fs::metadata("/var/log/mfagate").unwrap();
    assert_eq!((log_dir.uid(), log_dir.gid(), log_dir.permissions().mode() & 0o7777), (uid, gid, 0o750));
    let conf = std::fs::metadata("/etc/mfagate/mfagate.toml").unwrap();
    assert_eq!((conf.uid(), conf.gid(), conf.permissions().mode() & 0o7777), (0, gid, 0o640));

    let out = Command::new("/usr/bin/mfagate")
        .args(["check-config", "/etc/mfagate/mfagate.toml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let config = mfagate::Config::load(Path::new("/etc/mfagate/mfagate.toml")).unwrap();
    let admin = config.admin.unwrap();
    for addr in [config.listen.addr, admin] {
        assert!(std::net::TcpListener::bind(addr).is_ok(), "{addr} is taken: stop what listens there");
    }

    // Start it as ExecStart says, as User= and Group=, without new privileges.
    let exec = unit_values(&unit, "ExecStart");
    assert_eq!(exec, ["/usr/bin/mfagate run --config /etc/mfagate/mfagate.toml"]);
    let group = unit_values(&unit, "Group");
    // Not binary::run: its addr= parsing is for the test configs; here the config names the ports.
    let child = Command::new("setpriv")
        .arg(format!("--reuid={}", unit_values(&unit, "User")[0]))
        .arg(format!("--regid={}", group[0]))
        .args(["--init-groups", "--no-new-privs", "--"])
        .args(exec[0].split_whitespace())
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut gateway = Gateway(child);
    let lines = lines_of(gateway.0.stderr.take().unwrap());
    // Text or JSON, the line names the event.
    while !lines
        .recv_timeout(Duration::from_secs(30))
        .expect("the gateway starts")
        .contains("Gateway listening")
    {}
    assert_eq!(raw(admin, &get("/healthz", None, "")).await, (200, "ok\n".to_owned()));
    // The shipped config forwards nothing; the refusal is recorded in the service user's log.
    assert_eq!(raw(config.listen.addr, &get("/v1/customers", None, "")).await.0, 404);
    assert!(Command::new("kill").args(["-TERM", &gateway.0.id().to_string()]).status().unwrap().success());
    assert!(gateway.0.wait().unwrap().success());
    let log = std::fs::metadata(&config.decision_log.path).unwrap();
    assert_eq!(log.uid(), uid, "written by the service user");
    let records = crate::support::read_log(&config.decision_log.path);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!((&records[0]["status"], &records[0]["reason"]), (&404.into(), &"no_route".into()));

    drop(installed);
    let status = Command::new("dpkg-query").args(["-W", "-f=${Status}", "mfagate"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&status.stdout).contains("ok installed"), "still installed after purge");
    for gone in ["/usr/bin/mfagate", "/etc/mfagate", "/var/log/mfagate", unit_path] {
        assert!(!Path::new(gone).exists(), "{gone} survives the purge");
    }
}
