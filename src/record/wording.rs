//! Danish words for the documents a clerk reads, prints or files: the preview pages and the case
//! report (HTML and CSV).
//!
//! One home for them, so that a new state gets its Danish name here, and the compiler asks for
//! it. The terminal, `status` and the JSON for scripts keep the English names (`State::as_str`),
//! which never change. This module only names things; it reads and writes nothing.

use crate::config::{Config, Transport};
use crate::problem::display_path;
use crate::record::fact::Fact;
use crate::record::ledger::State;

/// A state's Danish name, as the case file shows it.
pub(crate) fn state(state: State) -> &'static str {
    match state {
        State::Pending => "afventer",
        State::Sending => "sendes",
        State::Delivered => "leveret",
        State::FailedTemporary => "midlertidig fejl",
        State::FailedPermanent => "afvist",
        State::Unknown => "ukendt",
        State::Bounced => "returneret",
    }
}

/// What the receipts say about a letter, in a Danish sentence for the case report.
pub(crate) fn receipt(fact: &Fact) -> String {
    let at = match (fact.at.get(..10), fact.at.get(11..16)) {
        (Some(date), Some(time)) => format!("kl. {time} den {date}"),
        _ => fact.at.clone(),
    };
    let from = &fact.from;
    let code = fact
        .status
        .as_deref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    match fact.word {
        "bounced" => format!("{}{code}", bounce(fact.status.as_deref())),
        "confirmed" => {
            format!("leveret til kommunens mailserver {at}, ifølge dens egen kvittering")
        }
        "replied" => format!("besvaret af {from} {at}"),
        "read" => format!("åbnet, ifølge en læsekvittering fra {from} {at}"),
        "auto-reply" => {
            format!("automatisk svar (fx fravær) fra {from} {at}: brevet er nået frem")
        }
        "relayed" => format!("sendt videre {at} til et mailsystem, der ikke sender kvitteringer"),
        _ => format!("forsinket: endnu ikke leveret {at}; mailserveren prøver igen{code}"),
    }
}

/// Why a letter came back, in Danish, from its status code (RFC 3463).
fn bounce(status: Option<&str>) -> &'static str {
    let mut parts = status.unwrap_or_default().split('.');
    let class = parts.next().unwrap_or_default();
    let subject = parts.next().unwrap_or_default();
    let detail = parts.next().unwrap_or_default();
    match (class, subject, detail) {
        (_, "1", "1" | "10") => "kommunens mailserver siger, at postkassen ikke findes",
        (_, "1", "2") => "adressens domæne findes ikke",
        (_, "1", _) => "kommunens mailserver siger, at adressen ikke er gyldig",
        (_, "2", "2") => "kommunens mailserver siger, at postkassen er fuld",
        (_, "2", "1") => "kommunens mailserver siger, at postkassen er lukket",
        (_, "2", "3") | (_, "3", "4") => "kommunens mailserver siger, at brevet er for stort",
        (_, "2", _) => "kommunens mailserver siger, at postkassen ikke kan tage imod brevet",
        (_, "4", _) | ("4", _, _) => {
            "kommunens mailserver kunne ikke nås, og afsenderens mailserver opgav"
        }
        (_, "7", _) => "kommunens mailserver afviser brevet efter sine regler",
        _ => "kommunens mailserver kan ikke levere brevet",
    }
}

/// The Danish name of a state given by its English name (as a status row carries it).
pub(crate) fn state_named(name: &str) -> &str {
    State::parse(name).map(state).unwrap_or(name)
}

/// The preview's word for a letter the ledger has no record of.
pub(crate) const NOT_SENT: &str = "ikke sendt";

/// The report CSV's columns after the key column (which keeps its name from the recipients
/// file), in order. Stable, for Excel and for scripts; README.md lists them.
pub(crate) const REPORT_COLUMNS: [&str; 8] = [
    "navn",
    "adresse",
    "akt_id",
    "status",
    "tidspunkt",
    "serverens_svar",
    "message_id",
    "kvittering",
];

/// Where the letters go, in Danish: "udbakkemappen outbox" or "mailserveren smtp.example.dk:587".
pub(crate) fn transport(config: &Config) -> String {
    match &config.transport {
        Transport::Outbox { dir } => format!(
            "udbakkemappen {}",
            display_path(dir, &config.base).display()
        ),
        Transport::Smtp(s) => format!("mailserveren {}:{}", s.host, s.port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_has_a_danish_name_of_its_own() {
        let names: Vec<&str> = State::ALL.into_iter().map(state).collect();
        assert_eq!(
            names,
            [
                "afventer",
                "sendes",
                "leveret",
                "midlertidig fejl",
                "afvist",
                "ukendt",
                "returneret"
            ]
        );
        assert_eq!(state_named("failed-permanent"), "afvist");
    }

    #[test]
    fn a_receipt_is_said_in_danish_for_the_case_file() {
        let fact = |word, status: Option<&str>| Fact {
            word,
            words: String::new(),
            at: "2020-06-29 10:03:00+02:00".into(),
            from: "post@laesoe.dk".into(),
            status: status.map(str::to_string),
        };
        assert_eq!(
            receipt(&fact("bounced", Some("5.1.1"))),
            "kommunens mailserver siger, at postkassen ikke findes (5.1.1)"
        );
        assert_eq!(
            receipt(&fact("confirmed", Some("2.0.0"))),
            "leveret til kommunens mailserver kl. 10:03 den 2020-06-29, ifølge dens egen kvittering"
        );
    }
}
