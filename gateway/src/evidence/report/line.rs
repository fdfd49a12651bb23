//! One decision-log line to the members the report needs. The gateway's own lines (no escapes,
//! no nesting) are read by a scanner that borrows every member and allocates nothing; any line
//! it is not sure of goes to serde_json, so which lines count, and how, is serde_json's answer:
//! the scanner only ever says yes where serde_json says the same yes.

use serde::Deserialize;
use std::borrow::Cow;

/// The members the report reads.
#[derive(Debug, Deserialize, PartialEq)]
pub(super) struct Line<'a> {
    #[serde(borrow)]
    pub ts: Cow<'a, str>,
    #[serde(borrow, default)]
    pub channel: Cow<'a, str>,
    #[serde(borrow, default)]
    pub principal: Cow<'a, str>,
    pub mfa: Option<bool>,
    #[serde(default)]
    pub enforced: bool,
    #[serde(borrow, default)]
    pub decision: Cow<'a, str>,
    #[serde(borrow)]
    pub route: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub request_id: Cow<'a, str>,
    #[serde(borrow)]
    pub correlation_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub operation: Cow<'a, str>,
    #[serde(borrow, default)]
    pub source_ip: Cow<'a, str>,
    #[serde(borrow)]
    pub object_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub tenant_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub upn: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub app_id: Option<Cow<'a, str>>,
}

/// The line's members, or `None` when it is not a record serde_json reads as [`Line`].
pub(super) fn parse(text: &str) -> Option<Line<'_>> {
    let mut scanner = Scanner { b: text.as_bytes(), text, i: 0 };
    match scanner.line() {
        Some(line) => Some(line),
        None => serde_json::from_str(text).ok(),
    }
}

/// The bytes that end a plain string: its quote, or what makes it not plain (an escape, or a
/// control character, which JSON refuses raw). A table: one load per byte.
static STRING_END: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

struct Scanner<'a> {
    b: &'a [u8],
    text: &'a str,
    i: usize,
}

/// What a scanned value was.
enum Value<'a> {
    Str(&'a str),
    Null,
    Bool(bool),
    /// A number or an array: read, not kept.
    Other,
}

