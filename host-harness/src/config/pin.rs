//! Pinned plugin libraries: `[[plugins]] sha256 = "…"` names the build a host
//! configuration means, and a file that is not that build is refused before it
//! is loaded.
//!
//! The digest is of the file as read just before `dlopen`; it guards against a
//! wrong or swapped build, not against a writer racing the host between the two
//! (keep plugin folders writable by their owner only).

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::model::{ConfigError, PluginRef};

/// The SHA-256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Refuses `plugin` when it is pinned and its file has another digest (or the
/// pin is not a SHA-256 in hex). Unpinned plugins pass.
pub fn check_pin(plugin: &PluginRef) -> Result<(), ConfigError> {
    let Some(pinned) = &plugin.sha256 else {
        return Ok(());
    };
    let shown = plugin.path.display().to_string();
    if pinned.len() != 64 || hex::decode(pinned).is_err() {
        return Err(ConfigError::Invalid(format!(
            "plugin {shown}: sha256 must be 64 hex digits, got {pinned:?}"
        )));
    }
    let actual = sha256_file(&plugin.path).map_err(|error| ConfigError::Read {
        path: shown.clone(),
        error,
    })?;
    if actual.eq_ignore_ascii_case(pinned) {
        Ok(())
    } else {
        Err(ConfigError::PinMismatch {
            path: shown,
            pinned: pinned.to_ascii_lowercase(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(path: &Path, sha256: Option<&str>) -> PluginRef {
        PluginRef {
            path: path.to_path_buf(),
            sha256: sha256.map(str::to_string),
        }
    }

    #[test]
    fn a_pin_passes_its_file_and_refuses_another_naming_both_digests() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("libx.so");
        std::fs::write(&file, b"abc").unwrap();
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_file(&file).unwrap(), abc);
        check_pin(&plugin(&file, Some(abc))).unwrap();
        check_pin(&plugin(&file, Some(&abc.to_uppercase()))).unwrap();
        check_pin(&plugin(&file, None)).unwrap();

        std::fs::write(&file, b"abd").unwrap();
        let err = check_pin(&plugin(&file, Some(abc)))
            .unwrap_err()
            .to_string();
        assert!(err.contains(abc), "{err}");
        assert!(err.contains(&sha256_file(&file).unwrap()), "{err}");

        let err = check_pin(&plugin(&file, Some("xyz")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("64 hex digits"), "{err}");
    }
}
