//! What validation found: errors refuse the configuration, warnings are printed (`check-config`)
//! or logged (`run`) and the configuration still loads. Each starts with its key path.

/// Errors and warnings, each `key.path: message`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems {
    errors: Vec<String>,
    warnings: Vec<String>,
}

impl Problems {
    /// An error at `path`.
    pub(crate) fn add(&mut self, path: impl std::fmt::Display, msg: impl std::fmt::Display) {
        self.errors.push(format!("{path}: {msg}"));
    }

    /// A warning at `path`.
    pub(crate) fn warn(&mut self, path: impl std::fmt::Display, msg: impl std::fmt::Display) {
        self.warnings.push(format!("{path}: {msg}"));
    }

    /// Every error and warning rewritten by `f` (values from the environment put back as written).
    pub(crate) fn rewrite(&mut self, f: impl Fn(&str) -> String) {
        for m in self.errors.iter_mut().chain(self.warnings.iter_mut()) {
            *m = f(m);
        }
    }

    /// Whether any error was found.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The errors, in the order found.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// The warnings, in the order found.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// The key path of one `[[kind]]` entry: by its name (`route "partner-api"`), or by its index
/// when it has none (`route[2]`). Debug quoting keeps odd names on one readable line.
pub(crate) fn entry(kind: &str, index: usize, name: &str) -> String {
    if name.is_empty() { format!("{kind}[{index}]") } else { format!("{kind} {name:?}") }
}
