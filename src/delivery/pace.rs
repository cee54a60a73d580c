//! Pacing a run: how often a letter is retried, how long to wait between tries, and how fast
//! letters may go out.
//!
//! Decided from the transport's settings: the outbox never retries and is never paced; SMTP
//! follows `[transport.smtp]`. Pure: this module neither sleeps nor reads the clock; the send loop
//! does the waiting.

use std::time::Duration;

use crate::config::Transport as TransportConfig;

/// Retry and pacing rules for a run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    pub retries: u32,
    pub retry_delay: std::time::Duration,
    pub rate_per_minute: Option<u32>,
}

impl Pace {
    /// The pacing that the configured transport asks for.
    pub(crate) fn for_transport(transport: &TransportConfig) -> Pace {
        match transport {
            TransportConfig::Smtp(s) => Pace {
                retries: s.retries,
                retry_delay: s.retry_delay,
                rate_per_minute: s.rate_per_minute,
            },
            TransportConfig::Outbox { .. } => Pace {
                retries: 0,
                retry_delay: Duration::ZERO,
                rate_per_minute: None,
            },
        }
    }

    /// The shortest time between two hand-overs that the rate limit allows, if there is one.
    pub(crate) fn interval(&self) -> Option<Duration> {
        self.rate_per_minute
            .filter(|&n| n > 0)
            .map(|n| Duration::from_secs(60) / n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbox_is_never_retried_or_paced() {
        let pace = Pace::for_transport(&TransportConfig::Outbox {
            dir: "outbox".into(),
        });
        assert_eq!((pace.retries, pace.interval()), (0, None));
    }

    #[test]
    fn a_rate_per_minute_becomes_the_interval_between_letters() {
        let pace = Pace {
            retries: 3,
            retry_delay: Duration::from_secs(1),
            rate_per_minute: Some(120),
        };
        assert_eq!(pace.interval(), Some(Duration::from_millis(500)));
        let unpaced = Pace {
            rate_per_minute: None,
            ..pace
        };
        assert_eq!(unpaced.interval(), None);
    }
}
