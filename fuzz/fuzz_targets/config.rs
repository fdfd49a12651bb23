//! Configuration parsing: `Config::from_toml` never panics, whatever the text (errors are fine).
//! Relative paths resolve from `examples/`, as the demo's do; a text naming a device or a
//! process file (`/dev/zero` reads forever) is skipped, after TOML decoding so no escape hides it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fn names_special_file(value: &toml::Value) -> bool {
    match value {
        toml::Value::String(s) => ["dev", "proc", "sys"]
            .iter()
            .any(|d| s.contains(&format!("/{d}")) || s.contains(&format!("{d}/"))),
        toml::Value::Array(items) => items.iter().any(names_special_file),
        toml::Value::Table(t) => t
            .iter()
            .any(|(k, v)| names_special_file(&toml::Value::String(k.clone())) || names_special_file(v)),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(table) = toml::from_str::<toml::Table>(text)
        && names_special_file(&toml::Value::Table(table))
    {
        return;
    }
    let base = mfagate_fuzz::repo().join("examples");
    let _ = mfagate::Config::from_toml(text, &base);
});
