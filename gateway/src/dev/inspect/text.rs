//! The findings for a person: colour on a terminal (unless `NO_COLOR`), plain when piped.

use super::findings::{Findings, RouteOutcome, Time};
use serde_json::Value;
use std::fmt::Write as _;

/// ANSI colours, or nothing.
#[derive(Clone, Copy)]
pub struct Paint {
    on: bool,
}

impl Paint {
    /// Colour when `on`.
    pub fn new(on: bool) -> Paint {
        Paint { on }
    }

    /// Colour for standard output: a terminal, and `NO_COLOR` unset or empty (no-color.org).
    pub fn for_stdout() -> Paint {
        use std::io::IsTerminal;
        Paint::when(std::io::stdout().is_terminal(), std::env::var_os("NO_COLOR"))
    }

    fn when(terminal: bool, no_color: Option<std::ffi::OsString>) -> Paint {
        Paint::new(terminal && no_color.is_none_or(|v| v.is_empty()))
    }

    fn wrap(self, code: &str, text: &str) -> String {
        if self.on { format!("\u{1b}[{code}m{text}\u{1b}[0m") } else { text.to_owned() }
    }

    fn green(self, t: &str) -> String {
        self.wrap("32", t)
    }

    fn red(self, t: &str) -> String {
        self.wrap("31", t)
    }

    fn yellow(self, t: &str) -> String {
        self.wrap("33", t)
    }

    fn bold(self, t: &str) -> String {
        self.wrap("1", t)
    }

    fn dim(self, t: &str) -> String {
        self.wrap("2", t)
    }
}

const LABEL: usize = 12;

fn line(out: &mut String, label: &str, text: &str) {
    let _ = writeln!(out, "{}", format!("  {label:<LABEL$}{text}").trim_end());
}

fn more(out: &mut String, text: &str) {
    for (i, l) in text.lines().enumerate() {
        let bullet = if i == 0 { "- " } else { "  " };
        let _ = writeln!(out, "  {:<LABEL$}{bullet}{l}", "");
    }
}

/// The findings as text; `now` (Unix seconds) for "expired 2 h ago".
pub fn render(f: &Findings, paint: Paint, now: u64) -> String {
    let mut out = String::new();
    let kind = match f.document.kind {
        "jwt" => "JWT".to_owned(),
        "saml" => format!(
            "SAML {} {}",
            f.document.saml_version.unwrap_or_default(),
            f.document.element.as_deref().unwrap_or_default()
        ),
        _ => "Not a JWT or SAML document".to_owned(),
    };
    let source = match &f.key_source.location {
        Some(l) => format!("--{} {l}", f.key_source.kind.replace('_', "-")),
        None => "no key source".to_owned(),
    };
    let _ = writeln!(out, "{} ({}), {source}", paint.bold(&kind), f.document.form);
    let verdict = match f.verdict.result {
        "mfa_proven" => paint.green("MFA proven"),
        "mfa_not_proven" => paint.yellow("valid, MFA NOT proven"),
        "not_verified" => paint.red("NOT verified: the signature was not checked"),
        _ => paint.red("INVALID: the gateway refuses it"),
    };
    let unverified = if f.verdict.verified || f.invalid.is_some() { "" } else { " (unverified claims)" };
    let verdict = format!("{verdict}{unverified}  {}", paint.dim(&format!("exit {}", f.verdict.exit_code)));
    line(&mut out, "verdict", &verdict);
    if let Some(p) = &f.invalid {
        line(&mut out, "refused", &paint.red(&format!("{} ({})", p.reason, p.description)));
    }
    line(&mut out, "signature", &signature(f, paint));
    if let Some(iss) = &f.issuer.claimed {
        let configured = f.issuer.configured.as_ref().map_or(String::new(), |c| format!("  (as \"{c}\")"));
        line(&mut out, "issuer", &format!("{}{configured}", shown(iss)));
    }
    if let Some(used) = f.document.used_as {
        let how = match used {
            "sign_in" => "a browser sign-in Response, as posted to the ACS",
            "grant" => "an RFC 7522 assertion grant",
            _ => "an API credential (Authorization: SAML)",
        };
        line(&mut out, "used as", how);
    }
    if let Some(p) = &f.principal {
        let caller = match p.kind {
            "app_user" => format!("App+User, decided by {}", p.decided_by),
            "app_only" => format!("App-only, decided by {}", p.decided_by),
            _ => "user (a SAML assertion names a signed-in user)".to_owned(),
        };
        line(&mut out, "caller", &caller);
    }
    line(&mut out, "MFA", &mfa(f, paint));
    if !f.not_checked.is_empty() {
        line(&mut out, "not checked", "");
        for n in &f.not_checked {
            more(&mut out, n);
        }
    }
    if let Some(Value::Object(claims)) = &f.jwt {
        line(&mut out, "claims", "");
        for (name, value) in claims {
            let _ = writeln!(out, "  {:<LABEL$}{name:<24}{}", "", value_text(value, now));
        }
    }
    if let Some(s) = &f.saml {
        line(&mut out, "statements", "");
        let mut row = |name: &str, value: String| {
            let _ = writeln!(out, "  {:<LABEL$}{name:<24}{}", "", shown(&value));
        };
        row("assertion ID", s.assertion_id.clone());
        row("audience", s.audiences.join(", "));
        for (name, v) in [
            ("NameID", &s.name_id),
            ("tenant id", &s.tenant_id),
            ("object id", &s.object_id),
            ("upn", &s.upn),
            ("recipient", &s.recipient),
            ("InResponseTo", &s.in_response_to),
        ] {
            if let Some(v) = v {
                row(name, v.clone());
            }
        }
        if let Some(t) = &s.not_before {
            row("NotBefore", time_text(t, now));
        }
        if let Some(t) = &s.not_on_or_after {
            row("NotOnOrAfter", time_text(t, now));
        }
        for l in &s.mfa_locations {
            let read = if l.read { "" } else { " (not read by mfa_locations)" };
            let values = if l.values.is_empty() { "-".to_owned() } else { l.values.join(", ") };
            row(l.location, format!("{values}{read}"));
        }
    }
    if !f.routes.is_empty() {
        line(&mut out, "routes", "");
        let name = f.routes.iter().map(|r| r.route.len()).max().unwrap_or_default() + 2;
        let prefix = f.routes.iter().map(|r| r.path_prefix.len()).max().unwrap_or_default() + 2;
        for r in &f.routes {
            let _ = writeln!(out, "  {:<LABEL$}{}", "", route(r, paint, name, prefix));
        }
    }
    if !f.advice.is_empty() {
        line(&mut out, "advice", "");
        for a in &f.advice {
            more(&mut out, a);
        }
    }
    out
}

