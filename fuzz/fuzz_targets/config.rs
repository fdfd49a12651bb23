//! Configuration parsing: `Config::from_toml` never panics, whatever the text (errors are fine).
//! Relative paths resolve from `examples/`, as the demo's do. A text naming a file that is not a
//! regular file or a folder (`/dev/zero` reads forever, a FIFO blocks), or anything under /proc
//! or /sys, is skipped: it is checked after TOML decoding, so no escape hides it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fn names_special_file(base: &Path, value: &toml::Value) -> bool {
    let special = |s: &str| {
        ["proc", "sys"].iter().any(|d| s.contains(&format!("/{d}")) || s.contains(&format!("{d}/")))
            || std::fs::metadata(base.join(s)).is_ok_and(|m| !m.is_file() && !m.is_dir())
    };
    match value {
        toml::Value::String(s) => special(s),
        toml::Value::Array(items) => items.iter().any(|v| names_special_file(base, v)),
        toml::Value::Table(t) => t.iter().any(|(k, v)| special(k) || names_special_file(base, v)),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let base = mfagate_fuzz::repo().join("examples");
    if let Ok(table) = toml::from_str::<toml::Table>(text)
        && names_special_file(&base, &toml::Value::Table(table))
    {
        return;
    }
    let _ = mfagate::Config::from_toml(text, &base);
});
