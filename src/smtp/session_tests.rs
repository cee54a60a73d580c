//! `Connection::send` against a scripted server on 127.0.0.1 that offers PIPELINING: where the
//! gate comes, and how a transaction that must not deliver is ended.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use super::*;

/// What the server saw of one session.
#[derive(Debug, Default)]
struct Seen {
    /// The command lines of each read, as they came.
    reads: Vec<Vec<String>>,
    /// Lines of message data received (in any transaction).
    data_lines: usize,
    /// Messages completed with ".".
    delivered: usize,
    /// Whether the client hung up in the middle of a data phase.
    hung_up_in_data: bool,
}

/// Serves one session: refuses RCPT TO for the addresses in `refuse` with 550, then reports.
fn server(refuse: &'static [&'static str]) -> (u16, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut out = stream.try_clone().unwrap();
        let mut input = BufReader::new(stream);
        let mut seen = Seen::default();
        out.write_all(b"220 scripted ESMTP\r\n").unwrap();
        let mut recipients = 0;
        'session: loop {
            // One read's worth of command lines (what a pipelining server answers together).
            let mut replies = String::new();
            let mut lines = Vec::new();
            loop {
                let mut line = String::new();
                if input.read_line(&mut line).unwrap_or(0) == 0 {
                    break 'session;
                }
                let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                lines.push(verb.clone());
                match verb.as_str() {
                    "EHLO" => {
                        replies.push_str("250-scripted\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                    }
                    "MAIL" => {
                        recipients = 0;
                        replies.push_str("250 ok\r\n")
                    }
                    "RCPT" if refuse.iter().any(|r| line.contains(r)) => {
                        replies.push_str("550 5.1.1 no such user\r\n")
                    }
                    "RCPT" => {
                        recipients += 1;
                        replies.push_str("250 ok\r\n")
                    }
                    "DATA" if recipients == 0 => replies.push_str("554 no valid recipients\r\n"),
                    "DATA" => {
                        out.write_all(replies.as_bytes()).unwrap();
                        out.write_all(b"354 go on\r\n").unwrap();
                        seen.reads.push(std::mem::take(&mut lines));
                        replies.clear();
                        loop {
                            let mut data = String::new();
                            if input.read_line(&mut data).unwrap_or(0) == 0 {
                                seen.hung_up_in_data = true;
                                break 'session;
                            }
                            if data == ".\r\n" {
                                seen.delivered += 1;
                                break;
                            }
                            seen.data_lines += 1;
                        }
                        replies.push_str("250 queued\r\n");
                    }
                    "QUIT" => {
                        let _ = out.write_all(b"221 bye\r\n");
                        seen.reads.push(lines);
                        break 'session;
                    }
                    _ => replies.push_str("250 ok\r\n"),
                }
                if input.buffer().is_empty() {
                    break;
                }
            }
            out.write_all(replies.as_bytes()).unwrap();
            seen.reads.push(lines);
        }
        let mut rest = Vec::new();
        let _ = input.read_to_end(&mut rest);
        tx.send(seen).unwrap();
    });
    (port, rx)
}

fn settings(port: u16) -> Settings {
    Settings {
        host: "127.0.0.1".into(),
        port,
        security: Security::None,
        trust: Trust {
            ca_file: None,
            pins: Vec::new(),
            skip_host_name_check: false,
        },
        hello_name: Some("client.test".into()),
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(5),
        login: None,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

const MESSAGE: &[u8] = b"Subject: x\r\n\r\n.line\r\n";

fn to(addresses: &[&str]) -> Vec<String> {
    addresses.iter().map(|a| a.to_string()).collect()
}

#[test]
fn pipelined_the_gate_comes_after_354_and_a_no_closes_without_a_byte_of_the_message() {
    let (port, seen) = server(&[]);
    let rt = runtime();
    let mut conn = rt.block_on(Connection::open(&settings(port))).unwrap();
    let mut asked = 0;
    let result = rt.block_on(conn.send(
        "a@uim.dk",
        &to(&["b@example.dk"]),
        MESSAGE,
        None,
        "id@uim.dk",
        &mut || {
            asked += 1;
            false
        },
    ));
    assert!(
        matches!(&result, Err(f @ Failure::Temporary { phase: Phase::Data, reply: None, .. }) if !f.data_sent()),
        "{result:?}"
    );
    assert_eq!(asked, 1);
    assert!(!conn.is_usable());
    assert!(conn.closed_on_purpose());
    drop(conn);
    let seen = seen.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        seen.reads.iter().any(|r| r == &["MAIL", "RCPT", "DATA"]),
        "one group: {:?}",
        seen.reads
    );
    assert!(seen.hung_up_in_data);
    assert_eq!(seen.data_lines, 0, "not a byte of the message");
    assert_eq!(seen.delivered, 0);
}

#[test]
fn pipelined_a_refused_copy_after_an_accepted_recipient_closes_the_connection_undelivered() {
    let (port, seen) = server(&["bcc@uim.dk"]);
    let rt = runtime();
    let mut conn = rt.block_on(Connection::open(&settings(port))).unwrap();
    let mut asked = 0;
    let result = rt.block_on(conn.send(
        "a@uim.dk",
        &to(&["b@example.dk", "bcc@uim.dk"]),
        MESSAGE,
        None,
        "id@uim.dk",
        &mut || {
            asked += 1;
            true
        },
    ));
    assert!(
        matches!(&result, Err(f @ Failure::Permanent { phase: Phase::Rcpt, .. }) if !f.data_sent()),
        "{result:?}"
    );
    assert_eq!(asked, 0, "the gate is not asked for a refused letter");
    assert!(conn.closed_on_purpose());
    drop(conn);
    let seen = seen.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(seen.hung_up_in_data);
    assert_eq!((seen.data_lines, seen.delivered), (0, 0));
}

#[test]
fn pipelined_a_refused_recipient_is_reset_and_the_next_letter_goes_on_the_same_connection() {
    let (port, seen) = server(&["nobody@example.dk"]);
    let rt = runtime();
    let mut conn = rt.block_on(Connection::open(&settings(port))).unwrap();
    let refused = rt.block_on(conn.send(
        "a@uim.dk",
        &to(&["nobody@example.dk"]),
        MESSAGE,
        None,
        "1@uim.dk",
        &mut || true,
    ));
    assert!(
        matches!(&refused, Err(Failure::Permanent { phase: Phase::Rcpt, reply, .. }) if reply.code == 550),
        "{refused:?}"
    );
    assert!(conn.is_usable());
    let delivered = rt.block_on(conn.send(
        "a@uim.dk",
        &to(&["b@example.dk"]),
        MESSAGE,
        None,
        "2@uim.dk",
        &mut || true,
    ));
    assert_eq!(delivered.map(|r| r.code), Ok(250));
    rt.block_on(conn.quit());
    let seen = seen.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(seen.delivered, 1);
    assert_eq!(
        seen.data_lines, 3,
        "Subject, the empty line, the stuffed line"
    );
    assert!(
        seen.reads.iter().any(|r| r == &["RSET"]),
        "{:?}",
        seen.reads
    );
}
