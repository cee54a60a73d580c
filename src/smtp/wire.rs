//! The bytes of a session once lettre has set it up (TLS, greeting, EHLO, login): commands go out
//! as whole groups in one write, replies are parsed in order from one read buffer, and a
//! message's data is dot-stuffed and ended with "\r\n.\r\n".
//!
//! It only moves and parses bytes. It decides nothing about what a reply means for a letter
//! (`transaction` does), and it never changes a message beyond SMTP's dot-stuffing: the server
//! receives exactly the composed bytes.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::Poll;

use lettre::transport::smtp::client::AsyncTokioStream;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};

use super::reply::{reply_from_lines, Reply};
use super::socket::Probe;

/// The longest reply line taken, and the longest reply (as lettre and Postfix limit them).
const MAX_LINE: usize = 1000;
const MAX_REPLY: usize = 100_000;
/// How much is asked of the socket in one read.
const READ_CHUNK: usize = 4096;

/// Why no reply could be read, or a write did not go through.
#[derive(Debug)]
pub(super) enum Broken {
    /// The read or write failed (a timeout included: `TimedOut`).
    Io(io::Error),
    /// The server closed the connection.
    Closed,
    /// The server sent something that is not an SMTP reply.
    Garbled(String),
}

impl Broken {
    pub(super) fn is_timeout(&self) -> bool {
        matches!(self, Broken::Io(e) if e.kind() == io::ErrorKind::TimedOut)
    }
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Broken::Io(e) => {
                // The innermost cause: TLS wraps the socket's own error.
                let mut last: &(dyn std::error::Error + 'static) = match e.get_ref() {
                    Some(inner) => inner,
                    None => e,
                };
                while let Some(next) = last.source() {
                    last = next;
                }
                write!(f, "{last}")
            }
            Broken::Closed => f.write_str("the server closed the connection"),
            Broken::Garbled(why) => f.write_str(why),
        }
    }
}

/// What [`Wire::already_said`] found without waiting.
#[derive(Debug)]
pub(super) enum Unasked {
    /// Nothing: the server is waiting, as it should be.
    Nothing,
    /// The server sent a reply nobody asked for (a "421 closing").
    Reply(Reply),
    /// The connection is closed or broken.
    Broken(Broken),
}

/// One session's stream with its read buffer and a reusable output buffer.
pub(super) struct Wire {
    /// `None` once closed.
    stream: Option<Box<dyn AsyncTokioStream>>,
    probe: std::sync::Arc<Probe>,
    /// Bytes read and not parsed yet.
    input: Vec<u8>,
    /// What the next [`Wire::send`] writes; filled by the caller.
    pub(super) output: Vec<u8>,
}

impl fmt::Debug for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wire")
            .field("buffered", &self.input.len())
            .finish_non_exhaustive()
    }
}

impl Wire {
    pub(super) fn new(stream: Box<dyn AsyncTokioStream>, probe: std::sync::Arc<Probe>) -> Wire {
        Wire {
            stream: Some(stream),
            probe,
            input: Vec::with_capacity(READ_CHUNK),
            output: Vec::with_capacity(READ_CHUNK),
        }
    }

    /// Writes `output[range]` in one write (and flushes, which TLS needs).
    pub(super) async fn send(&mut self, range: std::ops::Range<usize>) -> Result<(), Broken> {
        let stream = self.stream.as_mut().ok_or(Broken::Closed)?;
        let bytes = &self.output[range];
        stream.write_all(bytes).await.map_err(Broken::Io)?;
        stream.flush().await.map_err(Broken::Io)
    }

    /// Writes the whole output buffer.
    pub(super) async fn send_all(&mut self) -> Result<(), Broken> {
        let all = 0..self.output.len();
        self.send(all).await
    }

    /// Reads the next reply, waiting for it (within the socket's command timeout).
    pub(super) async fn read_reply(&mut self) -> Result<Reply, Broken> {
        loop {
            if let Some(reply) = self.take_reply()? {
                return Ok(reply);
            }
            let read = self.read_more().await?;
            if read == 0 {
                return Err(Broken::Closed);
            }
        }
    }

    /// Whether the server closed the connection or said something since its last reply,
    /// looked at without waiting: the runtime first takes in what the network already
    /// delivered (a yield polls the I/O driver without blocking).
    pub(super) async fn already_said(&mut self) -> Unasked {
        match self.take_reply() {
            Ok(Some(reply)) => return Unasked::Reply(reply),
            Ok(None) => {}
            Err(broken) => return Unasked::Broken(broken),
        }
        tokio::task::yield_now().await;
        let Some(stream) = self.stream.as_mut() else {
            return Unasked::Broken(Broken::Closed);
        };
        self.probe.peeking.store(true, Ordering::Relaxed);
        let mut chunk = [0u8; READ_CHUNK];
        let polled = poll_fn(|cx| {
            let mut buf = ReadBuf::new(&mut chunk);
            match Pin::new(&mut *stream).poll_read(cx, &mut buf) {
                Poll::Pending => Poll::Ready(None),
                Poll::Ready(result) => Poll::Ready(Some(result.map(|()| buf.filled().len()))),
            }
        })
        .await;
        self.probe.peeking.store(false, Ordering::Relaxed);
        match polled {
            None => Unasked::Nothing,
            Some(Err(e)) => Unasked::Broken(Broken::Io(e)),
            Some(Ok(0)) => Unasked::Broken(Broken::Closed),
            Some(Ok(n)) => {
                self.input.extend_from_slice(&chunk[..n]);
                match self.take_reply() {
                    Ok(Some(reply)) => Unasked::Reply(reply),
                    Ok(None) => Unasked::Broken(Broken::Garbled(format!(
                        "the server sent something unasked: {:?}",
                        String::from_utf8_lossy(&self.input)
                    ))),
                    Err(broken) => Unasked::Broken(broken),
                }
            }
        }
    }

