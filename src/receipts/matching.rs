//! Which letter a message that came back is about, by keys in a fixed order: the ENVID with the
//! original recipient, the Message-ID of the returned letter, the relay's queue id, and last the
//! recipient's address within this campaign.
//!
//! Pure: the letters are given as a list, the message as `Understood`. Nothing is guessed: a
//! message that names a letter not in this campaign is never matched by a weaker key, an address
//! that had several letters is not matched by address, and a report about another address than
//! the one the letter went to (a copy, an earlier address) is not matched at all.

use std::collections::HashMap;

use crate::receipts::parse::{Reported, Understood};

/// One letter of the campaign as matching needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sent {
    pub key: String,
    /// The address the letter last went to.
    pub address: String,
    /// Without angle brackets.
    pub message_id: Option<String>,
    /// Queue ids from the relay's replies ("250 2.0.0 Ok: queued as 4dLx…").
    pub queue_ids: Vec<String>,
}

/// Which key made the match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum By {
    Envid,
    MessageId,
    QueueId,
    Address,
}

impl By {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            By::Envid => "envid",
            By::MessageId => "message-id",
            By::QueueId => "queue-id",
            By::Address => "address",
        }
    }
}

/// The outcome for one reported recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Match {
    Letter {
        index: usize,
        by: By,
    },
    /// Not matched; the reason in plain words.
    None(String),
}

/// The letters of a campaign, indexed by each key.
pub(crate) struct Letters<'a> {
    campaign: &'a str,
    sent: &'a [Sent],
    by_id: HashMap<String, usize>,
    by_queue: HashMap<String, Vec<usize>>,
    by_address: HashMap<String, Vec<usize>>,
}

