//! One recipient's letter: its stamps (letter date, Sags nr., Akt-id, Message-ID), the Tera
//! template merged into Markdown and made into text and HTML, the MIME message, a bound on its
//! size that needs neither, and the preview pages that show it.
//!
//! Everything here is a pure function of the config, the row, the stamps and a given time: no
//! file, ledger, network or clock is touched.

pub(crate) mod attachment;
pub(crate) mod body;
pub(crate) mod bound;
pub(crate) mod compose;
pub(crate) mod page;
pub(crate) mod pdf;
pub(crate) mod render;
pub(crate) mod stamp;
