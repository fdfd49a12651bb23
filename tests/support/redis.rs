//! A real `redis-server` (Debian's package, installed by `.ci/deps`) on a free loopback port, as
//! a child process the test stops: no persistence, its own folder.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    /// Also listening with TLS here (`certs/server.pem`), if started so.
    pub tls_port: Option<u16>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server on a free port and waits (at most 10 s) until it answers PING.
    pub fn start() -> RedisServer {
        RedisServer::start_on(false)
    }

    /// Also listening for `rediss://` on another port, with `certs/server.pem` (localhost and
    /// 127.0.0.1, signed by `certs/ca.pem`).
    pub fn start_tls() -> RedisServer {
        RedisServer::start_on(true)
    }

    fn start_on(tls: bool) -> RedisServer {
        // Redis takes no port 0: ask the kernel for a free one, then let it go. Another process
        // could take it between the two; a few tries make that harmless.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let tls_port =
                tls.then(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
            let mut server = RedisServer { child: None, port, tls_port, dir: tempfile::tempdir().unwrap() };
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start (is Debian's redis-server installed? .ci/deps installs it)");
    }

    fn spawn(&mut self) -> bool {
        let certs = crate::support::certs().canonicalize().unwrap();
        let tls: Vec<String> = match self.tls_port {
            None => vec![],
            Some(port) => [
                ("--tls-port", port.to_string()),
                ("--tls-cert-file", certs.join("server.pem").display().to_string()),
                ("--tls-key-file", certs.join("server.key").display().to_string()),
                ("--tls-ca-cert-file", certs.join("ca.pem").display().to_string()),
                ("--tls-auth-clients", "no".to_owned()),
            ]
            .into_iter()
            .flat_map(|(k, v)| [k.to_owned(), v])
            .collect(),
        };
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--dir", &self.dir.path().display().to_string(), "--protected-mode", "no"])
            .args(tls)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's package; .ci/deps installs it)");
        self.child = Some(child);
        let bound = Instant::now() + Duration::from_secs(10);
        while Instant::now() < bound {
            if self.command(&["PING"]).as_deref() == Some("+PONG") {
                return true;
            }
            if let Some(child) = &mut self.child
                && child.try_wait().ok().flatten().is_some()
            {
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `rediss://localhost:…/0`, when started with [`RedisServer::start_tls`].
    pub fn tls_url(&self) -> String {
        format!("rediss://localhost:{}/0", self.tls_port.expect("started with start_tls"))
    }

    /// One command, its first reply line (`+PONG`, `:3`, `$5` …), or `None` if unreachable.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(out.as_bytes()).ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).ok()?;
        Some(line.trim_end().to_owned())
    }

    /// The keys under `pattern`.
    pub fn key_count(&self, pattern: &str) -> usize {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let cmd = format!("*2\r\n$4\r\nKEYS\r\n${}\r\n{pattern}\r\n", pattern.len());
        stream.write_all(cmd.as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        line.trim_end().trim_start_matches('*').parse().unwrap()
    }

    /// Kills the server (all it held is lost: no persistence).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        assert!(self.spawn(), "redis-server did not come back on port {}", self.port);
    }

    /// Freezes the process (SIGSTOP): connections stay open and nothing answers.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, which: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        assert!(Command::new("kill").args([&format!("-{which}"), &pid]).status().unwrap().success());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.thaw();
        }
        self.stop();
    }
}