impl<'a> Letters<'a> {
    /// `campaign` is the campaign's id, as it enters its Message-IDs.
    pub(crate) fn new(campaign: &'a str, sent: &'a [Sent]) -> Letters<'a> {
        let mut by_id = HashMap::new();
        let mut by_queue: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_address: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, s) in sent.iter().enumerate() {
            if let Some(id) = &s.message_id {
                by_id.insert(id.to_lowercase(), i);
                by_address
                    .entry(s.address.to_lowercase())
                    .or_default()
                    .push(i);
            }
            for q in &s.queue_ids {
                by_queue.entry(q.clone()).or_default().push(i);
            }
        }
        Letters {
            campaign,
            sent,
            by_id,
            by_queue,
            by_address,
        }
    }

    pub(crate) fn get(&self, index: usize) -> &Sent {
        &self.sent[index]
    }

    /// Matches one recipient of a message to a letter.
    pub(crate) fn find(&self, u: &Understood, r: &Reported) -> Match {
        // 1. ENVID, checked against the original (or final) recipient.
        if let Some(envid) = &u.envid {
            return match self.by_id.get(&envid.to_lowercase()) {
                Some(&i) => self.same_address(i, r, By::Envid),
                None => Match::None(self.not_ours("its envelope id", envid)),
            };
        }
        // 2. The Message-ID of the returned letter, or the letter a reply or receipt names.
        let ids: Vec<&String> = u
            .original_message_id
            .iter()
            .chain(u.references.iter())
            .collect();
        if !ids.is_empty() {
            if let Some(&i) = ids.iter().find_map(|id| self.by_id.get(&id.to_lowercase())) {
                return if u.kind().is_from_recipient() {
                    // A reply or receipt may come from another address at the municipality.
                    Match::Letter {
                        index: i,
                        by: By::MessageId,
                    }
                } else {
                    self.same_address(i, r, By::MessageId)
                };
            }
            if let Some(id) = ids.iter().find(|id| self.looks_like_ours(id)) {
                return Match::None(self.not_ours("the Message-ID it names", id));
            }
            if u.original_message_id.is_some() {
                return Match::None(format!(
                    "the letter it returns (Message-ID <{}>) is not one of this campaign's letters",
                    u.original_message_id.as_deref().unwrap_or_default()
                ));
            }
        }
        // 3. The relay's queue id.
        if let Some(q) = &u.queue_id {
            match self.by_queue.get(q).map(Vec::as_slice) {
                Some([i]) => return self.same_address(*i, r, By::QueueId),
                Some(_) => {
                    return Match::None(format!(
                        "the relay's queue id {q} belongs to several letters"
                    ))
                }
                None => {}
            }
        }
        // 4. The recipient's address within this campaign.
        let address = r.original.as_deref().unwrap_or(&r.address).to_lowercase();
        let final_address = r.address.to_lowercase();
        let found = self
            .by_address
            .get(&address)
            .or_else(|| self.by_address.get(&final_address));
        match found.map(Vec::as_slice) {
            Some([i]) => Match::Letter {
                index: *i,
                by: By::Address,
            },
            Some(_) => Match::None(format!(
                "several letters of this campaign went to {}, and the message does not say which",
                r.address
            )),
            None => Match::None(format!(
                "no letter of this campaign went to {}, and the message names no letter",
                r.address
            )),
        }
    }

    /// A match by id stands only if the report is about the address the letter went to.
    fn same_address(&self, i: usize, r: &Reported, by: By) -> Match {
        let sent = &self.sent[i];
        let named = [r.original.as_deref(), Some(r.address.as_str())];
        if named
            .iter()
            .flatten()
            .any(|a| a.eq_ignore_ascii_case(&sent.address))
        {
            Match::Letter { index: i, by }
        } else {
            Match::None(format!(
                "it names the letter to {} ({}), but reports on {}: a copy, or an earlier address; nothing changed",
                sent.address, sent.key, r.address
            ))
        }
    }

    fn looks_like_ours(&self, id: &str) -> bool {
        id.to_lowercase().starts_with("rundbrev.")
    }

    fn not_ours(&self, what: &str, id: &str) -> String {
        if self.looks_like_ours(id) && !id.starts_with(&format!("rundbrev.{}.", self.campaign)) {
            format!(
                "{what} <{id}> is a letter of another campaign, not of {}; nothing changed",
                self.campaign
            )
        } else if self.looks_like_ours(id) {
            format!("{what} <{id}> is not a letter in this campaign's ledger (forged, or from another ledger); nothing changed")
        } else {
            format!("{what} <{id}> is not one of this campaign's letters")
        }
    }
}

