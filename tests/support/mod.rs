//! The test harness: starts the servers, sends requests, reads the decision log.
#![allow(dead_code)]

pub mod browser;
pub mod chromium;
pub mod redis;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mfagate::clock::ManualClock;
use mfagate::dev::echo::Echo;
use mfagate::dev::idp::{DEV_TENANT, DevIdp, DevKey, TokenRequest};
use mfagate::{Config, Options, serve_with};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The fixed test start time (2026-01-01T00:00:00Z), so nothing depends on the real clock.
pub const T0: u64 = 1_767_225_600;

pub fn certs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs")
}

pub fn dev_keys() -> Vec<DevKey> {
    mfagate::dev::idp::load_dev_keys(&certs()).expect("dev keys")
}

/// The default test configuration. `{idp}`, `{echo}` and `{dir}` are filled in.
pub const CONFIG: &str = r#"
[listen]
addr = "127.0.0.1:0"
shutdown_delay_secs = 0
shutdown_grace_secs = 5

[decision_log]
path = "{dir}/decisions.jsonl"

[[issuer]]
name = "dev"
issuer = "{idp}/{tenantid}/"
jwks_uri = "{idp}/keys"
audiences = ["api://mfagate-demo", "00000000-0000-4000-8000-0000000000aa"]
algorithms = ["RS256", "ES256"]
tenants = ["11111111-2222-4333-8444-555555555555"]
leeway_secs = 60

[[issuer]]
name = "dev-v2"
issuer = "{idp}/{tenantid}/v2.0"
jwks_uri = "{idp}/keys"
audiences = ["api://mfagate-demo"]
algorithms = ["RS256"]
tenants = ["*"]
mfa_acrs = ["c1"]

[saml]
entity_id = "https://gateway.contoso.test/saml"

[[saml_idp]]
name = "adfs"
entity_id = "https://idp.contoso.test/adfs/services/trust"
certificates = ["{certs}/saml-idp.pem"]

[[route]]
name = "api"
path_prefix = "/v1/"
upstream = "{echo}"

[[route]]
name = "admin"
path_prefix = "/admin/"
upstream = "{echo}"
app_only = "deny"
challenge = "rfc9470"
acr_values = "urn:mfa"

[[route]]
name = "claims"
path_prefix = "/claims/"
upstream = "{echo}"
challenge = "entra-claims"
auth_context = "c1"

[[route]]
name = "report"
path_prefix = "/report/"
upstream = "{echo}"
mode = "report-only"

[[route]]
name = "public"
path_prefix = "/public/"
upstream = "{echo}"
auth = "none"

[[route]]
name = "optional"
path_prefix = "/optional/"
upstream = "{echo}"
mfa = "optional"

[[route]]
name = "strip"
path_prefix = "/strip/"
upstream = "{echo}"
strip_authorization = true

[[route]]
name = "token"
path_prefix = "/oauth2/"
upstream = "{echo}"
auth = "none"
saml_bearer_grant = true
grant_audience = "urn:federation:MicrosoftOnline"
timeout_secs = 1

[[route]]
name = "slow"
path_prefix = "/slow/"
upstream = "{echo}"
timeout_secs = 1

[[route]]
name = "down"
path_prefix = "/down/"
upstream = "http://127.0.0.1:1"
"#;

/// The private admin plane's bearer token in the harness.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// The `[admin]` section the harness adds (its listeners are bound by the harness itself).
const ADMIN_SECTION: &str = "[admin]
addr = \"127.0.0.1:0\"
private_addr = \"127.0.0.1:0\"
token_file = \"admin-token\"

[decision_log]";

pub struct Gateway {
    pub idp: DevIdp,
    pub echo: Echo,
    pub saml_idp: mfagate::dev::saml_idp::DevSamlIdp,
    pub clock: Arc<ManualClock>,
    pub addr: SocketAddr,
    /// How a browser reaches the gateway: `http(s)://<public host>:<port>` (also `{gw}`).
    pub base: String,
    pub admin: SocketAddr,
    /// The private admin listener (report, exports, `/v1/*`), token [`ADMIN_TOKEN`].
    pub private: SocketAddr,
    pub dir: tempfile::TempDir,
    pub client: Client<HttpConnector, Full<Bytes>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), mfagate::StartError>>>,
    /// With [`Builder::reloadable`]: the configuration file and where reload triggers go.
    pub reload: Option<(PathBuf, tokio::sync::mpsc::Sender<mfagate::reload::Trigger>)>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn www(&self) -> &str {
        self.headers.get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The headers the echo upstream saw.
    pub fn upstream_header(&self, name: &str) -> Option<String> {
        self.json()["headers"][name].as_str().map(str::to_owned)
    }
}

