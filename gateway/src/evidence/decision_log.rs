//! The decision log: one JSON line per request, never a token.
//!
//! Records go through a bounded queue to a writer thread: a full queue makes requests wait
//! (backpressure), it never drops a line. A request whose client goes away still gets its line,
//! written from the guard's `Drop`. A failed write marks the log unhealthy, which by default
//! refuses requests with 503 and turns /readyz red.

use crate::config::DecisionLogConfig;
use crate::evidence::record::DecisionRecord;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::mpsc;

/// How long the writer lets records gather after writing a batch.
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);

enum Msg {
    Record(Box<DecisionRecord>),
    Close,
}

/// Room for one record in the queue.
pub struct Slot<'a>(mpsc::Permit<'a, Msg>);

impl Slot<'_> {
    /// Queues the record; never waits.
    pub fn send(self, rec: DecisionRecord) {
        self.0.send(Msg::Record(Box::new(rec)));
    }
}

/// The sending side, cheap to clone.
#[derive(Clone)]
pub struct DecisionLog {
    tx: mpsc::Sender<Msg>,
    healthy: Arc<AtomicBool>,
    /// Lines written.
    pub written: Arc<AtomicU64>,
    /// Writes (a batch and its flush) that failed.
    pub write_errors: Arc<AtomicU64>,
}

/// Waits for the writer to flush and stop.
pub struct LogWriter {
    tx: mpsc::Sender<Msg>,
    thread: tokio::task::JoinHandle<()>,
}

impl DecisionLog {
    /// Opens (appends to) the log file, or takes standard output, and starts the writer.
    pub fn open(
        cfg: &DecisionLogConfig,
        live: Arc<crate::evidence::live::Live>,
    ) -> std::io::Result<(DecisionLog, LogWriter)> {
        let file = if cfg.to_stdout() {
            crate::evidence::log_files::RotatingFile::stdout()
        } else {
            if let Some(dir) = cfg.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            crate::evidence::log_files::RotatingFile::open(&cfg.path, cfg.max_bytes, cfg.retention_days)?
        };
        let (tx, rx) = mpsc::channel(cfg.queue);
        let healthy = Arc::new(AtomicBool::new(true));
        let written = Arc::new(AtomicU64::new(0));
        let write_errors = Arc::new(AtomicU64::new(0));
        let (h, w, e) = (healthy.clone(), written.clone(), write_errors.clone());
        let thread = tokio::task::spawn_blocking(move || write_loop(rx, file, &h, (&w, &e), &live));
        Ok((DecisionLog { tx: tx.clone(), healthy, written, write_errors }, LogWriter { tx, thread }))
    }

    /// Records queued and not yet taken by the writer.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity().saturating_sub(self.tx.capacity())
    }

    /// The queue's size.
    pub fn queue_capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    /// Whether the last write succeeded.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Queues a record, waiting while the queue is full.
    pub async fn record(&self, rec: DecisionRecord) {
        if self.tx.send(Msg::Record(Box::new(rec))).await.is_err() {
            tracing::error!("Decision log is closed; a record was not written");
        }
    }

    /// Waits for room in the queue. The record is handed over only once there is room, so a
    /// caller cancelled while waiting (its client left) still holds it, and its guard writes it.
    pub async fn reserve(&self) -> Option<Slot<'_>> {
        self.tx.reserve().await.ok().map(Slot)
    }

    /// Queues a record from a context that cannot wait (a dropped request).
    pub fn record_detached(&self, rec: DecisionRecord) {
        match self.tx.try_send(Msg::Record(Box::new(rec))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(msg)) => {
                let tx = self.tx.clone();
                // Still never dropped: wait for room on a task of its own.
                tokio::spawn(async move {
                    let _ = tx.send(msg).await;
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("Decision log is closed; a record was not written");
            }
        }
    }
}

impl LogWriter {
    /// Writes everything queued so far, flushes, and stops the writer.
    pub async fn close(self) {
        let _ = self.tx.send(Msg::Close).await;
        drop(self.tx);
        let _ = self.thread.await;
    }
}

fn write_record(
    out: &mut crate::evidence::log_files::RotatingFile,
    rec: &DecisionRecord,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(rec).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let ts_ms = crate::evidence::report::parse_ts_ms(&rec.ts).unwrap_or(0);
    out.write_line(ts_ms, &line)
}

fn write_loop(
    mut rx: mpsc::Receiver<Msg>,
    mut out: crate::evidence::log_files::RotatingFile,
    healthy: &AtomicBool,
    (written, errors): (&AtomicU64, &AtomicU64),
    live: &crate::evidence::live::Live,
) {
    let mut closing = false;
    while !closing {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        let mut batch = vec![first];
        // Drain what is already queued so one flush serves many lines.
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(msg) => batch.push(msg),
                Err(_) => break,
            }
        }
        let mut lines = 0u64;
        let mut result = Ok(());
        for msg in batch {
            match msg {
                Msg::Record(rec) => {
                    result = result.and_then(|()| write_record(&mut out, &rec));
                    live.add(&rec);
                    lines += 1;
                }
                Msg::Close => closing = true,
            }
        }
        let result = result.and_then(|()| out.flush());
        match result {
            Ok(()) => {
                written.fetch_add(lines, Ordering::Relaxed);
                if !healthy.swap(true, Ordering::AcqRel) {
                    tracing::warn!("Decision log writable again");
                }
            }
            Err(e) => {
                errors.fetch_add(1, Ordering::Relaxed);
                if healthy.swap(false, Ordering::AcqRel) {
                    tracing::error!(error = %e, "Decision log write failed");
                }
            }
        }
        // Group commit: under load, let records gather for a moment instead of being woken for
        // each one (a futex wake and a write per request cost more than the request itself).
        // Senders never wait on this unless the queue fills; an idle log still wakes at once.
        if !closing && lines > 0 {
            std::thread::sleep(LINGER);
        }
    }
    // Late records (after Close) are drained too, so nothing queued is lost.
    while let Ok(Msg::Record(rec)) = rx.try_recv() {
        let _ = write_record(&mut out, &rec);
    }
    let _ = out.flush();
}
