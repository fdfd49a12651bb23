//! Reloading the configuration in place, on SIGHUP and when the file changes. A reload runs what
//! `check-config` runs (the same [`Config::load`]: parse, checks, referenced files), then builds
//! the next [`State`] generation (certificates, session keys); only if all of it succeeds is the
//! generation swapped in. A refused reload logs each error and leaves the running one serving.
//! A request takes the generation once, when it starts, and keeps it to its end.

mod fixed;
mod watch;

use crate::config::{Config, ConfigError};
use crate::state::State;
use crate::verify::keys::IssuerKeys;
use crate::verify::saml::idp_certs::IdpCertificates;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The generation in service.
pub struct Current {
    state: RwLock<Arc<State>>,
}

impl Current {
    /// Serving `state`.
    pub fn new(state: Arc<State>) -> Current {
        Current { state: RwLock::new(state) }
    }

    /// The generation in service now.
    pub fn load(&self) -> Arc<State> {
        match self.state.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store(&self, next: Arc<State>) {
        let replaced = match self.state.write() {
            Ok(mut guard) => std::mem::replace(&mut *guard, next),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), next),
        };
        replaced.retire();
    }
}

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP (`systemctl reload`).
    Signal,
    /// The configuration file changed.
    File,
}

/// How `serve` reloads: the file to read again, whether to watch it, and where triggers arrive
/// (the sender is kept for the watcher; `main` sends [`Trigger::Signal`] on SIGHUP).
pub struct Reloading {
    /// The configuration file.
    pub path: PathBuf,
    /// Watch the file for changes.
    pub watch: bool,
    /// The trigger channel, from [`triggers`].
    pub triggers: (mpsc::Sender<Trigger>, mpsc::Receiver<Trigger>),
}

/// A trigger channel. Triggers that arrive while one reload waits are folded into it.
pub fn triggers() -> (mpsc::Sender<Trigger>, mpsc::Receiver<Trigger>) {
    mpsc::channel(8)
}

/// File events come in bursts (an editor's write and rename, a ConfigMap swap): the file is read
/// once they have been quiet this long...
const QUIET: Duration = Duration::from_millis(200);
/// ...or this long after the first, whichever comes first.
const MOST: Duration = Duration::from_secs(2);

/// The refresh task of each issuer key set and each fetched SAML metadata in service.
#[derive(Default)]
pub struct KeyTasks {
    keys: Tasks<IssuerKeys>,
    saml: Tasks<IdpCertificates>,
}

impl KeyTasks {
    /// Runs a refresh task for each of `state`'s key sets and metadata URLs: those already
    /// running go on (with what they fetched), removed ones stop, new ones start.
    pub fn sync(&mut self, state: &crate::state::State) {
        self.keys.sync(state.verifier.keys().cloned().collect(), |k| tokio::spawn(k.run()));
        let fetched = state.saml.certificates().filter(|c| c.is_fetched()).cloned().collect();
        self.saml.sync(fetched, |c| tokio::spawn(c.run()));
    }
}

/// One refresh task per source, by identity.
struct Tasks<T> {
    running: Vec<(Arc<T>, JoinHandle<()>)>,
}

impl<T> Default for Tasks<T> {
    fn default() -> Self {
        Tasks { running: Vec::new() }
    }
}

impl<T> Tasks<T> {
    fn sync(&mut self, current: Vec<Arc<T>>, start: impl Fn(Arc<T>) -> JoinHandle<()>) {
        self.running.retain(|(source, task)| {
            let kept = current.iter().any(|k| Arc::ptr_eq(k, source));
            if !kept {
                task.abort();
            }
            kept
        });
        for source in current {
            if !self.running.iter().any(|(running, _)| Arc::ptr_eq(running, &source)) {
                self.running.push((source.clone(), start(source)));
            }
        }
    }
}

impl<T> Drop for Tasks<T> {
    fn drop(&mut self) {
        for (_, task) in &self.running {
            task.abort();
        }
    }
}

/// Reloads on every trigger until the channel closes or the task is aborted (at shutdown).
/// The watch is set up and the files read before this returns, not when the task first runs:
/// a change made once the gateway reports ready is never missed.
pub fn run(
    current: Arc<Current>,
    keys: KeyTasks,
    reloading: Reloading,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let Reloading { path, watch, triggers: (sender, triggers) } = reloading;
    let files = watched(&path, &current.load().config);
    let watcher = if watch { watch::start(&files, sender.clone()) } else { None };
    let last = contents(&files);
    serve_triggers(current, keys, Watching { path, watch, sender, triggers, files, watcher, last })
}