impl<'a> Scanner<'a> {
    /// The whole line as one object of plain members; `None`: not sure (serde_json decides).
    fn line(&mut self) -> Option<Line<'a>> {
        let mut line = Line {
            ts: Cow::Borrowed(""),
            channel: Cow::Borrowed(""),
            principal: Cow::Borrowed(""),
            mfa: None,
            enforced: false,
            decision: Cow::Borrowed(""),
            route: None,
            request_id: Cow::Borrowed(""),
            correlation_id: None,
            operation: Cow::Borrowed(""),
            source_ip: Cow::Borrowed(""),
            object_id: None,
            tenant_id: None,
            upn: None,
            app_id: None,
        };
        let mut seen = 0u32;
        self.ws();
        self.eat(b'{')?;
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            let value = self.value(true)?;
            let s = |v: &Value<'a>| match v {
                Value::Str(s) => Some(Cow::Borrowed(*s)),
                _ => None,
            };
            let opt = |v: &Value<'a>| match v {
                Value::Str(s) => Some(Some(Cow::Borrowed(*s))),
                Value::Null => Some(None),
                _ => None,
            };
            let bit = match key {
                "ts" => {
                    line.ts = s(&value)?;
                    1
                }
                "channel" => {
                    line.channel = s(&value)?;
                    1 << 1
                }
                "principal" => {
                    line.principal = s(&value)?;
                    1 << 2
                }
                "mfa" => {
                    line.mfa = match value {
                        Value::Bool(b) => Some(b),
                        Value::Null => None,
                        _ => return None,
                    };
                    1 << 3
                }
                "enforced" => {
                    let Value::Bool(b) = value else { return None };
                    line.enforced = b;
                    1 << 4
                }
                "decision" => {
                    line.decision = s(&value)?;
                    1 << 5
                }
                "route" => {
                    line.route = opt(&value)?;
                    1 << 6
                }
                "request_id" => {
                    line.request_id = s(&value)?;
                    1 << 7
                }
                "correlation_id" => {
                    line.correlation_id = opt(&value)?;
                    1 << 8
                }
                "operation" => {
                    line.operation = s(&value)?;
                    1 << 9
                }
                "source_ip" => {
                    line.source_ip = s(&value)?;
                    1 << 10
                }
                "object_id" => {
                    line.object_id = opt(&value)?;
                    1 << 11
                }
                "tenant_id" => {
                    line.tenant_id = opt(&value)?;
                    1 << 12
                }
                "upn" => {
                    line.upn = opt(&value)?;
                    1 << 13
                }
                "app_id" => {
                    line.app_id = opt(&value)?;
                    1 << 14
                }
                _ => 0,
            };
            // A member twice is serde_json's error to give.
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            self.ws();
            match self.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
        self.ws();
        (self.i == self.b.len() && seen & 1 == 1).then_some(line)
    }

    fn next(&mut self) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let len = self.b[start..].iter().position(|&c| STRING_END[usize::from(c)])?;
        self.i = start + len;
        self.eat(b'"')?;
        // Cut at ASCII quotes of valid UTF-8: on character boundaries.
        self.text.get(start..start + len)
    }

    /// A string, literal or number, or (`nested`) an array of them.
    fn value(&mut self, nested: bool) -> Option<Value<'a>> {
        let c = *self.b.get(self.i)?;
        let literal = |s: &mut Self, word: &[u8], v: Value<'a>| {
            s.b[s.i..].starts_with(word).then(|| {
                s.i += word.len();
                v
            })
        };
        match c {
            b'"' => self.string().map(Value::Str),
            b'n' => literal(self, b"null", Value::Null),
            b't' => literal(self, b"true", Value::Bool(true)),
            b'f' => literal(self, b"false", Value::Bool(false)),
            b'-' | b'0'..=b'9' => self.number(),
            b'[' if nested => {
                self.i += 1;
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Some(Value::Other);
                }
                loop {
                    self.ws();
                    self.value(false)?;
                    self.ws();
                    match self.next()? {
                        b',' => {}
                        b']' => return Some(Value::Other),
                        _ => return None,
                    }
                }
            }
            _ => None,
        }
    }

    /// JSON's number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Option<Value<'a>> {
        let digits = |s: &mut Self| {
            let n = s.b[s.i..].iter().take_while(|c| c.is_ascii_digit()).count();
            s.i += n;
            n
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => _ = digits(self),
            _ => return None,
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        Some(Value::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::{Line, Scanner};
    use proptest::prelude::*;

    const GATEWAY: &str = r#"{"ts":"2026-01-01T00:00:00.000Z","request_id":"r1","correlation_id":null,"channel":"api","route":"partner-api","method":"GET","path":"/v1/customers","operation":"GET /v1/","source_ip":"10.0.0.1","issuer":"entra","tenant_id":"t","object_id":"o","upn":"u@c.test","app_id":"a","principal":"app_user","amr":["pwd","mfa"],"mfa":true,"decision":"allow","enforced":true,"reason":"mfa_satisfied","status":200,"latency_us":-8.5e3}"#;

    fn scan(text: &str) -> Option<Line<'_>> {
        Scanner { b: text.as_bytes(), text, i: 0 }.line()
    }

    /// Where the scanner answers, serde_json gives the same answer.
    fn agrees(text: &str) -> Result<(), TestCaseError> {
        if let Some(scanned) = scan(text) {
            let serde = serde_json::from_str::<Line<'_>>(text);
            prop_assert!(serde.as_ref().is_ok_and(|s| *s == scanned), "{text}: {scanned:?} / {serde:?}");
        }
        Ok(())
    }

    #[test]
    fn the_gateway_lines_are_scanned_and_the_unsure_go_to_serde() {
        let line = scan(GATEWAY).expect("scanned");
        assert_eq!(
            (line.ts.as_ref(), line.mfa, line.app_id.as_deref()),
            ("2026-01-01T00:00:00.000Z", Some(true), Some("a"))
        );
        assert!(matches!(line.ts, std::borrow::Cow::Borrowed(_)));
        agrees(GATEWAY).unwrap();
        // Escapes, nesting, duplicates, wrong types: not scanned; serde_json decides.
        for unsure in [
            GATEWAY.replace("u@c.test", r"u\u0040c.test"),
            GATEWAY.replace(r#""amr":["pwd","mfa"]"#, r#""amr":{"a":1}"#),
            GATEWAY.replace(r#""mfa":true"#, r#""mfa":true,"mfa":false"#),
            GATEWAY.replace(r#""enforced":true"#, r#""enforced":null"#),
            GATEWAY.replace(r#""ts":"2026-01-01T00:00:00.000Z","#, ""),
            format!("{GATEWAY} x"),
        ] {
            assert!(scan(&unsure).is_none(), "{unsure}");
        }
        assert!(
            super::parse(&GATEWAY.replace("u@c.test", r"u\u0040c.test"))
                .is_some_and(|l| l.upn.as_deref() == Some("u@c.test"))
        );
        assert!(super::parse(&GATEWAY.replace(r#""mfa":true"#, r#""mfa":true,"mfa":false"#)).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        /// A gateway line with a few bytes replaced, inserted or removed anywhere.
        #[test]
        fn the_scanner_never_says_yes_where_serde_json_says_no(
            edits in proptest::collection::vec((0usize..600, 0u8..3, proptest::sample::select(
                b" \t\r\n\"\\{}[],:0123456789-+.eEnultrfase\x01\x7fx".to_vec())), 1..4),
        ) {
            let mut b = GATEWAY.as_bytes().to_vec();
            for (at, kind, c) in edits {
                let at = at % (b.len() + 1);
                match kind {
                    0 if at < b.len() => b[at] = c,
                    1 => b.insert(at, c),
                    _ if at < b.len() => _ = b.remove(at),
                    _ => {}
                }
            }
            if let Ok(text) = std::str::from_utf8(&b) {
                agrees(text)?;
            }
        }
    }
}
