//! The socket under the session: TCP and TLS with timeouts, and the hand-offs that let lettre
//! set a session up (greeting, STARTTLS, EHLO, login) on a stream that is then taken back for
//! sending.
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

/// Shared between the session and its [`Socket`]: whether a timeout fired, and whether the
/// session is only looking whether anything arrived (no timer is started for that).
#[derive(Debug, Default)]
pub(super) struct Probe {
    pub(super) timed_out: AtomicBool,
    pub(super) peeking: AtomicBool,
}

/// The TCP socket: fails a read or write that makes no progress for `limit` (the command
/// timeout), and tells the probe when that happened.
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
        match Pin::new(&mut this.tcp).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.read_timer = None;
                Poll::Ready(result)
            }
            Poll::Pending if this.probe.peeking.load(Ordering::Relaxed) => Poll::Pending,
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

/// A stream lent to lettre and taken back later: the plain socket of a STARTTLS session once the
/// server said "220" to STARTTLS, and every session's stream once it is set up. After that, the
/// lettre session left behind reads and writes nothing; it has nothing buffered either, since
/// the server sends nothing unasked after its reply to the last command.
#[derive(Debug)]
pub(super) struct Handoff<S>(pub(super) Arc<std::sync::Mutex<Option<S>>>);

impl<S> Clone for Handoff<S> {
    fn clone(&self) -> Self {
        Handoff(Arc::clone(&self.0))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Handoff<S> {
    pub(super) fn new(stream: S) -> Handoff<S> {
        Handoff(Arc::new(std::sync::Mutex::new(Some(stream))))
    }

    pub(super) fn take(&self) -> Option<S> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub(super) fn with<T>(
        &self,
        f: impl FnOnce(Pin<&mut S>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(stream) => f(Pin::new(stream)),
            None => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the stream was taken back from the session setup",
            ))),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Handoff<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.with(|s| s.poll_read(cx, buf))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Handoff<S> {
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

impl<S: AsyncTokioStream> AsyncTokioStream for Handoff<S> {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(stream) => stream.peer_addr(),
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