    /// Closes the connection at once, without a word to the server (the socket is closed, not
    /// shut down politely, so this cannot wait on the server): whatever transaction the server
    /// was in the middle of ends undelivered.
    pub(super) fn close(&mut self) {
        self.stream = None;
    }

    fn take_reply(&mut self) -> Result<Option<Reply>, Broken> {
        match parse_reply(&self.input) {
            Parsed::Reply(reply, used) => {
                self.input.drain(..used);
                Ok(Some(reply))
            }
            Parsed::Incomplete => Ok(None),
            Parsed::Garbled(why) => Err(Broken::Garbled(why)),
        }
    }

    async fn read_more(&mut self) -> Result<usize, Broken> {
        let stream = self.stream.as_mut().ok_or(Broken::Closed)?;
        let mut chunk = [0u8; READ_CHUNK];
        let n = tokio::io::AsyncReadExt::read(stream, &mut chunk)
            .await
            .map_err(Broken::Io)?;
        self.input.extend_from_slice(&chunk[..n]);
        Ok(n)
    }
}

/// What the start of a read buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Parsed {
    /// A whole reply, and how many bytes it took.
    Reply(Reply, usize),
    /// Not a whole reply yet: read more.
    Incomplete,
    /// Not an SMTP reply.
    Garbled(String),
}

/// Parses one reply (RFC 5321 4.2: "ddd-text" lines, then one "ddd text" or "ddd" line) from the
/// start of `input`. A bare LF ends a line too.
pub(super) fn parse_reply(input: &[u8]) -> Parsed {
    let mut at = 0;
    let mut code: Option<u16> = None;
    let mut texts: Vec<String> = Vec::new();
    loop {
        let rest = &input[at..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() > MAX_LINE || input.len() > MAX_REPLY {
                return Parsed::Garbled("the server's reply is too long".into());
            }
            return Parsed::Incomplete;
        };
        let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
        at += end + 1;
        if line.len() > MAX_LINE || at > MAX_REPLY {
            return Parsed::Garbled("the server's reply is too long".into());
        }
        let digits = line.get(..3).filter(|d| {
            (b'2'..=b'5').contains(&d[0]) && d[1].is_ascii_digit() && d[2].is_ascii_digit()
        });
        let Some(digits) = digits else {
            return Parsed::Garbled(format!(
                "the server sent something that is not an SMTP reply: {:?}",
                String::from_utf8_lossy(line)
            ));
        };
        let this = digits
            .iter()
            .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        if code.is_some_and(|c| c != this) {
            return Parsed::Garbled(format!(
                "the lines of the server's reply have different codes ({} and {this})",
                code.unwrap_or_default()
            ));
        }
        code = Some(this);
        let last = match line.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => {
                return Parsed::Garbled(format!(
                    "the server sent something that is not an SMTP reply: {:?}",
                    String::from_utf8_lossy(line)
                ))
            }
        };
        texts.push(String::from_utf8_lossy(line.get(4..).unwrap_or_default()).into_owned());
        if last {
            return Parsed::Reply(reply_from_lines(this, texts.iter().map(String::as_str)), at);
        }
    }
}

