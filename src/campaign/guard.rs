//! The guard: what must be refused before a run writes or sends anything.
//!
//! It looks at every letter during the check pass (so the recipients file is not read again for
//! it) and remembers only the offenders: a key given to `--only` that is not in the file, a
//! placeholder address that SMTP cannot deliver to, a row that changed after its letter went out,
//! and an address that already has the letter under another key. `verdict` then turns them into
//! one plain refusal. It decides; it never prints, writes or sends.

use std::collections::HashMap;

use anyhow::{bail, Result};

use crate::campaign::{Letter, Prepared};
use crate::problem::{Problem, Problems};
use crate::record::ledger::{Frozen, Ledger, State};
use crate::sanitize::printable;

/// What the guard is asked to look for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Watch {
    /// The keys named by `--only` (empty: all letters may go).
    pub only: Vec<String>,
    /// The letters go over SMTP, so addresses on reserved domains cannot be delivered.
    pub smtp: bool,
    /// The campaign's frozen stamps: rows of letters already sent must not have changed.
    pub frozen: Option<Frozen>,
    /// Changes were accepted with `--accept-changes`.
    pub accept_changes: bool,
    /// Test domains the user allows over SMTP (`transport.smtp.allow_test_domains`).
    pub allowed_test_domains: Vec<String>,
}

/// Collects offenders while the letters stream by.
pub(crate) struct Guard {
    watch: Watch,
    /// Addresses (fingerprinted, lower case) that have or may have the letter, and their key.
    reached: HashMap<u64, String>,
    found_only: Vec<bool>,
    placeholders: Vec<(u64, String, String)>,
    /// Keys and rows of letters already sent whose row has changed.
    changed_rows: Vec<(String, u64)>,
    /// Address, row, key and the other key it has the letter under.
    twice: Vec<(String, u64, String, String)>,
}

impl Guard {
    /// A guard for this run; `ledger` (when the campaign has one) tells who was reached.
    pub(crate) fn new(watch: Watch, ledger: Option<&Ledger>) -> Result<Guard> {
        let reached = match ledger {
            Some(l) => l.reached()?,
            None => HashMap::new(),
        };
        Ok(Guard {
            found_only: vec![false; watch.only.len()],
            watch,
            reached,
            placeholders: Vec::new(),
            changed_rows: Vec::new(),
            twice: Vec::new(),
        })
    }

    /// Looks at one letter, with what the ledger has recorded for it.
    pub(crate) fn see(&mut self, letter: &Letter) {
        let selected = self.watch.only.is_empty() || self.watch.only.contains(&letter.key);
        for (i, key) in self.watch.only.iter().enumerate() {
            if *key == letter.key {
                self.found_only[i] = true;
            }
        }
        if self.watch.smtp
            && selected
            && is_reserved(&letter.to.email, &self.watch.allowed_test_domains)
            && letter.state() != State::Delivered
        {
            self.placeholders
                .push((letter.line, letter.to.email.clone(), letter.to.name.clone()));
        }
        if self.watch.frozen.is_some() && letter.row_changed_since_sent() {
            self.changed_rows.push((letter.key.clone(), letter.line));
        }
        if !self.reached.is_empty() {
            let address = crate::digest::fingerprint(&letter.to.email.to_lowercase());
            if let Some(other) = self.reached.get(&address).filter(|k| **k != letter.key) {
                self.twice.push((
                    letter.to.email.clone(),
                    letter.line,
                    letter.key.clone(),
                    other.clone(),
                ));
            }
        }
    }

