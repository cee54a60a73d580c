//! What the replies to one mail transaction's commands (MAIL FROM, each RCPT TO, DATA) mean:
//! whether the message may be sent, or how the letter failed and what must happen to the
//! connection. The same rules hold whether the commands went out one at a time or pipelined
//! (RFC 2920) as one group, whose replies come back in the order of the commands.
//!
//! Pure: it reads replies and sends nothing. It must never let a message go out after a
//! refused MAIL FROM or RCPT TO, and never call a refusal anything but a refusal (nothing of
//! the message went out: the letter is not possibly delivered).

use std::time::Duration;

use super::reply::{Failure, Phase, Reply};
use super::wire::Broken;

/// What happens next, judged from the replies so far.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// MAIL FROM and every RCPT TO so far were accepted and DATA has not been answered yet.
    Accepted,
    /// Everything was accepted and DATA answered 354: the server waits for the message.
    Send,
    /// The letter failed as `Failure` says (its first refusal, or the break).
    Failed(Failure, After),
}

/// What the connection needs after a failed transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum After {
    /// The transaction is still open at the server: RSET ends it and the connection goes on.
    Reset,
    /// The server answered DATA with 354 although the letter must not go out (a refused
    /// recipient or sender): it now takes everything up to a "." as the message. A "." would
    /// deliver an empty message to the recipients it accepted, and RSET would be taken as
    /// message text, so the only way to end it undelivered is to close the connection: a
    /// transaction is only confirmed by the end of its data (RFC 5321, 4.1.1.4).
    Close,
    /// The server is closing (421), the connection broke, or the replies no longer make
    /// sense: it cannot be used again.
    Gone,
}

/// The commands of one transaction, for naming them in failures.
pub(super) struct Commands<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    /// How long a reply may take, for the words of a timeout.
    pub timeout: Duration,
}

impl Commands<'_> {
    /// The phase and the words for the command whose reply is number `index` (0: MAIL FROM).
    fn name(&self, index: usize) -> (Phase, String) {
        match index {
            0 => (Phase::Mail, format!("sender <{}>", self.from)),
            i if i <= self.to.len() => (Phase::Rcpt, format!("recipient <{}>", self.to[i - 1])),
            _ => (Phase::Data, "DATA command".to_owned()),
        }
    }

    fn data_index(&self) -> usize {
        self.to.len() + 1
    }
}

/// Judges the replies so far, in command order (MAIL FROM, each RCPT TO, DATA); `broken` is
/// set when the connection failed while the next reply (number `replies.len()`) was awaited.
///
/// The letter's outcome is the first reply to MAIL FROM or RCPT TO that is not a 2xx, as when
/// the commands went one at a time: a 4xx is temporary, a 5xx permanent, and neither means
/// that anything of the message went out. DATA's own reply then only decides what the
/// connection needs ([`After`]). A 421 anywhere means the server is closing.
pub(super) fn judge(
    replies: &[Reply],
    broken: Option<&Broken>,
    commands: &Commands<'_>,
) -> Verdict {
    let mut failure: Option<Failure> = None;
    let mut after = After::Reset;
    for (index, reply) in replies.iter().enumerate() {
        let (phase, what) = commands.name(index);
        if reply.code == 421 {
            failure.get_or_insert_with(|| Failure::Temporary {
                phase,
                reply: Some(reply.clone()),
                message: format!("the server is closing the connection (at the {what})"),
            });
            return Verdict::Failed(failure.expect("set"), After::Gone);
        }
        if index == commands.data_index() {
            if let Some(failure) = failure {
                // The refusal before it stands; DATA's answer tells how to end the transaction.
                let after = match reply.code {
                    _ if after == After::Gone => After::Gone,
                    354 => After::Close,
                    400..=599 => after,
                    _ => After::Gone,
                };
                return Verdict::Failed(failure, after);
            }
            return match reply.code {
                354 => Verdict::Send,
                400..=599 => Verdict::Failed(refusal(phase, reply, &what), After::Reset),
                _ => Verdict::Failed(
                    Failure::Temporary {
                        phase,
                        reply: Some(reply.clone()),
                        message: "the server answered DATA with something other than 354".into(),
                    },
                    After::Gone,
                ),
            };
        }
        match reply.code {
            200..=299 => {}
            400..=599 => {
                failure.get_or_insert_with(|| refusal(phase, reply, &what));
            }
            _ => {
                // A 1xx or 3xx to MAIL or RCPT: the replies are out of step with the commands.
                failure.get_or_insert_with(|| Failure::Temporary {
                    phase,
                    reply: Some(reply.clone()),
                    message: format!("unexpected reply to the {what}"),
                });
                after = After::Gone;
            }
        }
    }
    if let Some(broken) = broken {
        let failure = failure.unwrap_or_else(|| {
            let (phase, what) = commands.name(replies.len());
            let message = if broken.is_timeout() {
                format!(
                    "no answer within {:?} at {phase} ({what})",
                    commands.timeout
                )
            } else {
                format!("the connection broke at the {what}: {broken}")
            };
            Failure::Temporary {
                phase,
                reply: None,
                message,
            }
        });
        return Verdict::Failed(failure, After::Gone);
    }
    match failure {
        Some(failure) => Verdict::Failed(failure, after),
        None => Verdict::Accepted,
    }
}

