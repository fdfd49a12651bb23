//! Identifiers: request IDs (unique and cheap, not secret) and random tokens (unguessable).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

const HEX: &[u8; 16] = b"0123456789abcdef";

fn csprng<const N: usize>() -> Option<[u8; N]> {
    use aws_lc_rs::rand::SecureRandom;
    let mut b = [0u8; N];
    aws_lc_rs::rand::SystemRandom::new().fill(&mut b).ok()?;
    Some(b)
}

fn hex_into(bytes: &[u8], out: &mut Vec<u8>) {
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0x0f)]);
    }
}

/// 128 bits from the system's CSPRNG, as 32 hex digits: for nonces, state, PKCE verifiers,
/// authorization codes, SAML request IDs. `None` if the generator fails: callers refuse then,
/// never fall back to a predictable value.
pub fn random_token() -> Option<String> {
    Some(hex(&csprng::<16>()?))
}

/// Bytes as lower-case hex digits.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    hex_into(bytes, &mut out);
    // Hex digits are ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// SplitMix64's finalizer: a bijection on u64 that spreads every input bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A request ID shaped like a UUID v4. Unique within the process (a counter), and spread by a
/// per-process random key so that instances do not collide. Not secret: it is logged and sent
/// upstream, so it is never used as a credential. A CSPRNG call per request cost more than the
/// rest of the ID handling together.
pub fn request_id() -> String {
    static KEY: OnceLock<[u64; 2]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let key = KEY.get_or_init(|| {
        // Not secret: a failed generator leaves IDs unique within the process, by the counter.
        let b = csprng::<16>().unwrap_or_default();
        let word = |i: usize| {
            u64::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7]])
        };
        [word(0), word(8)]
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&mix(key[0] ^ n).to_be_bytes());
    b[8..].copy_from_slice(&mix(key[1].wrapping_add(n)).to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut out = Vec::with_capacity(36);
    for (i, range) in [0..4, 4..6, 6..8, 8..10, 10..16].into_iter().enumerate() {
        if i > 0 {
            out.push(b'-');
        }
        hex_into(&b[range], &mut out);
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uuid_v4_shaped_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(50) {
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{id}");
            assert!(parts[2].starts_with('4') && "89ab".contains(&parts[3][..1]), "{id}");
        }
    }

    #[test]
    fn random_tokens_are_32_hex_digits_and_differ() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert!(a.len() == 32 && a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