    /// Everything that forbids the run, as one error; `Ok` when the run may go ahead.
    pub(crate) fn verdict(self, p: &Prepared, ledger: Option<&Ledger>) -> Result<()> {
        if let Some((key, _)) = self
            .watch
            .only
            .iter()
            .zip(&self.found_only)
            .find(|(_, found)| !**found)
        {
            bail!(
                "--only: there is no recipient with {} \"{key}\" in {}",
                p.config.recipients.key,
                p.table.file.display()
            );
        }
        let problems = self.placeholder_problems(p);
        if !problems.is_empty() {
            return Err(Problems(problems).into());
        }
        if let Some(f) = &self.watch.frozen {
            let mut changes = setting_changes(p, f);
            if !self.changed_rows.is_empty() {
                changes.push(format!(
                    "the recipients file has changed for recipients who were already sent a letter: {}",
                    self.changed_rows
                        .iter()
                        .map(|(key, line)| format!("{key} ({})", p.table.row_name(*line)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if !changes.is_empty() && !self.watch.accept_changes {
                let sent = match ledger {
                    Some(l) => l.records()?.iter().filter(|r| r.attempts > 0).count(),
                    None => 0,
                };
                bail!(
                    "refusing to send: {} since the first letters went out ({sent} recipient(s) already sent to, first on {}), so the remaining recipients would get a different letter:\n  - {}\nUndo the change, or pass --accept-changes if the difference is intended.",
                    if changes.len() == 1 { "something changed" } else { "things changed" },
                    f.frozen_at,
                    changes.join("\n  - ")
                );
            }
        }
        // An address that has (or may have) the letter under another key must not get it
        // again: a key changed in the file (Excel drops leading zeros) would otherwise look like
        // a new recipient.
        if !self.twice.is_empty() {
            bail!(
                "refusing to send: these addresses have, or may have, the letter under another {} in the ledger:\n  - {}\nIf a key was changed in {}, change it back.",
                p.config.recipients.key,
                self.twice
                    .iter()
                    .map(|(email, line, key, other)| format!(
                        "{} ({}, {}) already has the letter as {other}",
                        printable(email),
                        p.table.row_name(*line),
                        printable(key),
                    ))
                    .collect::<Vec<_>>()
                    .join("\n  - "),
                p.shown(&p.config.recipients.file).display()
            );
        }
        Ok(())
    }

    /// Placeholder addresses that SMTP must refuse, each with its row, and the copies' addresses.
    fn placeholder_problems(&self, p: &Prepared) -> Vec<Problem> {
        let mut problems: Vec<Problem> = self
            .placeholders
            .iter()
            .map(|(line, email, name)| {
                p.table.at(
                    Problem::new(
                        &p.table.file,
                        format!(
                            "{email} is a placeholder on a reserved domain and cannot receive mail; put {name}'s real address in the file before sending by SMTP (for a test relay, name its test domain in transport.smtp.allow_test_domains)"
                        ),
                    ),
                    *line,
                    Some(p.cols.email),
                )
            })
            .collect();
        if self.watch.smtp {
            for (kind, addr) in p.envelope.copies() {
                if is_reserved(&addr, &self.watch.allowed_test_domains) {
                    problems.push(
                        Problem::new(
                            &p.shown(&p.config.path),
                            format!(
                                "the {kind} address {addr} is on a reserved domain and cannot receive mail"
                            ),
                        )
                        .at_key(if kind == "Cc" { "sender.cc" } else { "sender.bcc" }),
                    );
                }
            }
        }
        problems
    }
}

/// The template and settings that changed since the stamps were frozen.
fn setting_changes(p: &Prepared, frozen: &Frozen) -> Vec<String> {
    let mut changes = Vec::new();
    if frozen.template_hash != p.template_hash {
        changes.push(format!(
            "the letter template {} has changed",
            p.shown(&p.config.template).display()
        ));
    }
    if frozen.content_hash != p.content_hash {
        let before: Vec<&str> = frozen.content_desc.lines().collect();
        for line in p.content_desc.lines() {
            if !before.contains(&line) {
                let key = line.split(" = ").next().unwrap_or(line);
                if let Some(file) = key.strip_prefix(crate::campaign::enclosures::FILE_KEY) {
                    // A file first used now (a new recipient's attachment) is no change; one
                    // whose content differs from what earlier letters carried is.
                    let was = format!("{key} = ");
                    if before.iter().any(|l| l.starts_with(&was)) {
                        changes.push(format!("the file {file} has changed"));
                    }
                    continue;
                }
                changes.push(format!(
                    "the setting `{key}` has changed in {}",
                    p.shown(&p.config.path).display()
                ));
            }
        }
    }
    changes
}

/// Domains reserved for examples and tests (RFC 2606, RFC 6761): mail to them cannot arrive,
/// except on a test relay for the domains the user named in `allow_test_domains` (a domain
/// there also allows its subdomains). `.invalid` is never allowed: it marks placeholders.
pub(crate) fn is_reserved(address: &str, allowed: &[String]) -> bool {
    let domain = address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or(address)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let under = |d: &str, parent: &str| d == parent || d.ends_with(&format!(".{parent}"));
    if under(&domain, "invalid") {
        return true;
    }
    if allowed.iter().any(|a| under(&domain, a)) {
        return false;
    }
    let tld_reserved = ["invalid", "example", "test", "localhost"]
        .iter()
        .any(|t| domain == *t || domain.ends_with(&format!(".{t}")));
    let example = ["example.com", "example.net", "example.org"]
        .iter()
        .any(|d| domain == *d || domain.ends_with(&format!(".{d}")));
    tld_reserved || example
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_domains_are_recognised() {
        for a in [
            "a@kk.dk.invalid",
            "x@example.com",
            "x@mail.example.org",
            "x@foo.test",
            "x@localhost",
            "x@b.example",
        ] {
            assert!(is_reserved(a, &[]), "{a}");
        }
        for a in [
            "kommunen@fredericia.dk",
            "x@example.dk",
            "x@notexample.com",
            "x@testing.dk",
        ] {
            assert!(!is_reserved(a, &[]), "{a}");
        }
    }

    #[test]
    fn named_test_domains_are_allowed_but_invalid_never() {
        let allowed = vec!["kommuner.test".to_owned(), "invalid".to_owned()];
        assert!(!is_reserved("post@kommuner.test", &allowed));
        assert!(!is_reserved("post@aeroe.kommuner.test", &allowed));
        assert!(is_reserved("post@andre.test", &allowed));
        assert!(is_reserved("post@kk.dk.invalid", &allowed));
    }
}
