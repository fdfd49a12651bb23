//! Watching the configuration file (and the certificate it names). Their folders are watched,
//! not the files: editors save by writing a new file and renaming it over the old one, and a
//! Kubernetes ConfigMap or Secret volume swaps a `..data` symlink, and a watch on the old file
//! would see neither.

use super::Trigger;
use notify::{EventKind, RecursiveMode, Watcher};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc::Sender;

/// Watches the folder of each of `files` (and of the file a symlink names); every event that
/// may have changed one sends [`Trigger::File`]. `None` (logged) when the platform refuses:
/// SIGHUP still reloads. The watch lasts as long as the returned watcher.
pub fn start(files: &[PathBuf], triggers: Sender<Trigger>) -> Option<notify::RecommendedWatcher> {
    let mut places = Vec::new();
    for file in files {
        let target = std::fs::canonicalize(file).ok().map(|t| place(&t));
        for p in std::iter::once(place(file)).chain(target) {
            if !places.contains(&p) {
                places.push(p);
            }
        }
    }
    let names: Vec<OsString> = places.iter().map(|(_, name)| name.clone()).collect();
    let handler = move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        if event.paths.iter().any(|p| concerns(p, &names)) {
            // Full means a reload is already waiting: this change will be read by it.
            let _ = triggers.try_send(Trigger::File);
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot watch the configuration file; reload with SIGHUP");
            return None;
        }
    };
    let mut folders: Vec<&PathBuf> = places.iter().map(|(folder, _)| folder).collect();
    folders.sort();
    folders.dedup();
    for folder in folders {
        if let Err(e) = watcher.watch(folder, RecursiveMode::NonRecursive) {
            tracing::warn!(folder = %folder.display(), error = %e, "Cannot watch the configuration folder; reload with SIGHUP");
            return None;
        }
    }
    let shown: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    tracing::info!(files = %shown.join(", "), "Watching the configuration for changes");
    Some(watcher)
}

/// The folder to watch and the file name in it.
fn place(file: &Path) -> (PathBuf, OsString) {
    let folder = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    (folder, file.file_name().map(OsString::from).unwrap_or_default())
}

/// An event on the file itself, or on a `..`-named entry (a ConfigMap's `..data` swap).
fn concerns(path: &Path, names: &[OsString]) -> bool {
    path.file_name()
        .is_some_and(|n| names.iter().any(|name| name == n) || n.to_string_lossy().starts_with(".."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_and_configmap_swaps_concern_it_other_files_do_not() {
        let names = [OsString::from("mfagate.toml")];
        assert!(concerns(Path::new("/etc/mfagate/mfagate.toml"), &names));
        assert!(concerns(Path::new("/etc/mfagate/..data"), &names));
        assert!(concerns(Path::new("/etc/mfagate/..data_tmp"), &names));
        assert!(!concerns(Path::new("/etc/mfagate/other.toml"), &names));
        assert!(!concerns(Path::new("/etc/mfagate/.mfagate.toml.swp"), &names));
        assert_eq!(place(Path::new("mfagate.toml")).0, PathBuf::from("."));
    }
}
