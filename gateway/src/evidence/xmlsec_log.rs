//! libxmlsec1 (under samael) prints its errors on standard error, one raw line each
//! (`func=...:file=...:line=...:obj=...:subj=...:error=N:reason:message`). The operational log
//! wants them as structured events (target `xmlsec`).
//!
//! Why a pipe: samael installs no error callback and exposes none, and no maintained crate sets
//! `xmlSecErrorsSetCallback` or libxml2's generic error handler without `unsafe`, which this
//! project forbids. So `run` points file descriptor 2 at a pipe (rustix's safe `dup2`), keeps a
//! duplicate of the real standard error for the log itself, and a thread turns each line read
//! from the pipe into an event. A line not in xmlsec's format is withheld, only counted: libxml2's
//! parser errors quote the document they failed on, and that document is an assertion.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::sync::Arc;

/// The longest field kept from a line (xmlsec's are short; anything longer is cut).
const MAX_FIELD: usize = 200;

/// One xmlsec error line, parsed.
#[derive(Debug, PartialEq, Eq)]
pub struct XmlsecError<'a> {
    /// The C function that reported it.
    pub func: &'a str,
    /// Source file and line in libxmlsec1.
    pub file: &'a str,
    /// Line in `file`.
    pub line: u32,
    /// The object (transform, key, algorithm).
    pub object: &'a str,
    /// The subject (often `unknown`).
    pub subject: &'a str,
    /// xmlsec's error number.
    pub code: u32,
    /// Its text for the number (`invalid data`).
    pub reason: &'a str,
    /// The details (`data and digest do not match`).
    pub message: &'a str,
}

/// Parses `func=F:file=F:line=N:obj=O:subj=S:error=N:reason:message`, or `None` for any other line.
pub fn parse(line: &str) -> Option<XmlsecError<'_>> {
    let rest = line.trim_end().strip_prefix("func=")?;
    let (func, rest) = rest.split_once(":file=")?;
    let (file, rest) = rest.split_once(":line=")?;
    let (line_no, rest) = rest.split_once(":obj=")?;
    let (object, rest) = rest.split_once(":subj=")?;
    let (subject, rest) = rest.split_once(":error=")?;
    let (code, rest) = rest.split_once(':')?;
    let (reason, message) = rest.split_once(':').unwrap_or((rest, ""));
    Some(XmlsecError {
        func,
        file,
        line: line_no.parse().ok()?,
        object,
        subject,
        code: code.parse().ok()?,
        reason,
        message,
    })
}

/// Printable and short: a field never carries control characters into the log, nor much text.
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(MAX_FIELD).collect()
}

/// Logs one line read from the pipe.
pub fn log_line(line: &str) {
    match parse(line) {
        Some(e) => tracing::warn!(
            target: "xmlsec",
            func = %clean(e.func),
            file = %clean(e.file),
            line = e.line,
            object = %clean(e.object),
            subject = %clean(e.subject),
            code = e.code,
            reason = %clean(e.reason),
            message = %clean(e.message),
            "xmlsec error"
        ),
        None if line.trim().is_empty() => {}
        // libxml2 and others: may quote the document (an assertion), so only its size is said.
        None => tracing::warn!(
            target: "stderr",
            bytes = line.len(),
            "Standard-error output from a library withheld (it may quote a document)"
        ),
    }
}

/// Standard error routed through the pipe; dropping it points fd 2 back at the real standard
/// error and waits for the lines already written.
pub struct Capture {
    original: Arc<File>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Capture {
    /// The real standard error, for the operational log's writer.
    pub fn original(&self) -> Arc<File> {
        self.original.clone()
    }
}

/// Points fd 2 at a pipe read by a thread that logs each line (see the module comment).
#[cfg(unix)]
pub fn capture() -> std::io::Result<Capture> {
    use rustix::pipe::{PipeFlags, pipe_with};
    let original = File::from(rustix::io::fcntl_dupfd_cloexec(std::io::stderr(), 0)?);
    let (read, write) = pipe_with(PipeFlags::CLOEXEC)?;
    rustix::stdio::dup2_stderr(&write)?;
    // fd 2 is now the only write end: when it is pointed back, the reader sees the end.
    drop(write);
    let reader = std::thread::Builder::new().name("stderr-log".into()).spawn(move || {
        let mut lines = BufReader::new(File::from(read));
        let mut buf = Vec::new();
        while matches!(lines.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            log_line(&String::from_utf8_lossy(&buf));
            buf.clear();
        }
    })?;
    // The default panic hook writes to fd 2, whose lines would be withheld: panics go to the
    // log itself, written at once to the real standard error.
    std::panic::set_hook(Box::new(|info| tracing::error!(target: "panic", "{info}")));
    Ok(Capture { original: Arc::new(original), reader: Some(reader) })
}

/// Not on this platform: standard error stays as it is.
#[cfg(not(unix))]
pub fn capture() -> std::io::Result<Capture> {
    Err(std::io::ErrorKind::Unsupported.into())
}

impl Drop for Capture {
    fn drop(&mut self) {
        #[cfg(unix)]
        if rustix::stdio::dup2_stderr(&*self.original).is_ok()
            && let Some(reader) = self.reader.take()
        {
            let _ = reader.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xmlsec_lines_are_parsed_into_their_fields_and_others_are_not() {
        let line = "func=xmlSecOpenSSLEvpSignatureVerify:file=evp_signatures.c:line=453:obj=rsa-sha256:subj=unknown:error=18:data do not match:details=EVP_VerifyFinal: signature verification failed\n";
        assert_eq!(
            parse(line),
            Some(XmlsecError {
                func: "xmlSecOpenSSLEvpSignatureVerify",
                file: "evp_signatures.c",
                line: 453,
                object: "rsa-sha256",
                subject: "unknown",
                code: 18,
                reason: "data do not match",
                message: "details=EVP_VerifyFinal: signature verification failed",
            })
        );
        let digest = "func=xmlSecOpenSSLEvpDigestVerify:file=digests.c:line=355:obj=sha256:subj=unknown:error=12:invalid data:data and digest do not match";
        assert_eq!(
            parse(digest).map(|e| (e.code, e.reason, e.message)),
            Some((12, "invalid data", "data and digest do not match"))
        );
        for other in [
            "",
            "Entity: line 1: parser error : <saml:Assertion",
            "func=x:file=y:line=z:obj=o:subj=s:error=1:r:m",
        ] {
            assert_eq!(parse(other), None, "{other:?}");
        }
        assert_eq!(clean("a\u{1b}[31mb\n"), "a[31mb");
        assert_eq!(clean(&"x".repeat(500)).len(), MAX_FIELD);
    }
}
