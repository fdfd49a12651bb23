//! The Prometheus text exposition format (0.0.4), written by hand: one `# HELP` and `# TYPE`
//! per family before its samples, label values escaped, `+Inf` spelled as Prometheus reads it.
//! Not the `prometheus-client` crate: its histograms take a mutex on every observation and its
//! labelled families a read lock and a hash per lookup, where the request path here only adds to
//! atomics it found by index; the format itself is this small.

use std::fmt::Write;

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets on restart).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Cumulative buckets, a sum and a count.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Writes families and samples into a scrape's text.
pub struct Text<'a> {
    out: &'a mut String,
}

impl<'a> Text<'a> {
    /// Appends to `out`.
    pub fn new(out: &'a mut String) -> Text<'a> {
        Text { out }
    }

    /// Starts a family: its HELP and TYPE lines. Its samples follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}\n# TYPE {name} {}", escape_help(help), kind.as_str());
    }

    /// One sample line: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Value) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(label);
                self.out.push_str("=\"");
                escape_into(self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        value.write(self.out);
        self.out.push('\n');
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl Value) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// A sample value as the format spells it.
pub trait Value {
    /// Appends the value.
    fn write(&self, out: &mut String);
}

impl Value for u64 {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for i64 {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for f64 {
    fn write(&self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if *self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}

/// A label value: `\`, `"` and newlines escaped.
fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HELP text: `\` and newlines escaped.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_infinity_is_spelled_for_prometheus() {
        let mut s = String::new();
        let mut t = Text::new(&mut s);
        t.family("m", Kind::Gauge, "line\\one\ntwo");
        t.sample("m", &[("route", "a\"b\\c\nd"), ("x", "y")], 1.5);
        t.sample("m", &[], f64::INFINITY);
        t.sample("m", &[], 7u64);
        assert_eq!(
            s,
            "# HELP m line\\\\one\\ntwo\n# TYPE m gauge\nm{route=\"a\\\"b\\\\c\\nd\",x=\"y\"} 1.5\nm +Inf\nm 7\n"
        );
    }
}
