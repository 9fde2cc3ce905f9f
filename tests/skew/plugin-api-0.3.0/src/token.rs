//! Flow-token keys: generation, hashing and constant-time comparison.
//!
//! Hosts store only [`hash_key`] of a key. The executor hashes the `flow_token` query
//! parameter the same way and looks the hash up.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Lowercase hex SHA-256 of a string's UTF-8 bytes.
pub fn sha256_hex(input: &str) -> String {
    let digest = Sha256::digest(input.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        out.push(char::from(b"0123456789abcdef"[(b >> 4) as usize]));
        out.push(char::from(b"0123456789abcdef"[(b & 15) as usize]));
    }
    out
}

/// The stored form of a token key.
pub fn hash_key(key: &str) -> String {
    sha256_hex(key)
}

/// Compares two strings in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Builds a key of `len` characters over `[A-Za-z0-9]` from random bytes with
/// rejection sampling (no modulo bias). `fill` supplies CSPRNG bytes.
///
/// Each character carries log2(62) ≈ 5.95 bits: 60 characters ≈ 357 bits; the
/// minimum accepted length, 22, gives 130 bits.
pub fn generate_key<E>(
    len: usize,
    mut fill: impl FnMut(&mut [u8]) -> Result<(), E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill(&mut buf)?;
        for &b in buf.iter() {
            // 248 = 4 * 62: values at or above are rejected to keep the distribution uniform.
            if b < 248 {
                out.push(char::from(ALPHABET[(b % 62) as usize]));
                if out.len() == len {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// Smallest key length giving at least 128 bits of entropy over 62 symbols.
pub const MIN_KEY_LEN: usize = 22;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_key(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn ct_eq() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }

    #[test]
    fn key_alphabet_and_length() {
        let mut n = 0u8;
        let k = generate_key::<()>(60, |b| {
            for x in b.iter_mut() {
                *x = n;
                n = n.wrapping_add(1);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(k.len(), 60);
        assert!(k.chars().all(|c| c.is_ascii_alphanumeric()));
        // bytes 248..=255 are rejected, so the 60 characters come from 0..60.
        assert!(k.starts_with("ABCDEFGHIJ"));
    }

    #[test]
    fn entropy_floor() {
        assert!((MIN_KEY_LEN as f64) * 62f64.log2() >= 128.0);
        assert!(((MIN_KEY_LEN - 1) as f64) * 62f64.log2() < 128.0);
    }
}