/// Appends the message data as it goes over the wire: a "." at the start of a line (after CRLF,
/// or the very first byte) gets another "." before it, and the data ends with "\r\n.\r\n", whose
/// CRLF is the message's own last line end (so a message that ends with CRLF arrives exactly as
/// composed). The same rule as lettre's client codec, which sent the data before.
pub(super) fn put_data(message: &[u8], out: &mut Vec<u8>) {
    let body = message.strip_suffix(b"\r\n").unwrap_or(message);
    out.reserve(body.len() + 8);
    if body.first() == Some(&b'.') {
        out.push(b'.');
    }
    // The runs between line starts that need the extra "." are copied whole.
    let mut copied = 0;
    for crlf in memchr::memmem::find_iter(body, b"\r\n.") {
        let start = crlf + 2;
        out.extend_from_slice(&body[copied..start]);
        out.push(b'.');
        copied = start;
    }
    out.extend_from_slice(&body[copied..]);
    out.extend_from_slice(b"\r\n.\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, text: &str) -> Reply {
        Reply {
            code,
            text: text.into(),
        }
    }

    #[test]
    fn replies_are_parsed_one_at_a_time_from_a_pipelined_buffer() {
        let input = b"250 2.1.0 Ok\r\n250-2.1.5 first\r\n250 2.1.5 second\r\n354 End data\r\n";
        let Parsed::Reply(first, used) = parse_reply(input) else {
            panic!()
        };
        assert_eq!(first, reply(250, "2.1.0 Ok"));
        let rest = &input[used..];
        let Parsed::Reply(second, used2) = parse_reply(rest) else {
            panic!()
        };
        assert_eq!(second, reply(250, "2.1.5 first second"));
        assert_eq!(
            parse_reply(&rest[used2..]),
            Parsed::Reply(reply(354, "End data"), 14)
        );
    }

    #[test]
    fn an_incomplete_reply_asks_for_more() {
        assert_eq!(parse_reply(b""), Parsed::Incomplete);
        assert_eq!(parse_reply(b"250 O"), Parsed::Incomplete);
        assert_eq!(parse_reply(b"250-first\r\n250 sec"), Parsed::Incomplete);
    }

    #[test]
    fn a_bare_code_and_a_bare_lf_are_replies() {
        assert_eq!(parse_reply(b"250\r\n"), Parsed::Reply(reply(250, ""), 5));
        assert_eq!(
            parse_reply(b"221 bye\n"),
            Parsed::Reply(reply(221, "bye"), 8)
        );
    }

    #[test]
    fn garbage_is_not_taken_for_a_reply() {
        for bad in [
            &b"hello\r\n"[..],
            b"25\r\n",
            b"650 no\r\n",
            b"250x\r\n",
            b"250-a\r\n550 b\r\n",
        ] {
            assert!(
                matches!(parse_reply(bad), Parsed::Garbled(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = vec![b'2'; MAX_LINE + 10];
        assert!(matches!(parse_reply(&long), Parsed::Garbled(_)));
    }

    fn data(message: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_data(message, &mut out);
        out
    }

    /// lettre's client codec, the rule the data was sent by before (lettre 0.11, client/mod.rs).
    fn lettre_codec(message: &[u8]) -> Vec<u8> {
        #[derive(Clone, Copy)]
        enum S {
            Middle,
            Cr,
            Start,
        }
        let mut status = S::Start;
        let mut buf = Vec::new();
        for &b in message.strip_suffix(b"\r\n").unwrap_or(message) {
            buf.push(b);
            status = match (b, status) {
                (b'\r', _) => S::Cr,
                (b'\n', S::Cr) => S::Start,
                (_, S::Cr) => S::Middle,
                (b'.', S::Start) => {
                    buf.push(b'.');
                    S::Middle
                }
                (_, S::Start) => S::Middle,
                (_, s) => s,
            };
        }
        buf.extend_from_slice(b"\r\n.\r\n");
        buf
    }

    #[test]
    fn dot_stuffing_is_lettres_test_case() {
        let input = b".\r\ntest\r\ntest\r\n\r\n.\r\n\r\ntestte\r\n.\r\nsttesttest.test\n.test\ntesttesttest\r\n.test\r\ntest.\r\n";
        assert_eq!(
            String::from_utf8(data(input)).unwrap(),
            "..\r\ntest\r\ntest\r\n\r\n..\r\n\r\ntestte\r\n..\r\nsttesttest.test\n.test\ntesttesttest\r\n..test\r\ntest.\r\n.\r\n"
        );
    }

    #[test]
    fn dot_stuffing_matches_lettre_on_every_short_message() {
        // Every message of up to 7 bytes from these five: all line-start cases.
        let alphabet = [b'.', b'\r', b'\n', b'a', b' '];
        let mut count = 0;
        for len in 0..=7u32 {
            for mut n in 0..5usize.pow(len) {
                let mut message = Vec::new();
                for _ in 0..len {
                    message.push(alphabet[n % 5]);
                    n /= 5;
                }
                assert_eq!(
                    data(&message),
                    lettre_codec(&message),
                    "{:?}",
                    String::from_utf8_lossy(&message)
                );
                count += 1;
            }
        }
        assert!(count > 90_000);
    }

    #[test]
    fn dot_stuffing_matches_lettre_on_long_messages() {
        // Long lines of letters with dots, CRs and LFs sprinkled in, so the search for line
        // starts runs over long stretches as well as short ones.
        let pieces: [&[u8]; 8] = [b".", b"\r\n", b"\r\n.", b"\n.", b"\r", b"..", b"abc", b"x"];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..500 {
            let mut message = Vec::new();
            let len = (state % 5000) as usize;
            while message.len() < len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if state.is_multiple_of(4) {
                    message.extend_from_slice(pieces[(state >> 8) as usize % pieces.len()]);
                } else {
                    message.extend(std::iter::repeat_n(b'a', (state >> 16) as usize % 200));
                }
            }
            assert_eq!(data(&message), lettre_codec(&message));
        }
    }

    #[test]
    fn a_composed_message_arrives_exactly_as_composed() {
        let message = b"Subject: x\r\n\r\n.hidden\r\nend\r\n";
        assert_eq!(
            data(message),
            b"Subject: x\r\n\r\n..hidden\r\nend\r\n.\r\n".to_vec()
        );
    }
}
