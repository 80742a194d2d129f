//! The key file: created once (atomically, mode 0600) and reused.

use std::io::Write;
use std::path::Path;

use super::ConfigError;
use crate::secret::Secret;

/// Reads the key file, or creates it with a random 256-bit key (hex, mode 0600).
/// Creation is atomic and never overwrites: two servers starting at once agree on one key.
pub(super) fn load_or_create_secret(path: &Path) -> Result<Secret, ConfigError> {
    let content = load_or_create(path, "JWT_SECRET_FILE", "JWT key", || {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)
            .map_err(|err| format!("no system randomness to create a key: {err}"))?;
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        Ok(format!("{hex}\n"))
    })?;
    secret_from_file(path, &content)
}

/// The content of the key file at `path`, or, when there is none, of a new
/// one made by `make` and created atomically with mode 0600: written to a
/// file of its own, then hard-linked into place, which fails if the file
/// appeared meanwhile (then the other writer's key wins). `setting` names
/// the path's setting in errors.
pub(super) fn load_or_create(
    path: &Path,
    setting: &'static str,
    what: &str,
    make: impl FnOnce() -> Result<String, String>,
) -> Result<String, ConfigError> {
    let fail = |action: &str, err: std::io::Error| {
        ConfigError::new(setting, format!("{action} {}: {err}", path.display()))
    };
    match std::fs::read_to_string(path) {
        Ok(content) => {
            warn_if_readable_by_others(path);
            return Ok(content);
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(fail("cannot read", err)),
    }
    let content = make().map_err(|message| ConfigError::new(setting, message))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(content.as_bytes())?;
        file.sync_all()
    })();
    if let Err(err) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("cannot create", err));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created a new {what}");
            Ok(content)
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read_to_string(path).map_err(|err| fail("cannot read", err))
        }
        Err(err) => Err(fail("cannot create", err)),
    }
}

/// Creates a new key file at `path` (mode 0600); refuses to replace one.
pub fn create_new(path: &Path, content: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(content.as_bytes())?;
    file.sync_all()
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the key file is readable by other users; chmod 600 it");
        }
    }
}

fn secret_from_file(path: &Path, content: &str) -> Result<Secret, ConfigError> {
    let key = content.trim();
    if key.len() < Secret::MIN_LEN {
        return Err(ConfigError::new(
            "JWT_SECRET_FILE",
            format!(
                "{} holds a key shorter than {} bytes",
                path.display(),
                Secret::MIN_LEN
            ),
        ));
    }
    Ok(Secret::from(key.as_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_is_kept_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        let first = load_or_create_secret(&file).unwrap();
        let second = load_or_create_secret(&file).unwrap();
        assert_eq!(first, second);
        assert_eq!(first.expose().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
