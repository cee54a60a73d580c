//! Planning a run: who gets a letter now, who is skipped and why.
//!
//! A pure function of each letter's ledger state, the mode (send or resend) and the selection
//! (--only, --limit). It reads no file and no ledger, and sends nothing; the send loop in
//! `delivery` carries the plan out.

use crate::campaign::Letter;
use crate::record::ledger::State;

/// What a run does with the recipients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Letters never handed over.
    Send,
    /// Letters that failed; never delivered ones, and unknown ones only when asked.
    Resend {
        temporary_only: bool,
        include_unknown: bool,
    },
}

/// Narrowing of a run to some recipients.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selection {
    pub only: Vec<String>,
    pub limit: Option<usize>,
}

/// One letter a run will send, and the state it had before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Planned {
    /// The row's place among the rows.
    pub index: usize,
    pub before: State,
}

/// Letters to send are checked against the plan this many at a time (`Plan::group_matches`).
pub(crate) const GROUP: usize = 64;

/// Rows `first..first + len`, all to be sent, all in the state `before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    first: u32,
    len: u32,
    before: State,
}

/// Who gets a letter in this run, and why the others do not.
///
/// The letters to send are kept as runs of consecutive rows in the same state, and as one
/// fingerprint per `GROUP` of them, of their rows as they were checked: a plan for a million
/// recipients takes a few hundred kilobytes, not a few bytes a letter. The send loop reads each
/// group again before any letter of it goes out, and sends none of it when a row changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Whether any letter to send was handed over before (and so has frozen stamps to use).
    pub handed_over_before: bool,
    /// The letters to send, in file order.
    spans: Vec<Span>,
    /// One fingerprint per group of letters to send (`group_fingerprint`).
    groups: Vec<u64>,
    len: usize,
    pub already_delivered: usize,
    /// Unknown (may have been delivered): skipped unless asked for.
    pub unknown: usize,
    /// Failed earlier; `send` leaves them to `resend --failed`.
    pub failed: usize,
    /// Not attempted yet; `resend` leaves them to `send`.
    pub pending: usize,
    /// Bounced back from the address they went to; `resend` takes them only once the address is
    /// corrected in the recipients file.
    pub bounced_uncorrected: usize,
    /// Left out by --only, --limit or --temporary-only.
    pub not_selected: usize,
}

/// The fingerprint of a group of letters: each one's row index and row fingerprint, in order.
pub(crate) fn group_fingerprint(letters: impl IntoIterator<Item = (usize, u64)>) -> u64 {
    let mut h = GroupHasher::default();
    for (index, row) in letters {
        h.add(index, row);
    }
    h.finish()
}

#[derive(Default)]
struct GroupHasher(std::collections::hash_map::DefaultHasher);

impl GroupHasher {
    fn add(&mut self, index: usize, row: u64) {
        use std::hash::Hash as _;
        (index as u64, row).hash(&mut self.0);
    }

    fn finish(&self) -> u64 {
        std::hash::Hasher::finish(&self.0)
    }
}

impl Plan {
    /// How many letters the run sends.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The letters to send, in file order.
    pub(crate) fn letters(&self) -> impl Iterator<Item = Planned> + '_ {
        self.spans.iter().flat_map(|s| {
            (s.first..s.first + s.len).map(move |i| Planned {
                index: i as usize,
                before: s.before,
            })
        })
    }

    /// Whether every letter to send is one never handed over (pending, with no earlier try).
    pub(crate) fn all_new(&self) -> bool {
        !self.handed_over_before && self.spans.iter().all(|s| s.before == State::Pending)
    }

    /// Whether the `group`th group of letters to send, read again now as (row index, row
    /// fingerprint), is the one planned.
    pub(crate) fn group_matches(&self, group: usize, letters: &[(usize, u64)]) -> bool {
        self.groups.get(group) == Some(&group_fingerprint(letters.iter().copied()))
    }
}

/// Decides who gets a letter, one letter at a time, from each letter's index, key and ledger
/// state. Pure: the states, the mode and the selection decide everything, and nothing of the
/// campaign is held but the letters to send.
pub(crate) struct Planner<'a> {
    mode: Mode,
    selection: &'a Selection,
    plan: Plan,
    /// The group being filled, and how many letters it has.
    group: GroupHasher,
    in_group: usize,
}