/// The queue id in a relay's reply: Postfix's "250 2.0.0 Ok: queued as 4dLx7Q2kQfz9vB".
pub(crate) fn queue_id(reply: &str) -> Option<String> {
    let lower = reply.to_ascii_lowercase();
    let at = lower.find("queued as ")? + "queued as ".len();
    let id: String = reply[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    (id.len() >= 6).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipts::parse::Kind;

    fn sent() -> Vec<Sent> {
        vec![
            Sent {
                key: "825".into(),
                address: "post@laesoe.dk".into(),
                message_id: Some("rundbrev.c.1.825.aa@uim.dk".into()),
                queue_ids: vec!["4dLx7Q2kQfz9vB".into()],
            },
            Sent {
                key: "492".into(),
                address: "kommune@aeroe.dk".into(),
                message_id: Some("rundbrev.c.2.492.bb@uim.dk".into()),
                queue_ids: vec![],
            },
            Sent {
                key: "101".into(),
                address: "kommune@aeroe.dk".into(),
                message_id: Some("rundbrev.c.3.101.cc@uim.dk".into()),
                queue_ids: vec![],
            },
            Sent {
                key: "147".into(),
                address: "never@sent.dk".into(),
                message_id: None,
                queue_ids: vec![],
            },
        ]
    }

    fn bounce(address: &str) -> (Understood, Reported) {
        let r = Reported {
            address: address.into(),
            action: "failed".into(),
            status: Some("5.1.1".into()),
            ..Reported::default()
        };
        let u = Understood {
            kind: Some(Kind::Bounce),
            recipients: vec![r.clone()],
            ..Understood::default()
        };
        (u, r)
    }

    #[test]
    fn the_envid_matches_when_the_address_agrees() {
        let s = sent();
        let l = Letters::new("c", &s);
        let (mut u, r) = bounce("POST@laesoe.dk");
        u.envid = Some("rundbrev.c.1.825.aa@uim.dk".into());
        assert_eq!(
            l.find(&u, &r),
            Match::Letter {
                index: 0,
                by: By::Envid
            }
        );
        // The envelope id of the letter, but another address: a copy (Cc) bounced.
        let (mut u, r) = bounce("arkiv@uim.dk");
        u.envid = Some("rundbrev.c.1.825.aa@uim.dk".into());
        assert!(matches!(l.find(&u, &r), Match::None(w) if w.contains("a copy")));
    }

    #[test]
    fn a_letter_of_another_campaign_is_never_matched_by_address() {
        let s = sent();
        let l = Letters::new("c", &s);
        let (mut u, r) = bounce("post@laesoe.dk");
        u.original_message_id = Some("rundbrev.other.1.825.aa@uim.dk".into());
        assert!(matches!(l.find(&u, &r), Match::None(w) if w.contains("another campaign")));
        let (mut u, r) = bounce("post@laesoe.dk");
        u.envid = Some("rundbrev.c.9.825.ff@uim.dk".into());
        assert!(matches!(l.find(&u, &r), Match::None(w) if w.contains("forged")));
    }

    #[test]
    fn the_returned_message_id_then_the_queue_id_then_the_address() {
        let s = sent();
        let l = Letters::new("c", &s);
        let (mut u, r) = bounce("kommune@aeroe.dk");
        u.original_message_id = Some("RUNDBREV.c.3.101.cc@uim.dk".into());
        assert_eq!(
            l.find(&u, &r),
            Match::Letter {
                index: 2,
                by: By::MessageId
            }
        );
        let (mut u, r) = bounce("post@laesoe.dk");
        u.queue_id = Some("4dLx7Q2kQfz9vB".into());
        assert_eq!(
            l.find(&u, &r),
            Match::Letter {
                index: 0,
                by: By::QueueId
            }
        );
        let (u, r) = bounce("post@laesoe.dk");
        assert_eq!(
            l.find(&u, &r),
            Match::Letter {
                index: 0,
                by: By::Address
            }
        );
    }

    #[test]
    fn an_address_with_two_letters_or_none_is_not_matched() {
        let s = sent();
        let l = Letters::new("c", &s);
        let (u, r) = bounce("kommune@aeroe.dk");
        assert!(matches!(l.find(&u, &r), Match::None(w) if w.contains("several")));
        let (u, r) = bounce("never@sent.dk");
        assert!(matches!(l.find(&u, &r), Match::None(w) if w.contains("no letter")));
        // A returned letter that is not ours: no fall-back to the address.
        let (mut u, r) = bounce("post@laesoe.dk");
        u.original_message_id = Some("123@elsewhere.dk".into());
        assert!(matches!(l.find(&u, &r), Match::None(_)));
    }

    #[test]
    fn a_reply_is_matched_by_the_letter_it_answers_whoever_sends_it() {
        let s = sent();
        let l = Letters::new("c", &s);
        let r = Reported {
            address: "jens@laesoe.dk".into(),
            action: "replied".into(),
            ..Reported::default()
        };
        let u = Understood {
            kind: Some(Kind::Reply),
            references: vec!["rundbrev.c.1.825.aa@uim.dk".into()],
            ..Understood::default()
        };
        assert_eq!(
            l.find(&u, &r),
            Match::Letter {
                index: 0,
                by: By::MessageId
            }
        );
    }

    #[test]
    fn queue_ids_are_read_from_postfix_replies() {
        assert_eq!(
            queue_id("250 2.0.0 Ok: queued as 4dLx7Q2kQfz9vB").as_deref(),
            Some("4dLx7Q2kQfz9vB")
        );
        assert_eq!(queue_id("250 2.0.0 Ok"), None);
    }
}
