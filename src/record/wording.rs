//! Danish words for the documents a clerk reads, prints or files: the preview pages and the case
//! report (HTML and CSV).
//!
//! One home for them, so that a new state gets its Danish name here, and the compiler asks for
//! it. The terminal, `status` and the JSON for scripts keep the English names (`State::as_str`),
//! which never change. This module only names things; it reads and writes nothing.

use crate::config::{Config, Transport};
use crate::problem::display_path;
use crate::record::ledger::State;

/// A state's Danish name, as the case file shows it.
pub fn state(state: State) -> &'static str {
    match state {
        State::Pending => "afventer",
        State::Sending => "sendes",
        State::Delivered => "leveret",
        State::FailedTemporary => "midlertidig fejl",
        State::FailedPermanent => "afvist",
        State::Unknown => "ukendt",
    }
}

/// The Danish name of a state given by its English name (as a status row carries it).
pub fn state_named(name: &str) -> &str {
    State::parse(name).map(state).unwrap_or(name)
}

/// The preview's word for a letter the ledger has no record of.
pub const NOT_SENT: &str = "ikke sendt";

/// The report CSV's columns after the key column (which keeps its name from the recipients
/// file), in order. Stable, for Excel and for scripts; README.md lists them.
pub const REPORT_COLUMNS: [&str; 7] = [
    "navn",
    "adresse",
    "akt_id",
    "status",
    "tidspunkt",
    "serverens_svar",
    "message_id",
];

/// Where the letters go, in Danish: "udbakkemappen outbox" or "mailserveren smtp.example.dk:587".
pub fn transport(config: &Config) -> String {
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
                "ukendt"
            ]
        );
        assert_eq!(state_named("failed-permanent"), "afvist");
    }
}