pub struct Builder {
    config: String,
    idp_up: bool,
    wait_ready: bool,
    edit: Vec<(String, String)>,
    published: Option<Vec<&'static str>>,
    idp_setup: Vec<fn(&DevIdp)>,
    scheme: &'static str,
    host: &'static str,
    reloadable: bool,
    /// `{gw}`, when not this instance's own address (a fleet behind one name).
    public_base: Option<String>,
    /// Another instance whose identity providers, upstream and clock this one shares.
    beside: Option<(DevIdp, Echo, mfagate::dev::saml_idp::DevSamlIdp, Arc<ManualClock>)>,
}

pub fn gateway() -> Builder {
    Builder {
        config: CONFIG.to_owned(),
        idp_up: true,
        wait_ready: true,
        edit: Vec::new(),
        published: None,
        idp_setup: Vec::new(),
        scheme: "http",
        host: "127.0.0.1",
        reloadable: false,
        beside: None,
        public_base: None,
    }
}

impl Builder {
    /// Replaces text in the configuration before the placeholders are filled.
    pub fn replace(mut self, from: &str, to: &str) -> Self {
        self.edit.push((from.to_owned(), to.to_owned()));
        self
    }

    /// Adds a line to `[listen]`.
    pub fn listen(self, line: &str) -> Self {
        self.replace("shutdown_grace_secs = 5", &format!("shutdown_grace_secs = 5\n{line}"))
    }

    /// Appends TOML to the configuration.
    pub fn append(mut self, toml: &str) -> Self {
        self.config.push_str(toml);
        self
    }

    /// Terminates TLS with `certs/server.pem` (localhost, signed by `certs/ca.pem`).
    pub fn tls(mut self) -> Self {
        let certs = certs();
        let tls = format!(
            "shutdown_grace_secs = 5\ntls_cert = \"{}\"\ntls_key = \"{}\"",
            certs.join("server.pem").display(),
            certs.join("server.key").display()
        );
        self.scheme = "https";
        self.replace("shutdown_grace_secs = 5", &tls)
    }

    /// Browsers reach the gateway by this name (`{gw}`, `Gateway::base`); it still listens on
    /// 127.0.0.1. `localhost` puts the gateway on another site than the IdPs (127.0.0.1), as a
    /// real deployment is: SameSite then matters.
    pub fn public_host(mut self, host: &'static str) -> Self {
        self.host = host;
        self
    }

    /// The SAML IdP `adfs` ready for browser sign-in: the gateway's ACS, the dev IdP's SSO URL.
    pub fn saml_sign_in(self) -> Self {
        self.replace(
            "entity_id = \"https://gateway.contoso.test/saml\"",
            "entity_id = \"https://gateway.contoso.test/saml\"\nacs_url = \"{gw}/saml/acs\"",
        )
        .replace(
            "certificates = [\"{certs}/saml-idp.pem\"]",
            "certificates = [\"{certs}/saml-idp.pem\"]\nsso_url = \"{saml_sso}\"",
        )
    }

    /// The gateway as a confidential OIDC client of the issuer `dev` (the dev IdP's endpoints).
    pub fn oidc_client(self) -> Self {
        self.replace(
            "leeway_secs = 60\n",
            "leeway_secs = 60\nclient_id = \"mfagate-web\"\nclient_secret = \"dev-secret\"\nauthorization_endpoint = \"{idp}/authorize\"\ntoken_endpoint = \"{idp}/token\"\n",
        )
    }