/// The reload task's state: the watch, the watched files and what they held at the last reload.
struct Watching {
    path: PathBuf,
    watch: bool,
    sender: mpsc::Sender<Trigger>,
    triggers: mpsc::Receiver<Trigger>,
    files: Vec<PathBuf>,
    watcher: Option<notify::RecommendedWatcher>,
    last: Vec<Option<Vec<u8>>>,
}

async fn serve_triggers(current: Arc<Current>, mut keys: KeyTasks, w: Watching) {
    let Watching { path, watch, sender, mut triggers, mut files, mut watcher, mut last } = w;
    while let Some(mut trigger) = triggers.recv().await {
        if trigger == Trigger::File {
            let until = tokio::time::Instant::now() + MOST;
            loop {
                match tokio::time::timeout_at(until.min(tokio::time::Instant::now() + QUIET), triggers.recv())
                    .await
                {
                    Ok(Some(Trigger::File)) => continue,
                    Ok(Some(Trigger::Signal)) => {
                        trigger = Trigger::Signal;
                        break;
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
        if current.load().draining.load(Ordering::Acquire) {
            tracing::info!(?trigger, "Reload ignored: shutting down");
            continue;
        }
        // An event that left the bytes as they were (a touch, a save without change) is no
        // reload; SIGHUP always is.
        let now = contents(&files);
        if trigger == Trigger::File && now == last {
            tracing::debug!("Configuration file event without a change; not reloaded");
            continue;
        }
        last = now;
        if reload(&current, &mut keys, &path, trigger).await.is_ok() {
            // The certificate may have moved: watch where the configuration now points.
            let next = watched(&path, &current.load().config);
            if watch && next != files {
                drop(watcher.take());
                watcher = watch::start(&next, sender.clone());
                last = contents(&next);
            }
            files = next;
        }
    }
}

/// The files whose change reloads: the configuration and the listener's certificate and key
/// (a Kubernetes Secret or cert-manager renews them in place).
fn watched(path: &Path, config: &Config) -> Vec<PathBuf> {
    let mut files = vec![path.to_owned()];
    if let Some((cert, key)) = &config.listen.tls {
        files.extend([cert.clone(), key.clone()]);
    }
    files
}

/// What the watched files hold now (`None` for one that cannot be read).
fn contents(files: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    files.iter().map(|f| std::fs::read(f).ok()).collect()
}

/// Why a reload was refused (each reason was logged).
#[derive(Debug, thiserror::Error)]
#[error("configuration reload refused")]
pub struct Refused;

/// Loads `path`, checks it as `check-config` does, builds the next generation and swaps it in.
/// Returns the generation now in service.
pub async fn reload(
    current: &Current,
    keys: &mut KeyTasks,
    path: &Path,
    trigger: Trigger,
) -> Result<u64, Refused> {
    let running = current.load();
    let (file, previous) = (path.to_owned(), running.clone());
    // Reading and checking touch files (certificates, metadata, key files): off the workers.
    let built = tokio::task::spawn_blocking(move || build(&previous, &file)).await;
    let now = running.clock.now_millis() / 1000;
    let next = match built {
        Ok(Ok(next)) => next,
        Ok(Err(())) => {
            running.reloads.failed(now);
            return Err(Refused);
        }
        Err(e) => {
            tracing::error!(problem = %e, "Configuration reload refused");
            running.reloads.failed(now);
            return Err(Refused);
        }
    };
    // SIGTERM during the load: the drain goes on with the generation it has.
    if running.draining.load(Ordering::Acquire) {
        tracing::info!(?trigger, "Reload dropped: shutting down");
        return Err(Refused);
    }
    keys.sync(&next);
    for added in next.verifier.keys().filter(|k| !next.awaited.iter().any(|a| Arc::ptr_eq(a, k))) {
        if !added.is_loaded() {
            tracing::info!(
                issuer = added.name(),
                "Issuer keys loading; readiness does not wait for an issuer added by a reload"
            );
        }
    }
    let generation = next.generation;
    let (routes, issuers) = (next.config.routes.len(), next.config.issuers.len());
    current.store(Arc::new(next));
    running.reloads.succeeded(generation, now);
    tracing::info!(generation, ?trigger, routes, issuers, "Configuration reloaded");
    Ok(generation)
}

/// The next generation from `path`, or `Err` with every problem logged.
fn build(running: &State, path: &Path) -> Result<State, ()> {
    let mut config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            for warning in e.warnings() {
                tracing::warn!(warning = %warning, "Configuration reload: warning");
            }
            for problem in e.problems() {
                let problem =
                    if matches!(e, ConfigError::Parse(_)) { without_values(&problem) } else { problem };
                tracing::error!(file = %path.display(), problem = %problem, "Configuration reload refused");
            }
            return Err(());
        }
    };
    for warning in &config.warnings {
        tracing::warn!(warning = %warning, "Configuration reload: warning");
    }
    for field in fixed::keep_running(&running.config, &mut config) {
        tracing::warn!(
            field,
            "Configuration reload: this setting changes only on restart; the running value is kept"
        );
    }
    // What will be in force, running values kept: the private plane must still ask for a token
    // or a client certificate.
    if let Some(why) = config.private_admin.as_ref().and_then(|p| p.unauthenticated()) {
        tracing::error!(file = %path.display(), problem = %format!("admin.private_addr: {why}"), "Configuration reload refused");
        return Err(());
    }
    running.next(config).map_err(|e| {
        tracing::error!(file = %path.display(), problem = %e, "Configuration reload refused");
    })
}

/// A TOML parse error without the lines of the file it quotes or the values it names: either
/// could be a secret written in the wrong place. The line and column stay.
fn without_values(message: &str) -> String {
    let kept: Vec<&str> = message
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !(l.starts_with('|') || l.split_once('|').is_some_and(|(n, _)| n.trim().parse::<u64>().is_ok()))
        })
        .collect();
    let mut out = String::new();
    let mut quoted = false;
    for c in kept.join("; ").chars() {
        match c {
            '"' if !quoted => {
                quoted = true;
                out.push_str("\"…");
            }
            '"' => {
                quoted = false;
                out.push('"');
            }
            _ if quoted => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::jwt::Verifier;

    #[tokio::test]
    async fn kept_key_sets_keep_their_task_removed_ones_stop_new_ones_start() {
        let issuer = |n: &str| {
            format!(
                "[[issuer]]\nname = \"{n}\"\nissuer = \"https://{n}.test/\"\njwks_uri = \"https://{n}.test/keys\"\naudiences = [\"api://x\"]\n"
            )
        };
        let text =
            format!("[decision_log]\npath = \"d.jsonl\"\n{}{}{}", issuer("a"), issuer("b"), issuer("c"));
        let cfg = Config::from_toml(&text, Path::new(".")).unwrap();
        let client = crate::outbound::client(None, Duration::from_secs(1)).unwrap();
        let clock: crate::clock::SharedClock = crate::clock::ManualClock::at(0);
        let keys = |i: usize| IssuerKeys::new(&cfg.issuers[i], client.clone(), clock.clone());
        let (a, b) = (keys(0), keys(1));
        let verifier = |sets: Vec<(usize, Arc<IssuerKeys>)>| {
            Verifier::new(
                sets.into_iter().map(|(i, k)| (cfg.issuers[i].clone(), k)).collect(),
                10,
                clock.clone(),
            )
        };
        let mut tasks = Tasks::<IssuerKeys>::default();
        let run = |k: Arc<IssuerKeys>| tokio::spawn(k.run());
        tasks.sync(verifier(vec![(0, a.clone()), (1, b.clone())]).keys().cloned().collect(), run);
        let (kept, removed) = (tasks.running[0].1.abort_handle(), tasks.running[1].1.abort_handle());
        tasks.sync(verifier(vec![(0, a.clone()), (2, keys(2))]).keys().cloned().collect(), run);
        assert_eq!(tasks.running.len(), 2);
        assert!(Arc::ptr_eq(&tasks.running[0].0, &a) && tasks.running[0].1.id() == kept.id());
        for _ in 0..100 {
            if removed.is_finished() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(removed.is_finished() && !kept.is_finished());
        drop(tasks);
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(kept.is_finished(), "dropping the tasks stops them");
    }

    #[test]
    fn a_parse_error_is_logged_without_the_quoted_line_or_values() {
        let text = "[session]\nkeys = \"c2VjcmV0LXNlc3Npb24ta2V5LTAxMjM0NTY3ODkwMTIz\"\n";
        let Err(e) = Config::from_toml(text, Path::new(".")) else { panic!("parsed") };
        let shown = e.to_string();
        assert!(shown.contains("c2VjcmV0"), "the premise: toml quotes the value: {shown}");
        let logged = without_values(&shown);
        assert!(!logged.contains("c2VjcmV0"), "{logged}");
        assert!(logged.contains("line 2"), "{logged}");
    }
}
