//! Digests: short in-memory fingerprints for finding duplicates, and hexadecimal for the digests
//! that stand in Message-IDs, boundaries and the ledger.
//!
//! Pure functions of their input; nothing here is secret or random.

use std::hash::{Hash as _, Hasher as _};

/// A short fingerprint of a value, for finding duplicates without keeping every value.
pub fn fingerprint(value: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// Bytes as lower-case hexadecimal, for digests in identifiers and the ledger.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