    /// The IdP publishes only these keys at start.
    pub fn published(mut self, kids: &[&'static str]) -> Self {
        self.published = Some(kids.to_vec());
        self
    }

    /// Sets the dev IdP up before the gateway first reads its discovery and keys.
    pub fn idp_setup(mut self, setup: fn(&DevIdp)) -> Self {
        self.idp_setup.push(setup);
        self
    }

    pub fn idp_down(mut self) -> Self {
        self.idp_up = false;
        self.wait_ready = false;
        self
    }

    /// The configuration is written to `mfagate.toml` in the test folder and reloaded from it on
    /// [`Gateway::reload`] (no file watch).
    pub fn reloadable(mut self) -> Self {
        self.reloadable = true;
        self
    }

    pub fn no_wait(mut self) -> Self {
        self.wait_ready = false;
        self
    }

    /// Another instance of the same deployment: `other`'s identity providers, upstream and clock
    /// (its own listeners, folder and decision log).
    pub fn beside(mut self, other: &Gateway) -> Self {
        self.beside =
            Some((other.idp.clone(), other.echo.clone(), other.saml_idp.clone(), other.clock.clone()));
        self
    }

    /// Browsers reach this instance as `base` (`{gw}`): several instances behind one name, as
    /// behind a load balancer. The test sends to each instance's own address.
    pub fn public_base(mut self, base: &str) -> Self {
        self.public_base = Some(base.to_owned());
        self
    }

    /// `[cluster]` on `redis`, with these extra lines.
    pub fn cluster(self, redis: &redis::RedisServer, extra: &str) -> Self {
        self.append(&format!("\n[cluster]\nredis = \"{}\"\nkey_prefix = \"test:\"\n{extra}\n", redis.url()))
    }

    pub async fn start(mut self) -> Gateway {
        let (idp, echo, saml_idp, clock) = match self.beside.take() {
            Some(shared) => shared,
            None => self.servers().await,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut text = self.config.clone();
        for (from, to) in &self.edit {
            assert!(text.contains(from.as_str()), "config has no {from:?}");
            text = text.replace(from.as_str(), to);
        }
        let base = self
            .public_base
            .clone()
            .unwrap_or_else(|| format!("{}://{}:{}", self.scheme, self.host, addr.port()));
        let text = render_config(&text, &idp, &echo, dir.path())
            .replace("{gw}", &base)
            .replace("{saml_sso}", &saml_idp.sso_url());
        // The private admin plane, with a token, unless the test configures `[admin]` itself.
        std::fs::write(dir.path().join("admin-token"), ADMIN_TOKEN).unwrap();
        let text =
            if text.contains("[admin]") { text } else { text.replacen("[decision_log]", ADMIN_SECTION, 1) };
        let config = Config::from_toml(&text, dir.path()).unwrap_or_else(|e| panic!("config: {e}"));
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let private = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let private_addr = private.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let (reloading, reload) = if self.reloadable {
            let path = dir.path().join("mfagate.toml");
            std::fs::write(&path, &text).unwrap();
            let triggers = mfagate::reload::triggers();
            let sender = triggers.0.clone();
            (
                Some(mfagate::reload::Reloading { path: path.clone(), watch: false, triggers }),
                Some((path, sender)),
            )
        } else {
            (None, None)
        };
        let options = Options {
            clock: clock.clone(),
            admin: Some(admin),
            private_admin: Some(private),
            reload: reloading,
        };
        let task = tokio::spawn(serve_with(listener, config, options, async move {
            let _ = rx.await;
        }));
        let client = Client::builder(TokioExecutor::new()).build_http();
        let gw = Gateway {
            idp,
            echo,
            saml_idp,
            clock,
            addr,
            base,
            admin: admin_addr,
            private: private_addr,
            dir,
            client,
            shutdown: Some(tx),
            task: Some(task),
            reload,
        };
        if self.wait_ready {
            gw.wait_ready().await;
        }
        gw
    }
}

impl Builder {
    /// The identity providers and the upstream, on a fresh clock.
    async fn servers(&self) -> (DevIdp, Echo, mfagate::dev::saml_idp::DevSamlIdp, Arc<ManualClock>) {
        let clock = ManualClock::at(T0);
        let idp = DevIdp::start(TcpListener::bind("127.0.0.1:0").await.unwrap(), dev_keys(), clock.clone())
            .unwrap();
        idp.set_available(self.idp_up);
        if let Some(kids) = &self.published {
            idp.publish(kids);
        }
        for setup in &self.idp_setup {
            setup(&idp);
        }
        let echo = Echo::start(TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
        let saml_signer = crate::saml::signer("saml-idp");
        let saml_idp = mfagate::dev::saml_idp::DevSamlIdp::start(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            saml_signer,
            crate::saml::IDP,
            clock.clone(),
        )
        .unwrap();
        (idp, echo, saml_idp, clock)
    }
}

impl Gateway {
    /// Rewrites the configuration file with `edit`, sends a SIGHUP-like trigger and waits (at
    /// most 10 s) until the reload is done: `true` if it was applied, `false` if refused.
    pub async fn reload(&self, edit: impl FnOnce(String) -> String) -> bool {
        let (path, sender) = self.reload.as_ref().expect("built with reloadable()");
        let text = edit(std::fs::read_to_string(path).unwrap());
        std::fs::write(path, text).unwrap();
        let count = |body: &str| -> f64 {
            body.lines()
                .filter(|l| l.starts_with("mfagate_config_reloads_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        let before = count(&self.admin_get("/metrics").await.body);
        sender.send(mfagate::reload::Trigger::Signal).await.unwrap();
        let bound = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let body = self.admin_get("/metrics").await.body;
            if count(&body) > before {
                return body.contains("mfagate_config_last_reload_success 1");
            }
            assert!(std::time::Instant::now() < bound, "the reload never finished");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Waits until /readyz answers 200 (keys loaded); fails after 10 s.
    pub async fn wait_ready(&self) {
        for _ in 0..1000 {
            if self.admin_get("/readyz").await.status == StatusCode::OK {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("gateway not ready");
    }

    pub async fn send(&self, req: Request<Full<Bytes>>) -> Reply {
        let rsp = self.client.request(req).await.expect("request");
        let (parts, body) = rsp.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub fn request(&self, path: &str, token: Option<&str>) -> http::request::Builder {
        let mut b = Request::get(format!("http://{}{path}", self.addr));
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(self.request(path, token).body(Full::default()).unwrap()).await
    }

    /// GET on the admin plane: health, readiness and metrics on the public listener, the rest on
    /// the private one with the token.
    pub async fn admin_get(&self, path: &str) -> Reply {
        let public = ["/healthz", "/readyz", "/metrics"].iter().any(|p| path.starts_with(p));
        let req = if public {
            Request::get(format!("http://{}{path}", self.admin))
        } else {
            Request::get(format!("http://{}{path}", self.private))
                .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        };
        self.send(req.body(Full::default()).unwrap()).await
    }

    /// A token with the default claims changed by `edit`.
    pub fn token(&self, edit: impl FnOnce(&mut Value)) -> String {
        self.token_for(&TokenRequest::default(), edit)
    }

    pub fn token_for(&self, req: &TokenRequest, edit: impl FnOnce(&mut Value)) -> String {
        let mut claims = self.idp.claims(req);
        edit(&mut claims);
        self.idp.sign(&claims).unwrap()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("decisions.jsonl")
    }

    /// Sends the shutdown signal without waiting for the drain to end.
    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Stops the gateway (graceful shutdown) and returns the decision log.
    pub async fn stop(&mut self) -> Vec<Value> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("serve");
        }
        read_log(&self.log_path())
    }
}

/// Fills a configuration's `{idp}`, `{echo}`, `{dir}` and `{certs}` placeholders.
pub fn render_config(text: &str, idp: &DevIdp, echo: &Echo, dir: &Path) -> String {
    text.replace("{idp}", idp.base_url())
        .replace("{echo}", &echo.url())
        .replace("{dir}", &dir.display().to_string())
        .replace("{certs}", &certs().display().to_string())
}

pub fn read_log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The decision log once it has a line (a record written after the response, e.g. a 499).
pub async fn wait_for_log(path: &Path) -> Vec<Value> {
    loop {
        let log = read_log(path);
        if !log.is_empty() {
            return log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The lines a child process writes, as they come (read on a thread; receive with a timeout).
pub fn lines_of(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

pub fn tenant() -> &'static str {
    DEV_TENANT
}

/// Polls every future together (all requests in flight at once) and returns their outputs.
pub async fn join_all<F: std::future::Future + Unpin>(futures: Vec<F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut futures: Vec<Option<F>> = futures.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, result) in futures.iter_mut().zip(results.iter_mut()) {
            if let Some(f) = slot {
                match std::pin::Pin::new(f).poll(cx) {
                    Poll::Ready(v) => {
                        *result = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    results.into_iter().map(|r| r.expect("every future finished")).collect()
}

/// Polls (at most 10 s) until `check` holds: for what happens off the request (a flush, a
/// reconnect), never to wait for time.
pub async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    for _ in 0..1000 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

/// One series' value on `g`'s /metrics, labels included in `series` (0 when absent).
pub async fn sample(g: &Gateway, series: &str) -> f64 {
    let body = g.admin_get("/metrics").await.body;
    body.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0.0)
}
