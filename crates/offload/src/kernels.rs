//! The built-in kernels: CPU work worth a trip to another core, each checking for cancellation
//! between chunks, so that a cancelled job stops within about a millisecond of work.
//!
//! `mioloop.offload` exposes them to Python (`sha256`, `crc32`, `compress`, `count_primes`).

use crate::{Cancel, Cancelled};
use sha2::Digest;
use std::io::Write;

/// How much input a kernel processes between two looks at its [`Cancel`] flag (≈ 0.1–1 ms of work).
pub const CHUNK: usize = 256 * 1024;

/// The SHA-256 digest of `data` (SHA-NI instructions when the CPU has them).
pub fn sha256(data: &[u8], cancel: &Cancel) -> Result<[u8; 32], Cancelled> {
    let mut hasher = sha2::Sha256::new();
    for chunk in data.chunks(CHUNK) {
        cancel.check()?;
        hasher.update(chunk);
    }
    Ok(hasher.finalize().into())
}

/// The CRC-32 (IEEE, as `zlib.crc32`) of `data`.
pub fn crc32(data: &[u8], cancel: &Cancel) -> Result<u32, Cancelled> {
    let mut hasher = crc32fast::Hasher::new();
    for chunk in data.chunks(CHUNK) {
        cancel.check()?;
        hasher.update(chunk);
    }
    Ok(hasher.finalize())
}

/// `data` compressed in the zlib format (what `zlib.compress(data, level)` makes), `level` 0–9.
pub fn compress(data: &[u8], level: u32, cancel: &Cancel) -> Result<Vec<u8>, Cancelled> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level.min(9)));
    for chunk in data.chunks(CHUNK / 4) {
        cancel.check()?;
        encoder.write_all(chunk).expect("writing to a Vec cannot fail");
    }
    Ok(encoder.finish().expect("writing to a Vec cannot fail"))
}

/// How many primes are below `limit`: a segmented sieve of Eratosthenes, a pure CPU kernel whose
/// work grows with its size parameter (≈ `limit` bit operations, in `limit / 2^18` segments).
pub fn count_primes(limit: u64, cancel: &Cancel) -> Result<u64, Cancelled> {
    if limit <= 2 {
        return Ok(0);
    }
    // Primes up to √limit, by a plain sieve: they strike out the multiples in every segment.
    let root = (limit as f64).sqrt() as u64 + 1;
    let mut small = vec![true; root as usize + 1];
    let mut base = Vec::new();
    for n in 2..=root {
        if small[n as usize] {
            base.push(n);
            (n * n..=root).step_by(n as usize).for_each(|m| small[m as usize] = false);
        }
    }
    const SEGMENT: u64 = 1 << 18;
    let mut count = 0;
    let mut segment = vec![true; SEGMENT as usize];
    let mut low = 2;
    while low < limit {
        cancel.check()?;
        let high = (low + SEGMENT).min(limit);
        segment[..(high - low) as usize].fill(true);
        for &p in base.iter().take_while(|&&p| p * p < high) {
            let first = (p * p).max(low.div_ceil(p) * p);
            (first..high).step_by(p as usize).for_each(|m| segment[(m - low) as usize] = false);
        }
        count += segment[..(high - low) as usize].iter().filter(|&&prime| prime).count() as u64;
        low = high;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let cancel = Cancel::default();
        // FIPS 180-2's example: SHA-256("abc").
        let abc = sha256(b"abc", &cancel).unwrap();
        assert_eq!(abc[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(crc32(b"123456789", &cancel), Ok(0xcbf43926)); // the CRC-32 check value
        let expected = [(0, 0), (2, 0), (3, 1), (10, 4), (100, 25), (1_000_000, 78_498), (10_000_000, 664_579)];
        for (limit, primes) in expected {
            assert_eq!(count_primes(limit, &cancel), Ok(primes), "primes below {limit}");
        }
        let text = b"the same words, the same words, the same words".repeat(1000);
        let packed = compress(&text, 6, &cancel).unwrap();
        assert!(packed.len() < text.len() / 20);
        let mut unpacked = Vec::new();
        std::io::copy(&mut flate2::read::ZlibDecoder::new(&packed[..]), &mut unpacked).unwrap();
        assert_eq!(unpacked, text);
    }

    #[test]
    fn chunked_equals_whole() {
        let cancel = Cancel::default();
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i * 31 % 251) as u8).collect();
        let mut whole = sha2::Sha256::new();
        whole.update(&data);
        assert_eq!(sha256(&data, &cancel).unwrap(), <[u8; 32]>::from(whole.finalize()));
        assert_eq!(crc32(&data, &cancel).unwrap(), crc32fast::hash(&data));
    }

    #[test]
    fn a_set_flag_stops_every_kernel() {
        let cancel = Cancel::default();
        cancel.set();
        assert_eq!(sha256(&[0; 10], &cancel), Err(Cancelled));
        assert_eq!(crc32(&[0; 10], &cancel), Err(Cancelled));
        assert_eq!(compress(&[0; 10], 1, &cancel), Err(Cancelled));
        assert_eq!(count_primes(1_000, &cancel), Err(Cancelled));
    }
}
