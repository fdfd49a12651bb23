//! Reading the document to inspect, and telling a JWT from a SAML document. Nothing read here is
//! ever printed: errors name what was wrong, never the bytes.

use crate::verify::saml::SamlVerifier;
use mfagate_policy::InvalidReason;
use std::io::{IsTerminal, Read};

/// Largest input read (a SAML Response is tens of kilobytes, a token a few).
pub const MAX_INPUT: usize = 4 * 1024 * 1024;

/// Why there is nothing to inspect (a usage error, exit 3).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// No argument, and standard input is a terminal.
    #[error("no input: give a token or SAML document as the argument, or pipe it in (`-`)")]
    NoInput,
    /// Standard input could not be read.
    #[error("cannot read standard input: {0}")]
    Unreadable(std::io::Error),
    /// Not UTF-8 text.
    #[error("the input is not text (UTF-8)")]
    NotText,
    /// Only white space.
    #[error("the input is empty")]
    Empty,
    /// Over [`MAX_INPUT`].
    #[error("the input is larger than 4 MiB")]
    TooLarge,
}

/// How a document was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A JWT in compact form.
    Compact,
    /// SAML as XML.
    Xml,
    /// SAML as base64 (the `Authorization: SAML` value).
    Base64,
    /// A `SAMLResponse=` form value (what a browser posts to the ACS), URL-encoded.
    FormValue,
}

impl Form {
    /// The name used in `--json`.
    pub fn name(self) -> &'static str {
        match self {
            Form::Compact => "compact",
            Form::Xml => "xml",
            Form::Base64 => "base64",
            Form::FormValue => "form",
        }
    }
}

/// A recognised document.
pub enum Document {
    /// A JWT.
    Jwt(String),
    /// A SAML Response or Assertion, as XML.
    Saml {
        /// The XML.
        xml: String,
        /// How it came.
        form: Form,
    },
}

/// The argument, or standard input for `-` or no argument.
pub fn read(arg: Option<&str>) -> Result<String, InputError> {
    let text = match arg {
        Some(t) if t != "-" => t.to_owned(),
        _ => {
            let stdin = std::io::stdin();
            if arg.is_none() && stdin.is_terminal() {
                return Err(InputError::NoInput);
            }
            let mut bytes = Vec::new();
            stdin
                .lock()
                .take(MAX_INPUT as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(InputError::Unreadable)?;
            if bytes.len() > MAX_INPUT {
                return Err(InputError::TooLarge);
            }
            String::from_utf8(bytes).map_err(|_| InputError::NotText)?
        }
    };
    if text.len() > MAX_INPUT {
        return Err(InputError::TooLarge);
    }
    if text.trim().is_empty() {
        return Err(InputError::Empty);
    }
    Ok(text)
}

/// Tells what `text` is: a JWT, SAML XML, base64 SAML (as the gateway decodes it), or a form
/// body with `SAMLResponse`. An `Authorization:` header line or a `Bearer `/`SAML ` scheme in
/// front is taken off. Anything else is `token_malformed`.
pub fn recognise(text: &str, saml: &SamlVerifier) -> Result<Document, InvalidReason> {
    let mut t = text.trim().trim_start_matches('\u{feff}').trim();
    if let Some((name, value)) = t.split_once(':')
        && name.trim().eq_ignore_ascii_case("authorization")
    {
        t = value.trim();
    }
    for scheme in ["bearer ", "saml "] {
        if let Some(rest) =
            t.get(..scheme.len()).filter(|s| s.eq_ignore_ascii_case(scheme)).map(|_| &t[scheme.len()..])
        {
            t = rest.trim();
        }
    }
    if t.starts_with('<') {
        return Ok(Document::Saml { xml: t.to_owned(), form: Form::Xml });
    }
    if t.contains("SAMLResponse=") {
        let value = form_urlencoded::parse(t.as_bytes())
            .find(|(name, _)| name == "SAMLResponse")
            .map(|(_, v)| v.into_owned())
            .ok_or(InvalidReason::Malformed)?;
        let xml = saml.decode(&value)?;
        return Ok(Document::Saml { xml, form: Form::FormValue });
    }
    if is_compact_jwt(t) {
        return Ok(Document::Jwt(t.to_owned()));
    }
    // A form value pasted without its name is still percent-encoded.
    let unescaped = if t.contains('%') {
        form_urlencoded::parse(format!("v={t}").as_bytes()).map(|(_, v)| v.into_owned()).next()
    } else {
        None
    };
    let xml = saml.decode(unescaped.as_deref().unwrap_or(t))?;
    if xml.trim_start().starts_with('<') {
        return Ok(Document::Saml { xml, form: Form::Base64 });
    }
    Err(InvalidReason::Malformed)
}

/// Three segments of base64url characters: the shape of a JWS compact token (its strict reading
/// is the verifier's).
fn is_compact_jwt(t: &str) -> bool {
    t.split('.').count() == 3
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn verifier() -> SamlVerifier {
        SamlVerifier::new(Vec::new(), String::new(), Vec::new(), 64 * 1024, crate::clock::ManualClock::at(0))
    }

    fn kind(text: &str) -> Result<(&'static str, String), InvalidReason> {
        Ok(match recognise(text, &verifier())? {
            Document::Jwt(t) => ("jwt", t),
            Document::Saml { xml, form } => (form.name(), xml),
        })
    }

    #[test]
    fn every_form_is_recognised_and_anything_else_is_malformed() {
        let xml = "<samlp:Response/>";
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{xml}\n\n\n"));
        assert!(b64.contains('+') || b64.contains('/') || b64.contains('='), "{b64}");
        let encoded: String = form_urlencoded::byte_serialize(b64.as_bytes()).collect();
        assert_eq!(kind("eyJh.eyJi.c2ln"), Ok(("jwt", "eyJh.eyJi.c2ln".into())));
        assert_eq!(kind("Authorization: Bearer eyJh.eyJi.c2ln\n"), Ok(("jwt", "eyJh.eyJi.c2ln".into())));
        assert_eq!(kind(&format!("  {xml}  ")), Ok(("xml", xml.into())));
        assert_eq!(kind(&b64).map(|(k, x)| (k, x.trim().to_owned())), Ok(("base64", xml.into())));
        assert_eq!(kind(&format!("SAML {b64}")).map(|(k, _)| k), Ok("base64"));
        assert_eq!(kind(&encoded).map(|(k, _)| k), Ok("base64"));
        let form = format!("RelayState=abc&SAMLResponse={encoded}");
        assert_eq!(kind(&form).map(|(k, x)| (k, x.trim().to_owned())), Ok(("form", xml.into())));
        for bad in ["hello", "eyJh.eyJi", "a b c", "SAMLResponse=%%%"] {
            assert_eq!(kind(bad).map(|(k, _)| k), Err(InvalidReason::Malformed), "{bad}");
        }
    }
}
