//! Argon2id hashing and verifying, off the async runtime and bounded.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("argon2: {0}")]
    Argon2(String),
    #[error("a stored password hash is not a PHC string")]
    BadStoredHash,
    #[error("the hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("the hashing pool is closed")]
    Closed,
}

/// Runs Argon2id (the crate's defaults: m=19456 KiB, t=2, p=1) on the blocking
/// pool, at most `permits` at a time, so a login flood queues instead of
/// swamping the machine.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// Verified against when the user does not exist, so timing tells nothing.
    dummy_hash: Arc<str>,
}

impl Hasher {
    pub fn new(permits: usize) -> Result<Self, HashError> {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).map_err(|e| HashError::Argon2(e.to_string()))?;
        let dummy_hash = hash_now(&random)?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            dummy_hash: dummy_hash.into(),
        })
    }

    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move || hash_now(password.as_bytes())).await
    }

    /// Verifies `password` against `stored`, or against a dummy hash when there is
    /// no user, so both paths cost one Argon2 verification.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, HashError> {
        let exists = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let matched = self
            .run(move || {
                let parsed = PasswordHash::new(&hash).map_err(|_| HashError::BadStoredHash)?;
                match Argon2::default().verify_password(password.as_bytes(), &parsed) {
                    Ok(()) => Ok(true),
                    Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
                    Err(err) => Err(HashError::Argon2(err.to_string())),
                }
            })
            .await?;
        Ok(exists && matched)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        // The permit moves into the task: a dropped request can't free it early.
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::Closed)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await?
    }
}

fn hash_now(password: &[u8]) -> Result<String, HashError> {
    Argon2::default()
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(|e| HashError::Argon2(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_as_argon2id_phc_and_verifies() {
        let hasher = Hasher::new(2).unwrap();
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(!hash.contains("correct horse"));
        assert!(
            hasher
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("wrong horse".into(), Some(hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        let hasher = Hasher::new(1).unwrap();
        assert!(!hasher.verify("anything".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_corrupt_stored_hash_is_an_error_not_a_match() {
        let hasher = Hasher::new(1).unwrap();
        assert!(
            hasher
                .verify("x".into(), Some("plaintext".into()))
                .await
                .is_err()
        );
    }
}
