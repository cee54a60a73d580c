//! What a message back says, as data: its kind, and what it reports about each recipient.
//!
//! Shared by the readers of standard reports and of home-made bounces; no parsing is done here.

/// What kind of message it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// The letter was not delivered (a failure report).
    Bounce,
    /// Not delivered yet; the server keeps trying.
    Delay,
    /// Delivered to the recipient's mailbox, by the receiving side's own report.
    Delivered,
    /// Passed on to a system that sends no reports (relayed or expanded).
    Relayed,
    /// An automatic reply (out of office, RFC 3834): never a failure.
    AutoReply,
    /// A person's reply to the letter.
    Reply,
    /// A read receipt (RFC 8098).
    Read,
    /// An abuse or feedback report (ARF, RFC 5965): not about delivery.
    Feedback,
    /// Nothing rundbrev understands.
    Unknown,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Bounce => "bounce",
            Kind::Delay => "delay",
            Kind::Delivered => "delivered",
            Kind::Relayed => "relayed",
            Kind::AutoReply => "auto-reply",
            Kind::Reply => "reply",
            Kind::Read => "read",
            Kind::Feedback => "feedback",
            Kind::Unknown => "unknown",
        }
    }

    /// Replies, automatic replies and read receipts come from the municipality's side, maybe
    /// from another address than the letter went to.
    pub(crate) fn is_from_recipient(self) -> bool {
        matches!(self, Kind::Reply | Kind::AutoReply | Kind::Read)
    }

    pub(crate) fn parse(s: &str) -> Option<Kind> {
        [
            Kind::Bounce,
            Kind::Delay,
            Kind::Delivered,
            Kind::Relayed,
            Kind::AutoReply,
            Kind::Reply,
            Kind::Read,
            Kind::Feedback,
            Kind::Unknown,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// What the message says about one recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Reported {
    /// The address the report is about (Final-Recipient; the sender of a reply).
    pub address: String,
    /// The address as the letter named it (Original-Recipient, from ORCPT), if given.
    pub original: Option<String>,
    /// "failed", "delayed", "delivered", "relayed", "expanded"; "displayed" (read receipts);
    /// "replied", "auto-replied".
    pub action: String,
    /// The enhanced status code (RFC 3463), e.g. "5.1.1".
    pub status: Option<String>,
    /// The receiving server's own words.
    pub diagnostic: Option<String>,
    /// The server that gave up or delivered (Remote-MTA), if named.
    pub remote: Option<String>,
}

impl Reported {
    /// Whether this is a failure: never for replies and automatic replies.
    pub(crate) fn is_failure(&self) -> bool {
        self.action == "failed"
    }
}
