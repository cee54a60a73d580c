//! Digests: short in-memory fingerprints for finding duplicates, and hexadecimal for the digests
//! that stand in Message-IDs, boundaries and the ledger.
//!
//! `Repeats` finds values that occur more than once, exactly, in 8 bytes per value: a first pass
//! keeps one fingerprint per value, and only values whose fingerprint came up more than once are
//! compared as themselves in a second pass (`Exact`), so a fingerprint collision is never reported
//! as a duplicate. Pure functions of their input; nothing here reads files, is secret or random.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash as _, Hasher as _};

/// A short fingerprint of a value, for finding duplicates without keeping every value.
pub(crate) fn fingerprint(value: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// Bytes as lower-case hexadecimal, for digests in identifiers and the ledger.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// The first pass of an exact duplicate search: one fingerprint per value seen.
#[derive(Debug, Default)]
pub(crate) struct Repeats {
    seen: Vec<u64>,
}

impl Repeats {
    pub(crate) fn add(&mut self, value: &str) {
        self.seen.push(fingerprint(value));
    }

    /// What the second pass must look at; `None` when no value can occur twice (the usual case,
    /// which needs no second pass).
    pub(crate) fn suspects(mut self) -> Option<Exact> {
        self.seen.sort_unstable();
        let twice: HashSet<u64> = self
            .seen
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect();
        (!twice.is_empty()).then(|| Exact {
            suspects: twice,
            first: HashMap::new(),
        })
    }
}

/// The second pass: compares only the values whose fingerprint came up more than once.
#[derive(Debug)]
pub(crate) struct Exact {
    suspects: HashSet<u64>,
    first: HashMap<String, u64>,
}

impl Exact {
    /// The line `value` was first seen on, when it was seen before (exactly this value).
    pub(crate) fn again(&mut self, value: &str, line: u64) -> Option<u64> {
        if !self.suspects.contains(&fingerprint(value)) {
            return None;
        }
        match self.first.get(value) {
            Some(first) => Some(*first),
            None => {
                self.first.insert(value.to_string(), line);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repeated(values: &[&str]) -> Vec<(usize, u64)> {
        let mut repeats = Repeats::default();
        values.iter().for_each(|v| repeats.add(v));
        let Some(mut exact) = repeats.suspects() else {
            return Vec::new();
        };
        values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| exact.again(v, i as u64 + 2).map(|first| (i, first)))
            .collect()
    }

    #[test]
    fn hex_is_two_lower_case_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff, 0x10]), "000fa5ff10");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn a_value_listed_twice_is_found_with_the_line_it_was_first_on() {
        assert_eq!(
            repeated(&["101", "147", "101", "101"]),
            vec![(2, 2), (3, 2)]
        );
        assert!(repeated(&["101", "147", "151"]).is_empty());
    }

    #[test]
    fn the_second_pass_compares_the_values_themselves() {
        // As if "a" and "b" had come up twice: only the value seen again counts.
        let mut exact = Exact {
            suspects: [fingerprint("a"), fingerprint("b")].into_iter().collect(),
            first: HashMap::new(),
        };
        assert_eq!(exact.again("a", 2), None);
        assert_eq!(exact.again("b", 3), None);
        assert_eq!(exact.again("a", 4), Some(2));
    }
}
