//! The key file: created once (atomically, mode 0600) and reused.

use std::io::Write;
use std::path::Path;

use super::ConfigError;
use crate::secret::Secret;

/// Reads the key file, or creates it with a random 256-bit key (hex, mode 0600).
/// Creation is atomic and never overwrites: two servers starting at once agree on one key.
pub(super) fn load_or_create_secret(path: &Path) -> Result<Secret, ConfigError> {
    let fail = |what: &str, err: std::io::Error| {
        ConfigError::new(
            "JWT_SECRET_FILE",
            format!("{what} {}: {err}", path.display()),
        )
    };
    match std::fs::read_to_string(path) {
        Ok(content) => return secret_from_file(path, &content),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(fail("cannot read", err)),
    }

    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|err| {
        ConfigError::new(
            "JWT_SECRET_FILE",
            format!("no system randomness to create a key: {err}"),
        )
    })?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();

    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(hex.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    })();
    if let Err(err) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("cannot create", err));
    }
    // A hard link fails if the file appeared meanwhile: then the other writer's key wins.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created a new JWT key");
            Ok(Secret::from(hex.into_bytes()))
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            let content = std::fs::read_to_string(path).map_err(|err| fail("cannot read", err))?;
            secret_from_file(path, &content)
        }
        Err(err) => Err(fail("cannot create", err)),
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
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the JWT key file is readable by other users; chmod 600 it");
        }
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
