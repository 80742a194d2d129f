//! Argon2id hashing and verifying, off the async runtime and bounded.

use std::sync::{Arc, Mutex, PoisonError, mpsc};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{Semaphore, oneshot};

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("argon2: {0}")]
    Argon2(String),
    #[error("a stored password hash is not a PHC string")]
    BadStoredHash,
    #[error("cannot start a hashing thread: {0}")]
    Spawn(std::io::Error),
    #[error("the hashing thread stopped before answering")]
    Lost,
    #[error("the hashing pool is closed")]
    Closed,
}

impl From<argon2::Error> for HashError {
    fn from(err: argon2::Error) -> Self {
        Self::Argon2(err.to_string())
    }
}

impl From<argon2::password_hash::phc::Error> for HashError {
    fn from(err: argon2::password_hash::phc::Error) -> Self {
        Self::Argon2(err.to_string())
    }
}

impl From<argon2::password_hash::Error> for HashError {
    fn from(err: argon2::password_hash::Error) -> Self {
        Self::Argon2(err.to_string())
    }
}

/// A hashing job: runs on one of the hashing threads, in that thread's buffer.
type Job = Box<dyn FnOnce(&mut [Block]) + Send>;

/// Runs Argon2id (the crate's defaults: m=19456 KiB, t=2, p=1) on threads of
/// its own, `permits` of them, so a login flood queues instead of swamping
/// the machine.
///
/// The threads run at the lowest CPU priority: token checks on the same
/// cores stay fast while a login flood keeps them busy, and logins get
/// whatever CPU is left. They are not tokio's blocking threads, because a
/// nice value sticks to its thread: a WAL checkpoint or anything else later
/// run on a lowered blocking thread would crawl behind the flood too.
///
/// Each running hash needs 19 MiB of working memory. Allocating it per call
/// leaves the allocator holding freed chunks in every thread's arena (hundreds
/// of MiB under a login flood), so each thread keeps one buffer for good.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    jobs: mpsc::Sender<Job>,
    /// Verified against when the user does not exist, so timing tells nothing.
    dummy_hash: Arc<str>,
}

impl Hasher {
    pub fn new(permits: usize) -> Result<Self, HashError> {
        let permits = permits.max(1);
        let mut first = new_buffer();
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).map_err(|e| HashError::Argon2(e.to_string()))?;
        let dummy_hash = hash_into(&mut first, &random)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let mut first = Some(first);
        for n in 0..permits {
            let queue = queue.clone();
            let buffer = first.take();
            std::thread::Builder::new()
                .name(format!("argon2-hash-{n}"))
                .spawn(move || work_through(&queue, buffer))
                .map_err(HashError::Spawn)?;
        }
        Ok(Self {
            permits: Arc::new(Semaphore::new(permits)),
            jobs,
            dummy_hash: dummy_hash.into(),
        })
    }

    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move |blocks| hash_into(blocks, password.as_bytes()))
            .await
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
            .run(move |blocks| verify_into(blocks, password.as_bytes(), &hash))
            .await?;
        Ok(exists && matched)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut [Block]) -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        // The permit moves into the job: a dropped request can't free it
        // early, and no more jobs wait in the queue than there are threads.
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::Closed)?;
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |blocks| {
            let _permit = permit;
            let _ = answer.send(work(blocks));
        });
        self.jobs.send(job).map_err(|_| HashError::Closed)?;
        answered.await.map_err(|_| HashError::Lost)?
    }
}

/// A hashing thread: lowers its own priority, then runs jobs until every
/// `Hasher` is gone. A job that panics loses its answer, not the thread.
fn work_through(queue: &Mutex<mpsc::Receiver<Job>>, buffer: Option<Vec<Block>>) {
    lower_priority();
    let mut blocks = buffer.unwrap_or_else(new_buffer);
    loop {
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else {
            return;
        };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut blocks)));
    }
}

/// The lowest CPU priority for the calling thread (on Linux the nice value
/// is per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its integer arguments; who = 0 is the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

fn new_buffer() -> Vec<Block> {
    vec![Block::default(); Params::default().block_count()]
}

/// What `Argon2::hash_password` does, in `blocks` instead of fresh memory.
fn hash_into(blocks: &mut [Block], password: &[u8]) -> Result<String, HashError> {
    let params = Params::default();
    let salt = Salt::generate();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let memory = blocks
        .get_mut(..params.block_count())
        .ok_or(HashError::Argon2("hash buffer too small".into()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, salt.as_ref(), &mut out, memory)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt),
        hash: Some(Output::new(&out)?),
    };
    Ok(phc.to_string())
}

/// What `Argon2::verify_password` does: recompute with the stored algorithm,
/// version, parameters and salt, then compare outputs in constant time
/// (`Output`'s `PartialEq`), in `blocks` when they are large enough.
fn verify_into(blocks: &mut [Block], password: &[u8], stored: &str) -> Result<bool, HashError> {
    let phc = PasswordHash::new(stored).map_err(|_| HashError::BadStoredHash)?;
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else {
        return Err(HashError::BadStoredHash);
    };
    let algorithm = Algorithm::try_from(phc.algorithm.as_str())?;
    let version = phc
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let params = Params::try_from(&phc).map_err(|e| HashError::Argon2(e.to_string()))?;
    let needed = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    match blocks.get_mut(..needed) {
        Some(memory) => {
            argon2.hash_password_into_with_memory(password, salt.as_ref(), &mut out, memory)?
        }
        // A hash stored with a larger memory cost than ours: let the crate allocate.
        None => argon2.hash_password_into(password, salt.as_ref(), &mut out)?,
    }
    Ok(Output::new(&out)? == *expected)
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

    /// The nice value of the calling thread.
    fn nice() -> i32 {
        // SAFETY: getpriority only reads its integer arguments.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn hashing_leaves_the_blocking_threads_at_their_priority() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(1)
            .build()
            .unwrap();
        let base = nice();
        runtime.block_on(async {
            let hasher = Hasher::new(1).unwrap();
            hasher.hash("correct horse".into()).await.unwrap();
            let hashing = hasher.run(|_| Ok(nice())).await.unwrap();
            let blocking = tokio::task::spawn_blocking(nice).await.unwrap();
            assert_eq!((hashing, blocking), (19, base));
        });
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        let hasher = Hasher::new(1).unwrap();
        assert!(!hasher.verify("anything".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn agrees_with_the_crate_both_ways() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = Hasher::new(1).unwrap();
        // Ours verifies with the crate...
        let ours = hasher.hash("pässwörd 🙂".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password("pässwörd 🙂".as_bytes(), &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"password", &parsed)
                .is_err()
        );
        // ...and the crate's, including other parameters, verify with ours.
        let crates = Argon2::default()
            .hash_password(b"hunter2hunter2")
            .unwrap()
            .to_string();
        assert!(
            hasher
                .verify("hunter2hunter2".into(), Some(crates.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("hunter2hunter3".into(), Some(crates))
                .await
                .unwrap()
        );
        let bigger = Params::new(32 * 1024, 1, 1, None).unwrap();
        let big = Argon2::new(Algorithm::Argon2id, Version::V0x13, bigger)
            .hash_password(b"big memory")
            .unwrap()
            .to_string();
        assert!(hasher.verify("big memory".into(), Some(big)).await.unwrap());
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