/// A 4xx or 5xx to a command: temporary or permanent, nothing of the message sent.
fn refusal(phase: Phase, reply: &Reply, what: &str) -> Failure {
    let message = format!("the server refused the {what}");
    if reply.code < 500 {
        Failure::Temporary {
            phase,
            reply: Some(reply.clone()),
            message,
        }
    } else {
        Failure::Permanent {
            phase,
            reply: reply.clone(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(code: u16) -> Reply {
        Reply {
            code,
            text: format!("text {code}"),
        }
    }

    fn judged(codes: &[u16], to: usize, broken: Option<Broken>) -> Verdict {
        let to: Vec<String> = (1..=to).map(|i| format!("r{i}@example.dk")).collect();
        let replies: Vec<Reply> = codes.iter().map(|&c| r(c)).collect();
        judge(
            &replies,
            broken.as_ref(),
            &Commands {
                from: "uim@uim.dk",
                to: &to,
                timeout: Duration::from_secs(5),
            },
        )
    }

    fn failed(verdict: Verdict) -> (Failure, After) {
        match verdict {
            Verdict::Failed(f, a) => (f, a),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn all_accepted_and_354_sends() {
        assert_eq!(judged(&[250, 250, 354], 1, None), Verdict::Send);
        assert_eq!(judged(&[250, 250, 251, 250, 354], 3, None), Verdict::Send);
    }

    #[test]
    fn an_accepted_envelope_waits_for_data() {
        assert_eq!(judged(&[250], 1, None), Verdict::Accepted);
        assert_eq!(judged(&[250, 250], 2, None), Verdict::Accepted);
        assert_eq!(judged(&[250, 250, 250], 2, None), Verdict::Accepted);
    }

    #[test]
    fn a_refused_recipient_is_the_outcome_and_the_expected_554_to_data_is_reset() {
        let (f, after) = failed(judged(&[250, 550, 554], 1, None));
        assert!(
            matches!(&f, Failure::Permanent { phase: Phase::Rcpt, reply, .. } if reply.code == 550),
            "{f:?}"
        );
        assert!(!f.data_sent());
        assert_eq!(after, After::Reset);
        // 503 ("no valid recipients") is as good as 554.
        let (f, after) = failed(judged(&[250, 450, 503], 1, None));
        assert!(
            matches!(&f, Failure::Temporary { phase: Phase::Rcpt, reply: Some(r), .. } if r.code == 450),
            "{f:?}"
        );
        assert!(!f.data_sent());
        assert_eq!(after, After::Reset);
    }

    #[test]
    fn one_refused_copy_fails_the_letter_and_a_354_closes_the_connection() {
        // The recipient accepted, the Bcc copy refused: the server answers DATA with 354.
        let (f, after) = failed(judged(&[250, 250, 550, 354], 2, None));
        assert!(
            matches!(&f, Failure::Permanent { phase: Phase::Rcpt, message, .. } if message.contains("r2@example.dk")),
            "{f:?}"
        );
        assert!(!f.data_sent());
        assert_eq!(after, After::Close);
        // The first refusal counts, as when the commands went one at a time.
        let (f, _) = failed(judged(&[250, 450, 550, 554], 2, None));
        assert!(matches!(
            f,
            Failure::Temporary {
                phase: Phase::Rcpt,
                ..
            }
        ));
    }

    #[test]
    fn a_refused_sender_is_the_outcome_whatever_follows() {
        let (f, after) = failed(judged(&[553, 503, 503], 1, None));
        assert!(matches!(
            f,
            Failure::Permanent {
                phase: Phase::Mail,
                ..
            }
        ));
        assert_eq!(after, After::Reset);
        // A server that says 354 after refusing the sender: the connection must close.
        let (_, after) = failed(judged(&[553, 503, 354], 1, None));
        assert_eq!(after, After::Close);
    }

    #[test]
    fn a_421_is_temporary_and_the_connection_is_gone() {
        let (f, after) = failed(judged(&[421], 1, None));
        assert!(
            matches!(f, Failure::Temporary { phase: Phase::Mail, reply: Some(ref r), .. } if r.code == 421)
        );
        assert_eq!(after, After::Gone);
        let (f, after) = failed(judged(&[250, 421], 1, None));
        assert!(matches!(
            f,
            Failure::Temporary {
                phase: Phase::Rcpt,
                ..
            }
        ));
        assert_eq!(after, After::Gone);
        // A refusal before the 421 stays the outcome.
        let (f, after) = failed(judged(&[250, 550, 421], 1, None));
        assert!(matches!(
            f,
            Failure::Permanent {
                phase: Phase::Rcpt,
                ..
            }
        ));
        assert_eq!(after, After::Gone);
    }

    #[test]
    fn data_refused_after_an_accepted_envelope() {
        let (f, after) = failed(judged(&[250, 250, 554], 1, None));
        assert!(matches!(
            f,
            Failure::Permanent {
                phase: Phase::Data,
                ..
            }
        ));
        assert!(!f.data_sent());
        assert_eq!(after, After::Reset);
        let (f, after) = failed(judged(&[250, 250, 451], 1, None));
        assert!(matches!(
            f,
            Failure::Temporary {
                phase: Phase::Data,
                ..
            }
        ));
        assert_eq!(after, After::Reset);
        // 250 to DATA: out of step.
        let (f, after) = failed(judged(&[250, 250, 250], 1, None));
        assert!(matches!(
            f,
            Failure::Temporary {
                phase: Phase::Data,
                ..
            }
        ));
        assert_eq!(after, After::Gone);
    }

    #[test]
    fn a_3xx_to_rcpt_is_out_of_step() {
        let (f, after) = failed(judged(&[250, 354, 354], 1, None));
        assert!(matches!(
            f,
            Failure::Temporary {
                phase: Phase::Rcpt,
                ..
            }
        ));
        assert_eq!(after, After::Gone);
    }

    #[test]
    fn a_break_is_temporary_at_the_command_awaited_and_never_data_sent() {
        let (f, after) = failed(judged(&[250], 1, Some(Broken::Closed)));
        assert!(
            matches!(&f, Failure::Temporary { phase: Phase::Rcpt, reply: None, message } if message.contains("closed")),
            "{f:?}"
        );
        assert!(!f.data_sent());
        assert_eq!(after, After::Gone);
        let timeout = Broken::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "slow"));
        let (f, _) = failed(judged(&[250, 250], 1, Some(timeout)));
        assert!(
            matches!(&f, Failure::Temporary { phase: Phase::Data, message, .. } if message.contains("no answer within 5s")),
            "{f:?}"
        );
        // A refusal before the break stays the outcome.
        let (f, after) = failed(judged(&[250, 550], 1, Some(Broken::Closed)));
        assert!(matches!(
            f,
            Failure::Permanent {
                phase: Phase::Rcpt,
                ..
            }
        ));
        assert_eq!(after, After::Gone);
    }
}
