//! What the server offers and what we ask of it: the EHLO keywords, and the delivery status
//! notification parameters of RFC 3461 (`RET`, `ENVID` on MAIL FROM; `NOTIFY`, `ORCPT` on RCPT TO).
//!
//! lettre keeps only the EHLO keywords it knows itself, so the reply is read here, line by line.
//! The DSN parameters are built only for a server that lists `DSN`; a server that does not gets
//! nothing extra (it would refuse the command). This module only computes values: it sends
//! nothing and does no xtext encoding of its own, because lettre encodes every parameter value.

use lettre::transport::smtp::extension::{MailParameter, RcptParameter};

/// The service extensions a server listed in its EHLO reply, as written ("SIZE 10240000", "DSN").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Extensions {
    lines: Vec<String>,
}

impl Extensions {
    /// Reads the lines of an EHLO reply. The first line is the server's name and greeting; each
    /// further line is one keyword with its parameters.
    pub(crate) fn from_ehlo_reply<'a>(lines: impl IntoIterator<Item = &'a str>) -> Extensions {
        Extensions {
            lines: lines
                .into_iter()
                .skip(1)
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty())
                .collect(),
        }
    }

    /// Whether the server listed this keyword (case does not matter).
    pub(crate) fn offers(&self, keyword: &str) -> bool {
        self.lines.iter().any(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case(keyword))
        })
    }

    /// Every keyword line, in the server's order.
    pub(crate) fn lines(&self) -> &[String] {
        &self.lines
    }
}

/// Which part of a letter a failure report returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ret {
    /// Only the headers: enough to match the report to the letter.
    Headers,
    /// The whole letter.
    Full,
}

/// The delivery status notifications to ask for. With none of the three, `NOTIFY=NEVER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DsnRequest {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
    pub ret: Ret,
}

impl Default for DsnRequest {
    fn default() -> Self {
        DsnRequest {
            success: true,
            failure: true,
            delay: true,
            ret: Ret::Headers,
        }
    }
}

impl DsnRequest {
    /// The value of `NOTIFY`: "SUCCESS,FAILURE,DELAY", a part of it, or "NEVER".
    pub(crate) fn notify(&self) -> String {
        let chosen: Vec<&str> = [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, word)| word)
        .collect();
        if chosen.is_empty() {
            "NEVER".to_owned()
        } else {
            chosen.join(",")
        }
    }

    /// `RET` and, for an ASCII id, `ENVID` (an id that names this letter in the reports).
    pub(crate) fn mail_parameters(&self, envid: &str) -> Vec<MailParameter> {
        let ret = match self.ret {
            Ret::Headers => "HDRS",
            Ret::Full => "FULL",
        };
        let mut parameters = vec![other_mail("RET", ret)];
        if !envid.is_empty() && envid.is_ascii() {
            parameters.push(other_mail("ENVID", envid));
        }
        parameters
    }

    /// `NOTIFY` and, for an ASCII address, `ORCPT=rfc822;<address>`.
    pub(crate) fn rcpt_parameters(&self, address: &str) -> Vec<RcptParameter> {
        let mut parameters = vec![RcptParameter::Other {
            keyword: "NOTIFY".into(),
            value: Some(self.notify()),
        }];
        if address.is_ascii() {
            parameters.push(RcptParameter::Other {
                keyword: "ORCPT".into(),
                value: Some(format!("rfc822;{address}")),
            });
        }
        parameters
    }
}

fn other_mail(keyword: &str, value: &str) -> MailParameter {
    MailParameter::Other {
        keyword: keyword.into(),
        value: Some(value.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lettre::transport::smtp::commands::{Mail, Rcpt};

    #[test]
    fn keywords_are_read_from_every_line_after_the_greeting() {
        let e = Extensions::from_ehlo_reply([
            "mail.example.dk Hello",
            "PIPELINING",
            "SIZE 10240000",
            "dsn",
            "8BITMIME",
        ]);
        assert!(e.offers("DSN"));
        assert!(e.offers("size"));
        assert!(!e.offers("SMTPUTF8"));
        assert!(!e.offers("mail.example.dk"), "the greeting is no keyword");
        assert_eq!(e.lines()[1], "SIZE 10240000");
    }

    #[test]
    fn the_parameters_go_on_the_wire_as_rfc_3461_spells_them() {
        let dsn = DsnRequest::default();
        let from = "uim@uim.dk".parse().unwrap();
        let mail = Mail::new(
            Some(from),
            dsn.mail_parameters("rundbrev.uim-2020.101.a1b2@uim.dk"),
        );
        assert_eq!(
            mail.to_string(),
            "MAIL FROM:<uim@uim.dk> RET=HDRS ENVID=rundbrev.uim-2020.101.a1b2@uim.dk\r\n"
        );
        let to = "post+kk@kk.dk".parse().unwrap();
        let rcpt = Rcpt::new(to, dsn.rcpt_parameters("post+kk@kk.dk"));
        assert_eq!(
            rcpt.to_string(),
            "RCPT TO:<post+kk@kk.dk> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;post+2Bkk@kk.dk\r\n"
        );
    }

    #[test]
    fn no_notification_asked_means_never_and_full_returns_the_letter() {
        let dsn = DsnRequest {
            success: false,
            failure: false,
            delay: false,
            ret: Ret::Full,
        };
        assert_eq!(dsn.notify(), "NEVER");
        let failure_only = DsnRequest {
            success: false,
            delay: false,
            ..DsnRequest::default()
        };
        assert_eq!(failure_only.notify(), "FAILURE");
        assert_eq!(dsn.mail_parameters("x@y")[0].to_string(), "RET=FULL");
    }
}
