//! Escaping text for XML and HTML (SAML messages, metadata, pages).

/// Escapes `&`, `<`, `>` and `"` so text is safe in element content and quoted attributes.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
