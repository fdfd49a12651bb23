//! `${NAME}` in configuration strings, replaced from the environment before any value is read.
//! It works on the parsed TOML tree, so every string value takes it and no key or TOML syntax
//! can be made by a variable. `$${` is a literal `${`. The lookup is a parameter: tests pass a
//! map, and only [`super::Config::load`] reads the process environment.

use super::problems::{Problems, entry};

/// Replaces `${NAME}` in every string of `table`; each failure is an error at its key path.
/// Returns each replaced string with what was written, for [`redact`].
pub(crate) fn substitute(
    table: &mut toml::Table,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> Vec<(String, String)> {
    let mut replaced = Vec::new();
    for (key, value) in table.iter_mut() {
        walk(value, key, key, env, p, &mut replaced);
    }
    replaced
}

/// `message` with every replaced string put back as written (`${NAME}`): a deserializer's
/// error quotes a value it cannot take, and one from the environment may be a secret.
pub(crate) fn redact(message: &str, replaced: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = replaced
        .iter()
        .filter(|(value, _)| !value.is_empty())
        .flat_map(|(value, written)| {
            // serde quotes a string with Rust escapes (`string "a\"b"`).
            let escaped = (value.escape_debug().to_string(), written.escape_debug().to_string());
            [(value.clone(), written.clone()), escaped]
        })
        .collect();
    pairs.sort_by_key(|(value, _)| std::cmp::Reverse(value.len()));
    pairs.iter().fold(message.to_owned(), |m, (value, written)| m.replace(value.as_str(), written))
}

fn walk(
    value: &mut toml::Value,
    key: &str,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
    replaced: &mut Vec<(String, String)>,
) {
    match value {
        toml::Value::String(s) => match expand(s, env) {
            Ok(Some(expanded)) => {
                let written = std::mem::replace(s, expanded.clone());
                replaced.push((expanded, written));
            }
            Ok(None) => {}
            Err(e) => p.add(path, e),
        },
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                // `[[route]]` entries by name, as validation names them.
                let name = item.get("name").and_then(toml::Value::as_str).map(str::to_owned);
                let at = match name {
                    Some(name) => format!("{}{}", path.strip_suffix(key).unwrap_or(""), entry(key, i, &name)),
                    None => format!("{path}[{i}]"),
                };
                walk(item, key, &at, env, p, replaced);
            }
        }
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                walk(v, k, &format!("{path}.{k}"), env, p, replaced);
            }
        }
        _ => {}
    }
}

/// The string with its variables replaced (`None`: nothing to replace).
fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, String> {
    if !s.contains('$') {
        return Ok(None);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(literal) = after.strip_prefix("${") {
            out.push_str("${");
            rest = literal;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or("unterminated ${ (write $${ for a literal ${)")?;
            let name = &body[..end];
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!("${{{name}}}: not an environment variable name (letters, digits, _)"));
            }
            out.push_str(&env(name).ok_or_else(|| format!("environment variable {name} is not set"))?);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SECRET" => Some("s3cr3t".into()),
            "HOST" => Some("api.example.com".into()),
            "TRICKY" => Some("${SECRET}".into()),
            _ => None,
        }
    }

    #[test]
    fn variables_are_replaced_and_escapes_kept() {
        for (input, want) in [
            ("plain", None),
            ("${SECRET}", Some("s3cr3t")),
            ("https://${HOST}/v1/${SECRET}", Some("https://api.example.com/v1/s3cr3t")),
            ("$${SECRET}", Some("${SECRET}")),
            ("cost: $5 and $$", Some("cost: $5 and $$")),
            // A value is not expanded again.
            ("${TRICKY}", Some("${SECRET}")),
        ] {
            assert_eq!(expand(input, &env).unwrap().as_deref(), want, "{input:?}");
        }
        assert_eq!(expand("${MISSING}", &env).unwrap_err(), "environment variable MISSING is not set");
        assert!(expand("${SECRET", &env).unwrap_err().contains("unterminated"));
        assert!(expand("${1X}", &env).unwrap_err().contains("not an environment variable name"));
        assert!(expand("${}", &env).is_err());
    }

    #[test]
    fn errors_name_the_key_path_by_entry_name() {
        let mut table: toml::Table = toml::from_str(
            "a = \"${MISSING}\"\n[listen]\naddr = \"${NOPE}\"\n[[issuer]]\nname = \"entra\"\n\
             client_secret = \"${CLIENT_SECRET}\"\naudiences = [\"${SECRET}\", \"${GONE}\"]\n\
             [[route]]\nupstream = \"${X}\"\n",
        )
        .unwrap();
        let mut p = Problems::default();
        substitute(&mut table, &env, &mut p);
        assert_eq!(
            p.errors(),
            [
                "a: environment variable MISSING is not set",
                "issuer \"entra\".audiences[1]: environment variable GONE is not set",
                "issuer \"entra\".client_secret: environment variable CLIENT_SECRET is not set",
                "listen.addr: environment variable NOPE is not set",
                "route[0].upstream: environment variable X is not set",
            ]
        );
        assert_eq!(table["issuer"][0]["audiences"][0].as_str(), Some("s3cr3t"));
    }
}
