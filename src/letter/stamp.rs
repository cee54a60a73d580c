//! Stamps: the letter date in Danish style, Sags nr., each letter's Akt-id and Message-ID.
//!
//! Stamps are a pure function of the config, the row and the date they are given; once a letter has
//! gone out, its stamps are frozen in the ledger and read back from there instead. This module
//! never reads the clock, the disk or the ledger.

use chrono::{Datelike, NaiveDate};
use sha2::{Digest, Sha256};

/// The stamps one letter carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub letter_date: NaiveDate,
    pub sags_nr: String,
    pub akt_id: String,
    /// Without angle brackets: `1286555.101.3f2a...@uim.dk`.
    pub message_id: String,
}

impl Stamp {
    /// The date as printed on the letter: "29. juni 2020".
    pub(crate) fn letter_date_text(&self) -> String {
        danish_date(self.letter_date)
    }
}

const MONTHS: [&str; 12] = [
    "januar",
    "februar",
    "marts",
    "april",
    "maj",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "december",
];

/// A date written the Danish way, as on the model letter: "29. juni 2020", "1. marts 2021".
pub(crate) fn danish_date(d: NaiveDate) -> String {
    format!("{}. {} {}", d.day(), MONTHS[d.month0() as usize], d.year())
}

/// The number after `n`, keeping its width: "0099" → "0100", "1286555" → "1286556".
pub(crate) fn next_number(n: &str) -> String {
    let mut digits: Vec<u8> = n.bytes().collect();
    for d in digits.iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return String::from_utf8(digits).unwrap_or_default();
        }
    }
    let mut out = String::from("1");
    out.push_str(&String::from_utf8(digits).unwrap_or_default());
    out
}

/// A Message-ID that is the same every time the same letter is made: it depends only on the
/// campaign, the recipient's key and the Akt-id, and sits on the sender's domain.
pub(crate) fn message_id(campaign: &str, key: &str, akt_id: &str, domain: &str) -> String {
    let mut h = Sha256::new();
    for part in [campaign, key, akt_id] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    let hex = crate::digest::hex(&digest[..8]);
    format!(
        "rundbrev.{}.{}.{}.{hex}@{domain}",
        safe_token(campaign),
        safe_token(akt_id),
        safe_token(key)
    )
}

/// A value as it may stand in a Message-ID or a file name: ASCII letters, digits and '-' stay,
/// anything else becomes '_'.
pub(crate) fn safe_token(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_letters_date_is_written_as_on_the_letter() {
        let d = NaiveDate::from_ymd_opt(2020, 6, 29).unwrap();
        assert_eq!(danish_date(d), "29. juni 2020");
        assert_eq!(
            danish_date(NaiveDate::from_ymd_opt(2021, 3, 1).unwrap()),
            "1. marts 2021"
        );
        assert_eq!(
            danish_date(NaiveDate::from_ymd_opt(2026, 12, 31).unwrap()),
            "31. december 2026"
        );
    }

    #[test]
    fn akt_id_keeps_leading_zeros_when_numbered_on() {
        assert_eq!(next_number("0099"), "0100");
        assert_eq!(next_number("999"), "1000");
    }

    #[test]
    fn message_id_is_deterministic_and_differs_per_letter() {
        let a = message_id("c", "101", "1", "uim.dk");
        assert_eq!(a, message_id("c", "101", "1", "uim.dk"));
        assert_ne!(a, message_id("c", "147", "1", "uim.dk"));
        assert_ne!(a, message_id("d", "101", "1", "uim.dk"));
        assert!(a.ends_with("@uim.dk"));
        assert!(a.starts_with("rundbrev.c.1.101."));
    }
}
