//! The socket under lettre: TCP, TLS and the STARTTLS hand-off, with timeouts, and a probe that
//! tells whether every byte of a message, its final "." included, was written.
//!
//! These are stream adapters only: they decide nothing about replies or retries.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use lettre::transport::smtp::client::AsyncTokioStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// Shared between [`Connection`] and its [`Socket`]: tells whether lettre
/// started to read the reply to the message (so every byte of it, final "."
/// included, was written) and whether a timeout fired.
#[derive(Debug, Default)]
pub(super) struct Probe {
    pub(super) watching: AtomicBool,
    pub(super) reply_awaited: AtomicBool,
    pub(super) timed_out: AtomicBool,
}

impl Probe {
    pub(super) fn watch(&self) {
        self.reply_awaited.store(false, Ordering::Relaxed);
        self.timed_out.store(false, Ordering::Relaxed);
        self.watching.store(true, Ordering::Relaxed);
    }

    pub(super) fn unwatch(&self) -> bool {
        self.watching.store(false, Ordering::Relaxed);
        self.reply_awaited.load(Ordering::Relaxed)
    }
}

/// The TCP socket handed to lettre: fails a read or write that makes no
/// progress for `limit` (the command timeout) and reports reads to the probe.
pub(super) struct Socket {
    pub(super) tcp: TcpStream,
    pub(super) limit: Duration,
    pub(super) read_timer: Option<Pin<Box<Sleep>>>,
    pub(super) write_timer: Option<Pin<Box<Sleep>>>,
    pub(super) probe: Arc<Probe>,
}

impl Socket {
    pub(super) fn new(tcp: TcpStream, limit: Duration, probe: Arc<Probe>) -> Self {
        Socket {
            tcp,
            limit,
            read_timer: None,
            write_timer: None,
            probe,
        }
    }
}

/// Turns a pending I/O operation into a `TimedOut` error once its timer runs out.
pub(super) fn wait_or_expire<T>(
    timer: &mut Option<Pin<Box<Sleep>>>,
    limit: Duration,
    probe: &Probe,
    cx: &mut Context<'_>,
) -> Poll<io::Result<T>> {
    let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
    match sleep.as_mut().poll(cx) {
        Poll::Pending => Poll::Pending,
        Poll::Ready(()) => {
            *timer = None;
            probe.timed_out.store(true, Ordering::Relaxed);
            Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the server did not respond within {limit:?}"),
            )))
        }
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("tcp", &self.tcp)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.probe.watching.load(Ordering::Relaxed) {
            this.probe.reply_awaited.store(true, Ordering::Relaxed);
        }
        match Pin::new(&mut this.tcp).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.read_timer = None;
                Poll::Ready(result)
            }
            Poll::Pending => wait_or_expire(&mut this.read_timer, this.limit, &this.probe, cx),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.tcp).poll_write(cx, buf) {
            Poll::Ready(result) => {
                this.write_timer = None;
                Poll::Ready(result)
            }
            Poll::Pending => wait_or_expire(&mut this.write_timer, this.limit, &this.probe, cx),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for Socket {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.peer_addr()
    }
}

/// The socket after the TLS handshake, as a stream lettre can run the SMTP session on.
#[derive(Debug)]
pub(super) struct Tls(pub(super) Box<tokio_rustls::client::TlsStream<Socket>>);

impl AsyncRead for Tls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for Tls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.tcp.peer_addr()
    }
}

/// The plain socket of a STARTTLS session, shared so that it can be taken back from lettre
/// once the server said "220" to STARTTLS. After that the lettre session left behind reads
/// and writes nothing (bytes it had buffered beyond the "220" are dropped with it).
#[derive(Debug, Clone)]
pub(super) struct Handoff(pub(super) Arc<std::sync::Mutex<Option<Socket>>>);

impl Handoff {
    pub(super) fn new(socket: Socket) -> Handoff {
        Handoff(Arc::new(std::sync::Mutex::new(Some(socket))))
    }

    pub(super) fn take(&self) -> Option<Socket> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub(super) fn with<T>(
        &self,
        f: impl FnOnce(Pin<&mut Socket>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(socket) => f(Pin::new(socket)),
            None => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the socket was handed over to TLS",
            ))),
        }
    }
}

impl AsyncRead for Handoff {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.with(|s| s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Handoff {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.with(|s| s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|s| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|s| s.poll_shutdown(cx))
    }
}

impl AsyncTokioStream for Handoff {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(socket) => socket.tcp.peer_addr(),
            None => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }
}

/// The TLS stream after STARTTLS, starting with a greeting that lettre reads as the start of
/// its new session: the server already greeted us with its "220" to STARTTLS, so nothing of
/// this line comes from or goes to the network.
#[derive(Debug)]
pub(super) struct Greeted {
    greeting: &'static [u8],
    inner: Tls,
}

impl Greeted {
    pub(super) fn new(inner: Tls) -> Greeted {
        Greeted {
            greeting: b"220 TLS started\r\n",
            inner,
        }
    }
}

impl AsyncRead for Greeted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.greeting.is_empty() {
            let n = this.greeting.len().min(buf.remaining());
            buf.put_slice(&this.greeting[..n]);
            this.greeting = &this.greeting[n..];
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Greeted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for Greeted {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }
}
