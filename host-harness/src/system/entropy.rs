//! Randomness as the host sees it: the operating system's generator behind a trait,
//! so a failing generator can be injected and is answered with an error, never a
//! panic.

/// The generator failed; nothing random may be handed out.
#[derive(Debug, Clone, thiserror::Error)]
#[error("operating system randomness unavailable: {0}")]
pub struct EntropyError(pub String);

/// A cryptographically secure source of random bytes.
pub trait Entropy: Send + Sync {
    /// Fills `buf` entirely, or fails without handing out a partial value.
    fn fill(&self, buf: &mut [u8]) -> Result<(), EntropyError>;
}

/// The operating system's generator (`getrandom`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemEntropy;

impl Entropy for SystemEntropy {
    fn fill(&self, buf: &mut [u8]) -> Result<(), EntropyError> {
        getrandom::fill(buf).map_err(|e| EntropyError(e.to_string()))
    }
}

/// `bytes` random bytes as lowercase hex.
pub fn hex(entropy: &dyn Entropy, bytes: usize) -> Result<String, EntropyError> {
    let mut b = vec![0u8; bytes];
    entropy.fill(&mut b)?;
    Ok(hex::encode(b))
}

/// A random version-4 UUID, hyphenated.
pub fn uuid4(entropy: &dyn Entropy) -> Result<String, EntropyError> {
    let mut b = [0u8; 16];
    entropy.fill(&mut b)?;
    Ok(uuid::Builder::from_random_bytes(b)
        .into_uuid()
        .hyphenated()
        .to_string())
}
