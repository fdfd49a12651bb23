//! The JWS compact form read strictly (RFC 7515 §7.1), before anything trusts it: exactly three
//! base64url segments without padding, and JSON that no other parser could read differently:
//! UTF-8, no member name twice (serde_json keeps the last, others the first), bounded nesting.

use base64::Engine;
use mfagate_policy::InvalidReason;
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use std::cell::Cell;

/// Deepest nesting of arrays and objects accepted in a header or payload. Real tokens nest two or
/// three levels; the bound keeps a hostile token from costing more than a flat one.
pub const MAX_DEPTH: usize = 32;

/// A token split into its decoded, checked parts.
pub struct Compact<'t> {
    /// The header's JSON bytes.
    pub header: Vec<u8>,
    /// The payload's JSON bytes.
    pub payload: Vec<u8>,
    /// What the signature covers: the header and payload segments as sent, with the dot between.
    pub signing_input: &'t str,
    /// The signature's bytes.
    pub signature: Vec<u8>,
}

/// Splits and decodes `token`; both JSON parts are checked with [`check_json`], the signature
/// segment is decoded as strictly (its bytes are the signature verifier's business).
pub fn split(token: &str) -> Result<Compact<'_>, InvalidReason> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(InvalidReason::Malformed);
    };
    let signing_input = &token[..header.len() + 1 + payload.len()];
    let header = decode(header)?;
    let payload = decode(payload)?;
    let signature = decode(signature)?;
    check_json(&header)?;
    check_json(&payload)?;
    Ok(Compact { header, payload, signing_input, signature })
}

/// base64url without padding, canonical trailing bits: no `=`, `+`, `/`, whitespace or other bytes.
pub fn decode(segment: &str) -> Result<Vec<u8>, InvalidReason> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(segment).map_err(|_| InvalidReason::Malformed)
}

/// Checks that `bytes` are one JSON object in UTF-8, with no member name repeated in any object
/// and nesting at most [`MAX_DEPTH`]. Repeated names give [`InvalidReason::DuplicateJsonKey`],
/// anything else [`InvalidReason::Malformed`].
pub fn check_json(bytes: &[u8]) -> Result<(), InvalidReason> {
    let text = std::str::from_utf8(bytes).map_err(|_| InvalidReason::Malformed)?;
    if !text.trim_start().starts_with('{') {
        return Err(InvalidReason::Malformed);
    }
    let problem = Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let checked = Strict { depth: 0, problem: &problem }.deserialize(&mut de).and_then(|()| de.end());
    match checked {
        Ok(()) => Ok(()),
        Err(_) => Err(problem.get().unwrap_or(InvalidReason::Malformed)),
    }
}

/// Walks a JSON value without building it, refusing repeated names and deep nesting.
#[derive(Clone, Copy)]
struct Strict<'a> {
    depth: usize,
    problem: &'a Cell<Option<InvalidReason>>,
}

impl Strict<'_> {
    fn nested<E: serde::de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom("nested too deeply"));
        }
        Ok(Strict { depth: self.depth + 1, ..self })
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        let mut seen = std::collections::HashSet::new();
        // Names are compared after unescaping: "a" and "\u0061" are the same member.
        while let Some(name) = map.next_key::<String>()? {
            if !seen.insert(name) {
                self.problem.set(Some(InvalidReason::DuplicateJsonKey));
                return Err(A::Error::custom("duplicate member name"));
            }
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_are_refused_at_any_depth_and_after_unescaping() {
        assert_eq!(check_json(br#"{"a":1,"b":{"c":[1,{"d":2}]}}"#), Ok(()));
        for dup in [
            r#"{"amr":["pwd"],"amr":["mfa"]}"#,
            r#"{"a":{"x":1,"x":2}}"#,
            r#"{"a":[{"x":1,"x":1}]}"#,
            r#"{"a":1,"\u0061":2}"#,
        ] {
            assert_eq!(check_json(dup.as_bytes()), Err(InvalidReason::DuplicateJsonKey), "{dup}");
        }
    }

    #[test]
    fn only_one_bounded_utf8_object_is_json_here() {
        let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        assert_eq!(check_json(deep(MAX_DEPTH - 1).as_bytes()), Ok(()));
        assert_eq!(check_json(deep(MAX_DEPTH).as_bytes()), Err(InvalidReason::Malformed));
        assert_eq!(check_json(deep(100_000).as_bytes()), Err(InvalidReason::Malformed));
        for bad in [
            &b"[1]"[..],
            b"\"x\"",
            b"{\"a\":1} {}",
            b"{\"a\":1}x",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":\"\\ud800\"}",
            b"{\"a\":1,}",
            b"",
        ] {
            assert_eq!(check_json(bad), Err(InvalidReason::Malformed), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn segments_are_strict_base64url() {
        assert_eq!(decode("eyJ9"), Ok(b"{\"}".to_vec()));
        for bad in ["eyJ9=", "ey J9", "ey+9", "ey/9", "ey!9", "eyJ9\n", "eyK"] {
            assert_eq!(decode(bad), Err(InvalidReason::Malformed), "{bad:?}");
        }
        assert!(split("e30.e30.").is_ok());
        for bad in ["e30.e30", "e30.e30..", "e30.e30.e30.e30", "e30..", "", "..."] {
            assert!(split(bad).is_err(), "{bad:?}");
        }
    }
}