impl<'a> Planner<'a> {
    pub(crate) fn new(mode: Mode, selection: &'a Selection) -> Planner<'a> {
        Planner {
            mode,
            selection,
            plan: Plan::default(),
            group: GroupHasher::default(),
            in_group: 0,
        }
    }

    /// Takes the next letter, in file order.
    pub(crate) fn add_letter(&mut self, letter: &Letter) {
        self.add_letter_as(letter, letter.state());
    }

    /// `add_letter`, with the state the letter has now (the ledger being read may not show yet
    /// how the start of the run settled a letter an earlier run left `sending`).
    pub(crate) fn add_letter_as(&mut self, letter: &Letter, state: State) {
        let row = crate::digest::fingerprint(&letter.row_hash);
        let planned = self.plan.len;
        self.add(
            letter.index,
            &letter.key,
            row,
            state,
            letter.address_corrected(),
        );
        if self.plan.len > planned && letter.recorded.as_ref().is_some_and(|r| r.attempts > 0) {
            self.plan.handed_over_before = true;
        }
    }

    /// Takes the next letter by its index, key, row fingerprint and state, in file order.
    /// `corrected`: the recipients file gives another address than the one the letter last went
    /// to (a bounced letter is sent again only then).
    pub(crate) fn add(&mut self, index: usize, key: &str, row: u64, state: State, corrected: bool) {
        let wanted = match (state, self.mode) {
            // A bounced letter is never sent to the same address again.
            (State::Bounced, Mode::Send) => {
                self.plan.failed += 1;
                false
            }
            (
                State::Bounced,
                Mode::Resend {
                    temporary_only: true,
                    ..
                },
            ) => {
                self.plan.not_selected += 1;
                false
            }
            (State::Bounced, Mode::Resend { .. }) if !corrected => {
                self.plan.bounced_uncorrected += 1;
                false
            }
            (State::Bounced, Mode::Resend { .. }) => true,
            (State::Delivered, _) => {
                self.plan.already_delivered += 1;
                false
            }
            (
                State::Unknown | State::Sending,
                Mode::Resend {
                    include_unknown: true,
                    ..
                },
            ) => true,
            (State::Unknown | State::Sending, _) => {
                self.plan.unknown += 1;
                false
            }
            (State::Pending, Mode::Send) => true,
            (State::Pending, Mode::Resend { .. }) => {
                self.plan.pending += 1;
                false
            }
            (State::FailedTemporary | State::FailedPermanent, Mode::Send) => {
                self.plan.failed += 1;
                false
            }
            (
                State::FailedPermanent,
                Mode::Resend {
                    temporary_only: true,
                    ..
                },
            ) => {
                self.plan.not_selected += 1;
                false
            }
            (State::FailedTemporary | State::FailedPermanent, Mode::Resend { .. }) => true,
        };
        if !wanted {
            return;
        }
        if !self.selection.only.is_empty() && !self.selection.only.iter().any(|k| k == key) {
            self.plan.not_selected += 1;
            return;
        }
        if self.selection.limit.is_some_and(|n| self.plan.len >= n) {
            self.plan.not_selected += 1;
            return;
        }
        let index = u32::try_from(index).expect("fewer than 4 billion rows");
        match self.plan.spans.last_mut() {
            Some(s) if s.first + s.len == index && s.before == state => s.len += 1,
            _ => self.plan.spans.push(Span {
                first: index,
                len: 1,
                before: state,
            }),
        }
        self.plan.len += 1;
        self.group.add(index as usize, row);
        self.in_group += 1;
        if self.in_group == GROUP {
            self.plan.groups.push(self.group.finish());
            self.group = GroupHasher::default();
            self.in_group = 0;
        }
    }

    pub(crate) fn finish(mut self) -> Plan {
        if self.in_group > 0 {
            self.plan.groups.push(self.group.finish());
        }
        self.plan
    }
}

/// `Planner` over a whole list at once.
#[cfg(test)]
fn plan<K: AsRef<str>>(
    letters: impl IntoIterator<Item = (usize, K, State, bool)>,
    mode: Mode,
    selection: &Selection,
) -> Plan {
    let mut planner = Planner::new(mode, selection);
    for (index, key, state, corrected) in letters {
        planner.add(index, key.as_ref(), 0, state, corrected);
    }
    planner.finish()
}

impl Plan {
    /// Who this run leaves out and why, in a clerk's words ("" when nobody).
    pub(crate) fn skipped(&self, mode: Mode) -> String {
        let plan = self;
        let mut parts = Vec::new();
        if plan.already_delivered > 0 {
            parts.push(format!(
                "{} already delivered (skipped, never sent twice)",
                plan.already_delivered
            ));
        }
        if plan.unknown > 0 {
            parts.push(format!(
                "{} unknown: may have been delivered, not sent again (use `rundbrev resend --failed --include-unknown` after checking with the recipient)",
                plan.unknown
            ));
        }
        if plan.failed > 0 && mode == Mode::Send {
            parts.push(format!(
                "{} failed earlier (use `rundbrev resend --failed`)",
                plan.failed
            ));
        }
        if plan.bounced_uncorrected > 0 {
            parts.push(format!(
                "{} bounced back from their address and are not sent to it again (correct the address in the recipients file, then run `rundbrev resend --failed --accept-changes`)",
                plan.bounced_uncorrected
            ));
        }
        if plan.pending > 0 {
            parts.push(format!(
                "{} not sent yet (use `rundbrev send`)",
                plan.pending
            ));
        }
        if plan.not_selected > 0 {
            parts.push(format!(
                "{} left out by --only, --limit or --temporary-only",
                plan.not_selected
            ));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("Recipients: {}.", parts.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [(&str, State); 7] = [
        ("p", State::Pending),
        ("d", State::Delivered),
        ("t", State::FailedTemporary),
        ("f", State::FailedPermanent),
        ("u", State::Unknown),
        ("s", State::Sending),
        ("b", State::Bounced),
    ];

    fn run(
        states: &[(&'static str, State)],
        mode: Mode,
        selection: &Selection,
    ) -> (Vec<&'static str>, Plan) {
        let p = plan(
            states
                .iter()
                .enumerate()
                .map(|(i, (k, s))| (i, *k, *s, false)),
            mode,
            selection,
        );
        (p.letters().map(|x| states[x.index].0).collect(), p)
    }

    #[test]
    fn send_takes_only_letters_never_handed_over() {
        let (keys, plan) = run(&ALL, Mode::Send, &Selection::default());
        assert_eq!(keys, vec!["p"]);
        assert_eq!(
            (plan.already_delivered, plan.failed, plan.unknown),
            (1, 3, 2)
        );
        assert_eq!(plan.letters().next().unwrap().before, State::Pending);
    }

    #[test]
    fn resend_takes_the_failed_and_never_the_delivered() {
        let all = Mode::Resend {
            temporary_only: false,
            include_unknown: false,
        };
        assert_eq!(run(&ALL, all, &Selection::default()).0, vec!["t", "f"]);
        let temp = Mode::Resend {
            temporary_only: true,
            include_unknown: false,
        };
        assert_eq!(run(&ALL, temp, &Selection::default()).0, vec!["t"]);
        let unknown = Mode::Resend {
            temporary_only: false,
            include_unknown: true,
        };
        assert_eq!(
            run(&ALL, unknown, &Selection::default()).0,
            vec!["t", "f", "u", "s"]
        );
    }

    #[test]
    fn a_bounced_letter_is_resent_only_once_its_address_is_corrected() {
        let resend = Mode::Resend {
            temporary_only: false,
            include_unknown: true,
        };
        let with = |corrected: bool, mode: Mode| {
            plan(
                [
                    (0, "b", State::Bounced, corrected),
                    (1, "d", State::Delivered, true),
                ],
                mode,
                &Selection::default(),
            )
        };
        let same = with(false, resend);
        assert!(same.is_empty());
        assert_eq!(same.bounced_uncorrected, 1);
        assert!(same.skipped(resend).contains("correct the address"));
        let corrected = with(true, resend);
        assert_eq!(corrected.len(), 1);
        assert_eq!(corrected.letters().next().unwrap().before, State::Bounced);
        // `send` never takes it, corrected or not; a delivered letter is never taken.
        assert!(with(true, Mode::Send).is_empty());
    }

    #[test]
    fn only_and_limit_narrow_the_run() {
        let pending = [
            ("a", State::Pending),
            ("b", State::Pending),
            ("c", State::Pending),
            ("d", State::Pending),
        ];
        let only = Selection {
            only: vec!["c".into(), "a".into()],
            limit: None,
        };
        assert_eq!(run(&pending, Mode::Send, &only).0, vec!["a", "c"]);
        let limit = Selection {
            only: vec![],
            limit: Some(3),
        };
        let (keys, plan) = run(&pending, Mode::Send, &limit);
        assert_eq!(keys, vec!["a", "b", "c"]);
        assert_eq!(plan.not_selected, 1);
    }

    #[test]
    fn a_plan_keeps_runs_of_rows_and_one_fingerprint_a_group() {
        let selection = Selection::default();
        let mut planner = Planner::new(Mode::Send, &selection);
        let n = 3 * GROUP + 5;
        for i in 0..n {
            // Every tenth letter was delivered already: the plan has gaps.
            let state = if i % 10 == 9 {
                State::Delivered
            } else {
                State::Pending
            };
            planner.add(i, &format!("k{i}"), 1000 + i as u64, state, false);
        }
        let plan = planner.finish();
        let sent: Vec<usize> = plan.letters().map(|x| x.index).collect();
        assert_eq!(sent, (0..n).filter(|i| i % 10 != 9).collect::<Vec<_>>());
        assert_eq!(plan.len(), sent.len());
        assert_eq!(plan.spans.len(), n.div_ceil(10));
        assert_eq!(plan.groups.len(), sent.len().div_ceil(GROUP));
        assert!(plan.all_new());
        // Each group read again as it was matches; a changed row or another row does not.
        for (g, rows) in sent.chunks(GROUP).enumerate() {
            let read: Vec<(usize, u64)> = rows.iter().map(|&i| (i, 1000 + i as u64)).collect();
            assert!(plan.group_matches(g, &read));
            let mut changed = read.clone();
            changed[rows.len() - 1].1 += 1;
            assert!(!plan.group_matches(g, &changed));
            assert!(!plan.group_matches(g, &read[1..]));
        }
        assert!(!plan.group_matches(plan.groups.len(), &[]));
    }
}
