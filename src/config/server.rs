//! What the two mail server sections, `[transport.smtp]` and `[receipts.imap]`, have in common:
//! the same defaults, one TLS pin or a list of them, and one rule for the host name check.
//!
//! Both sections are checked by these helpers, so that both refuse a bad setting in the same words
//! under their own key. This module connects to nothing and knows nothing else of either section.

use serde::Deserialize;

use super::Fingerprint;

/// A setting that takes one string or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// The strings given, none when the key is left out.
    pub(super) fn strings(given: Option<OneOrMany>) -> Vec<String> {
        match given {
            None => Vec::new(),
            Some(OneOrMany::One(text)) => vec![text],
            Some(OneOrMany::Many(list)) => list,
        }
    }
}

pub(super) fn default_true() -> bool {
    true
}

pub(super) fn default_security() -> String {
    "starttls".into()
}
pub(super) fn default_connect_timeout() -> u64 {
    30
}
pub(super) fn default_command_timeout() -> u64 {
    60
}

/// A mail server's `tls_pin_sha256` (`pin_texts`, one or several) and the rule that
/// `tls_check_host_name` is turned off only together with a pin, the same for every server:
/// `section` names the keys in problems ("transport.smtp"), `copy_from` says where the user
/// finds the fingerprint to copy. The pins that could be read.
pub(super) fn tls_pins(
    section: &str,
    pin_texts: &[String],
    check_host_name: bool,
    copy_from: &str,
    bad: &mut impl FnMut(&str, String),
) -> Vec<Fingerprint> {
    let pin_key = format!("{section}.tls_pin_sha256");
    let mut pins = Vec::new();
    for text in pin_texts {
        match Fingerprint::parse(text.trim()) {
            Ok(pin) => pins.push(pin),
            Err(why) => bad(&pin_key, format!("{why}; copy {copy_from}")),
        }
    }
    if !check_host_name && pin_texts.is_empty() {
        bad(
            &format!("{section}.tls_check_host_name"),
            "can only be turned off together with tls_pin_sha256: without a pin, any trusted certificate for any host would do".into(),
        );
    }
    pins
}

/// What to say about a mail server's TLS settings on every run: the host name check turned off.
pub(super) fn tls_warnings(check_host_name: bool, host: &str) -> Vec<String> {
    let mut out = Vec::new();
    if !check_host_name {
        out.push(format!(
            "the server's host name is not checked against its certificate (tls_check_host_name = false); only the pinned certificate is trusted, so keep its private key on {host} only"
        ));
    }
    out
}
