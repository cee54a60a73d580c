//! Reports on the ledger: the status table, and CSV and JSON for the case file and for scripts.
//!
//! Pure formatting of ledger records into text. Text from the recipients file is made safe for a
//! terminal before it is shown in the table. This module never changes the ledger.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;

use crate::record::fact;
use crate::record::ledger::{Receipt, Record, State};
use crate::sanitize::printable;

/// One recipient as the status report shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StatusRow {
    pub key: String,
    pub name: String,
    pub address: String,
    pub state: &'static str,
    pub attempts: i64,
    pub last_code: Option<i64>,
    pub last_reply: String,
    pub time: String,
    pub akt_id: String,
    pub message_id: String,
    /// The strongest fact the receipts give (`record::fact`): "bounced", "confirmed", "delayed",
    /// "replied", "read", "auto-reply", "relayed"; none when nothing came back.
    pub receipt: Option<&'static str>,
    /// The same in plain words, with its time ("" when nothing came back).
    pub receipt_detail: String,
    /// The fact itself, for the Danish words of the case report.
    #[serde(skip)]
    pub fact: Option<crate::record::fact::Fact>,
}

/// Turns ledger records and their receipts into report rows. A letter left `sending` by a run
/// that is no longer going is shown as `unknown`: it may have been delivered.
pub(crate) fn rows(records: &[Record], receipts: &[Receipt], run_going: bool) -> Vec<StatusRow> {
    let mut by_key: BTreeMap<&str, Vec<&Receipt>> = BTreeMap::new();
    for r in receipts {
        by_key.entry(r.key.as_str()).or_default().push(r);
    }
    records
        .iter()
        .map(|r| {
            let fact = fact::strongest(
                r.state,
                &r.address,
                by_key.get(r.key.as_str()).map(Vec::as_slice).unwrap_or(&[]),
            );
            (r, fact)
        })
        .map(|(r, fact)| StatusRow {
            key: r.key.clone(),
            name: r.name.clone(),
            address: r.address.clone(),
            state: shown_state(r.state, run_going).as_str(),
            attempts: r.attempts,
            last_code: r.last_code,
            last_reply: r.last_reply.clone().unwrap_or_default(),
            time: r
                .delivered_at
                .clone()
                .unwrap_or_else(|| r.updated_at.clone()),
            akt_id: r.akt_id.clone().unwrap_or_default(),
            message_id: r.message_id.clone().unwrap_or_default(),
            receipt: fact.as_ref().map(|f| f.word),
            receipt_detail: fact.as_ref().map(|f| f.words.clone()).unwrap_or_default(),
            fact,
        })
        .collect()
}

pub(crate) fn shown_state(state: State, run_going: bool) -> State {
    if state == State::Sending && !run_going {
        State::Unknown
    } else {
        state
    }
}

/// How many recipients are in each state, in the order of `State::ALL`, all states present.
pub(crate) fn counts(rows: &[StatusRow]) -> BTreeMap<&'static str, usize> {
    let mut counts: BTreeMap<&'static str, usize> =
        State::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    for r in rows {
        *counts.entry(r.state).or_default() += 1;
    }
    counts
}

/// The counts as one line: "98 delivered, 0 failed-temporary, …", zero states left out.
pub(crate) fn counts_line(rows: &[StatusRow]) -> String {
    let counts = counts(rows);
    let parts: Vec<String> = State::ALL
        .iter()
        .filter_map(|s| {
            let n = counts[s.as_str()];
            (n > 0).then(|| format!("{n} {s}"))
        })
        .collect();
    if parts.is_empty() {
        "no recipients".into()
    } else {
        parts.join(", ")
    }
}

