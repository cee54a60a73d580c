//! Transports: where a composed message goes. The outbox folder (built in) and SMTP.
//!
//! A transport hands over one message and says what happened, in the ledger's terms: delivered,
//! failed for now, failed for good, or unknown (it may have arrived). Right before the message's
//! data starts to go out it passes the caller's gate, which returns once the caller has made that
//! moment durable; a transport never lets data out without passing it, and when the gate is
//! closed it lets none out. An `Err` means the run must stop and that this message was *not*
//! handed over. Transports never touch the ledger.

pub(crate) use crate::delivery::stop::Stop;
use crate::letter::compose::Composed;
use crate::record::ledger::State;

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Delivered {
        code: Option<u16>,
        reply: String,
    },
    /// Failed for now (4xx, timeout, dropped before the end of the message): worth retrying.
    Temporary {
        code: Option<u16>,
        reply: String,
        /// Whether the message's data had started to go out (false: refused at MAIL or RCPT).
        data_sent: bool,
    },
    /// Refused for good (5xx): not retried.
    Permanent {
        code: Option<u16>,
        reply: String,
        /// Whether the message's data had started to go out (false: refused at MAIL or RCPT).
        data_sent: bool,
    },
    /// The connection broke after the whole message was sent: it may have been delivered.
    Unknown {
        reply: String,
    },
}

impl Outcome {
    /// The ledger state, the reply code and the reply text this outcome records.
    pub(crate) fn parts(&self) -> (State, Option<u16>, &str) {
        match self {
            Outcome::Delivered { code, reply } => (State::Delivered, *code, reply),
            Outcome::Temporary { code, reply, .. } => (State::FailedTemporary, *code, reply),
            Outcome::Permanent { code, reply, .. } => (State::FailedPermanent, *code, reply),
            Outcome::Unknown { reply } => (State::Unknown, None, reply),
        }
    }

    /// False when the server refused the letter before any of its data went out (at MAIL FROM
    /// or RCPT TO): nothing of it left rundbrev.
    pub(crate) fn data_went_out(&self) -> bool {
        match self {
            Outcome::Temporary { data_sent, .. } | Outcome::Permanent { data_sent, .. } => {
                *data_sent
            }
            Outcome::Delivered { .. } | Outcome::Unknown { .. } => true,
        }
    }
}

/// Passed right before a message's data starts to go out: `Ok` once the caller has made that
/// durable; `Err` when the data must not go out (the transport then returns that `Err`).
pub(crate) type Gate<'a> = dyn FnMut() -> Result<(), Stop> + 'a;

pub(crate) trait Transport {
    /// A short name for the ledger's history: "outbox", "smtp".
    fn kind(&self) -> &'static str;
    /// Hands over one message. `name` is a file stem a person can find the letter by.
    fn send(&mut self, message: &Composed, name: &str) -> Result<Outcome, Stop>;
    /// `send`, passing `gate` right before the message's data starts to go out. By default the
    /// gate comes first; a transport that does work before its data goes out (SMTP: the
    /// envelope) passes it later, so that a letter refused before its data is never in doubt.
    fn send_through(
        &mut self,
        message: &Composed,
        name: &str,
        gate: &mut Gate<'_>,
    ) -> Result<Outcome, Stop> {
        gate()?;
        self.send(message, name)
    }
    /// Ends the session politely.
    fn close(&mut self) {}
}

impl Transport for Box<dyn Transport + Send> {
    fn kind(&self) -> &'static str {
        (**self).kind()
    }

    fn send(&mut self, message: &Composed, name: &str) -> Result<Outcome, Stop> {
        (**self).send(message, name)
    }

    fn send_through(
        &mut self,
        message: &Composed,
        name: &str,
        gate: &mut Gate<'_>,
    ) -> Result<Outcome, Stop> {
        (**self).send_through(message, name, gate)
    }

    fn close(&mut self) {
        (**self).close()
    }
}
