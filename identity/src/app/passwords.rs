//! Password and secret hashing with argon2id, off the async threads.
//!
//! Hashes run on a small pool of dedicated threads, one per core, each with its own
//! scratch memory (`memory_kib`) allocated once and reused: allocating and freeing
//! 19 MiB per login leaves the allocator holding hundreds of MiB under load. Hashes
//! are standard PHC strings (`$argon2id$v=19$m=...`). An unknown user is checked
//! against a fixed dummy hash, so it costs the same as a wrong password.

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine as _;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

enum Job {
    Hash { secret: String, reply: oneshot::Sender<anyhow::Result<String>> },
    Verify { secret: String, hash: String, reply: oneshot::Sender<bool> },
}

pub struct Passwords {
    jobs: Mutex<mpsc::Sender<Job>>,
    dummy_hash: String,
}

impl Passwords {
    pub fn new(memory_kib: u32, iterations: u32) -> anyhow::Result<Self> {
        let params =
            Params::new(memory_kib, iterations, 1, None).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let dummy_hash = Scratch::default().hash(&params, "stratus-dummy-password")?;
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..cores {
            let (rx, params) = (rx.clone(), params.clone());
            std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
                let mut scratch = Scratch::default();
                loop {
                    let job = match rx.lock().unwrap().recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    };
                    match job {
                        Job::Hash { secret, reply } => {
                            let _ = reply.send(scratch.hash(&params, &secret));
                        }
                        Job::Verify { secret, hash, reply } => {
                            let _ = reply.send(scratch.verify(&secret, &hash));
                        }
                    }
                }
            })?;
        }
        Ok(Self { jobs: Mutex::new(tx), dummy_hash })
    }

    pub async fn hash(&self, secret: &str) -> anyhow::Result<String> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .lock()
            .unwrap()
            .send(Job::Hash { secret: secret.to_string(), reply })
            .map_err(|_| anyhow::anyhow!("hashing threads are gone"))?;
        rx.await?
    }

    /// Whether `secret` matches `hash`; with no hash, does the same work and says no.
    pub async fn verify(&self, secret: &str, hash: Option<&str>) -> bool {
        let (hash, real) = match hash {
            Some(h) => (h.to_string(), true),
            None => (self.dummy_hash.clone(), false),
        };
        let (reply, rx) = oneshot::channel();
        if self.jobs.lock().unwrap().send(Job::Verify { secret: secret.to_string(), hash, reply }).is_err() {
            return false;
        }
        rx.await.unwrap_or(false) && real
    }
}

/// One thread's reusable argon2 working memory.
#[derive(Default)]
struct Scratch {
    blocks: Vec<Block>,
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

impl Scratch {
    fn compute(
        &mut self,
        algorithm: Algorithm,
        params: &Params,
        secret: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> anyhow::Result<()> {
        let need = params.block_count();
        if self.blocks.len() != need {
            self.blocks = vec![Block::default(); need];
        }
        Argon2::new(algorithm, Version::V0x13, params.clone())
            .hash_password_into_with_memory(secret, salt, out, &mut self.blocks[..])
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    }

    fn hash(&mut self, params: &Params, secret: &str) -> anyhow::Result<String> {
        let salt: [u8; 16] = rand::random();
        let mut out = [0u8; 32];
        self.compute(Algorithm::Argon2id, params, secret.as_bytes(), &salt, &mut out)?;
        Ok(format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            params.m_cost(),
            params.t_cost(),
            params.p_cost(),
            B64.encode(salt),
            B64.encode(out)
        ))
    }

    fn verify(&mut self, secret: &str, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else { return false };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else { return false };
        let Ok(params) = Params::try_from(&parsed) else { return false };
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
        let Ok(salt) = B64.decode(salt.as_str()) else { return false };
        let expected = expected.as_bytes();
        let mut out = vec![0u8; expected.len()];
        if self.compute(algorithm, &params, secret.as_bytes(), &salt, &mut out).is_err() {
            return false;
        }
        // Constant time: look at every byte whatever the first difference.
        out.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_match() {
        let p = Passwords::new(1024, 1).unwrap();
        let h = p.hash("s3cret").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(p.verify("s3cret", Some(&h)).await);
        assert!(!p.verify("wrong", Some(&h)).await);
        assert!(!p.verify("stratus-dummy-password", None).await);
    }

    #[test]
    fn hashes_are_standard_phc_strings() {
        use argon2::password_hash::PasswordVerifier;
        let params = Params::new(1024, 1, 1, None).unwrap();
        let h = Scratch::default().hash(&params, "pw").unwrap();
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(Argon2::default().verify_password(b"pw", &parsed).is_ok(), "the argon2 crate accepts our hashes");
        assert!(!Scratch::default().verify("pw", "not a hash"));
    }
}