pub(crate) fn write_table(out: &mut dyn Write, rows: &[StatusRow]) -> io::Result<()> {
    let header = [
        "kommunekode",
        "name",
        "address",
        "state",
        "attempts",
        "last reply",
        "time",
        "Akt-id",
        "receipt",
    ];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                printable(&r.key),
                printable(&r.name),
                printable(&r.address),
                r.state.to_string(),
                r.attempts.to_string(),
                shorten(&printable(&r.last_reply), 48),
                r.time.clone(),
                printable(&r.akt_id),
                shorten(&printable(&r.receipt_detail), 72),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &[String]| -> io::Result<()> {
        let mut text = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(c);
            if i + 1 < cells.len() {
                text.extend(std::iter::repeat_n(' ', w - c.chars().count()));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, &header.map(String::from))?;
    for row in &cells {
        line(out, row)?;
    }
    writeln!(out)?;
    writeln!(out, "{} recipients: {}", rows.len(), counts_line(rows))
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

pub(crate) fn write_csv(out: &mut dyn Write, rows: &[StatusRow]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "kommunekode",
        "name",
        "address",
        "state",
        "attempts",
        "last_code",
        "last_reply",
        "time",
        "akt_id",
        "message_id",
        "receipt",
        "receipt_detail",
    ])?;
    for r in rows {
        w.write_record([
            r.key.as_str(),
            &r.name,
            &r.address,
            r.state,
            &r.attempts.to_string(),
            &r.last_code.map(|c| c.to_string()).unwrap_or_default(),
            &r.last_reply,
            &r.time,
            &r.akt_id,
            &r.message_id,
            r.receipt.unwrap_or_default(),
            &r.receipt_detail,
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[derive(Serialize)]
struct JsonReport<'a> {
    campaign: &'a str,
    counts: BTreeMap<&'static str, usize>,
    recipients: &'a [StatusRow],
}

pub(crate) fn write_json(
    out: &mut dyn Write,
    campaign: &str,
    rows: &[StatusRow],
) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(
        &mut *out,
        &JsonReport {
            campaign,
            counts: counts(rows),
            recipients: rows,
        },
    )?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, state: State) -> Record {
        Record {
            key: key.into(),
            position: 0,
            address: format!("{key}@x.dk"),
            name: "Ærø\u{202E} Kommune".into(),
            state,
            attempts: 1,
            last_code: Some(250),
            last_reply: Some("250 ok".into()),
            message_id: None,
            letter_date: None,
            sags_nr: None,
            akt_id: Some("0007".into()),
            row_hash: None,
            updated_at: "t".into(),
            delivered_at: None,
        }
    }

    #[test]
    fn a_letter_left_sending_shows_as_unknown_when_no_run_is_going() {
        let r = rows(&[record("1", State::Sending)], &[], false);
        assert_eq!(r[0].state, "unknown");
        let r = rows(&[record("1", State::Sending)], &[], true);
        assert_eq!(r[0].state, "sending");
    }

    #[test]
    fn the_table_counts_states_and_escapes_bidi_characters() {
        let r = rows(
            &[
                record("1", State::Delivered),
                record("2", State::FailedPermanent),
            ],
            &[],
            false,
        );
        let mut out = Vec::new();
        write_table(&mut out, &r).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("2 recipients: 1 delivered, 1 failed-permanent"),
            "{text}"
        );
        assert!(text.contains("Ærø\\u{202e} Kommune"), "{text}");
        assert!(text.contains("0007"));
    }

    #[test]
    fn a_bounced_letter_carries_its_reason_and_is_never_delivered() {
        let mut bounced = record("1", State::Bounced);
        bounced.address = "post@laesoe.dk".into();
        let receipt = Receipt {
            key: "1".into(),
            recipient: "post@laesoe.dk".into(),
            origin: "b.eml".into(),
            kind: "bounce".into(),
            action: "failed".into(),
            status: Some("5.1.1".into()),
            diagnostic: Some("550 5.1.1 User unknown".into()),
            reporter: Some("relay.uim.dk".into()),
            reported_at: Some("2020-06-29 10:03:00+02:00".into()),
            matched_by: "envid".into(),
            recorded_at: "2020-06-29 11:00:00+02:00".into(),
        };
        let r = rows(&[bounced, record("2", State::Delivered)], &[receipt], false);
        assert_eq!((r[0].state, r[0].receipt), ("bounced", Some("bounced")));
        assert!(r[0]
            .receipt_detail
            .contains("mailbox does not exist (5.1.1)"));
        assert_eq!(
            r[1].receipt, None,
            "a receipt counts only for its own letter"
        );
        let mut csv = Vec::new();
        write_csv(&mut csv, &r).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert!(csv
            .lines()
            .next()
            .unwrap()
            .ends_with(",receipt,receipt_detail"));
        assert!(
            csv.contains(",bounced,the municipality's mail server says"),
            "{csv}"
        );
    }
}