fn signature(f: &Findings, paint: Paint) -> String {
    let s = &f.signature;
    if !s.checked {
        return paint.red(s.note.as_deref().unwrap_or("NOT checked"));
    }
    let mut by = Vec::new();
    if let Some(kid) = &s.kid {
        by.push(format!("kid {}", shown(kid)));
    }
    if let Some(alg) = &s.alg {
        by.push(shown(alg));
    }
    if let Some(t) = &s.key_thumbprint {
        by.push(format!("JWK thumbprint {t}"));
    }
    if let Some(c) = &s.certificate {
        by.push(format!("certificate {}", shown(c.subject.as_deref().unwrap_or("(no subject)"))));
        by.push(format!("SHA-256 {}", c.sha256));
        if let Some(n) = &c.not_after {
            by.push(format!("valid until {n}"));
        }
    }
    let by = by.join(", ");
    match s.valid {
        Some(true) => format!("{} with {by}", paint.green("verified")),
        Some(false) => paint.red(&format!("does NOT verify ({by})")),
        None => format!("{} ({by})", paint.yellow("not established: another check refused it")),
    }
}

fn mfa(f: &Findings, paint: Paint) -> String {
    let m = &f.mfa;
    let decided = match (&m.decided_by, &m.value) {
        (Some(by), Some(v)) => format!(": {by} has \"{}\"", shown(v)),
        (Some(by), None) => format!(", decided by {by}"),
        _ => String::new(),
    };
    let mut reason = m.reason.map_or(String::new(), |r| format!(" ({r})"));
    if let Some(l) = m.unread_location {
        let _ = write!(reason, "; multipleauthn sits in {l}, which mfa_locations does not read");
    }
    let verdict = match m.verdict {
        "yes" => paint.green("yes"),
        "no" => paint.red("no"),
        "unknown" => paint.yellow("unknown"),
        other => other.to_owned(),
    };
    format!("{verdict}{decided}{reason}")
}

fn route(r: &RouteOutcome, paint: Paint, name: usize, prefix: usize) -> String {
    let answer = match r.status {
        None => paint.green("forwarded"),
        Some(s) if s < 400 => paint.yellow(&s.to_string()),
        Some(s) => paint.red(&s.to_string()),
    };
    let mut text = format!("{:<name$}{:<prefix$}{answer} {}", r.route, r.path_prefix, r.reason);
    let indent = name + prefix;
    if let Some(w) = &r.www_authenticate {
        let _ = write!(text, "\n  {:<LABEL$}{:<indent$}WWW-Authenticate: {w}", "", "");
    }
    if !r.accepts.is_empty() {
        let _ = write!(text, "\n  {:<LABEL$}{:<indent$}takes only {}", "", "", r.accepts.join(", "));
    }
    if let Some(n) = &r.note {
        let _ = write!(text, "\n  {:<LABEL$}{:<indent$}{}", "", "", paint.dim(n));
    }
    text
}

fn value_text(v: &Value, now: u64) -> String {
    match v {
        Value::String(s) => shown(s),
        Value::Array(items) => {
            format!("[{}]", items.iter().map(|i| value_text(i, now)).collect::<Vec<_>>().join(", "))
        }
        Value::Object(o) => {
            match (o.get("unix").and_then(Value::as_u64), o.get("utc").and_then(Value::as_str)) {
                (Some(unix), Some(utc)) => time_text(&Time { unix, utc: utc.to_owned() }, now),
                _ => v.to_string(),
            }
        }
        other => other.to_string(),
    }
}

/// Text from the document (or its key source) as shown: control characters escaped, so that an
/// escape sequence or a line break in a claim cannot move the cursor or write a line of its own
/// (a fake verdict over the real one).
fn shown(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() })
        .collect()
}

fn time_text(t: &Time, now: u64) -> String {
    let span = |secs: u64| match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86400),
    };
    if t.unix >= now {
        format!("{} (in {})", t.utc, span(t.unix - now))
    } else {
        format!("{} ({} ago)", t.utc, span(now - t.unix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_on_a_terminal_unless_no_color() {
        assert!(Paint::when(true, None).on);
        assert!(Paint::when(true, Some("".into())).on, "an empty NO_COLOR is unset");
        assert!(!Paint::when(true, Some("1".into())).on);
        assert!(!Paint::when(false, None).on);
        let f = Findings::new("jwt", "compact", &super::super::sources::Source::None);
        assert!(render(&f, Paint::new(true), 0).contains("\u{1b}[31m"));
        assert!(!render(&f, Paint::new(false), 0).contains('\u{1b}'));
    }
}
