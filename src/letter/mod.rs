//! The letter: stamps, the merged text and the MIME message.

pub mod compose;
pub mod page;
pub mod render;
pub mod stamp;
