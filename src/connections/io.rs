//! The connection types handed to HTTP/2: [`Admitted`] (a TCP connection holding its slot,
//! closable from outside) and [`Preface`] (whose first bytes must be the HTTP/2 preface, by
//! a deadline).

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::OwnedSemaphorePermit,
    time::{Instant, Sleep},
};
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::activity::{Activity, Registered, Registry};

/// The HTTP/2 client connection preface.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// `AsyncWrite` for a wrapper, passed through to its `$field`: only reads are watched here.
macro_rules! delegate_write {
    ([$($generics:tt)*] $ty:ty, $field:ident) => {
        impl<$($generics)*> AsyncWrite for $ty {
            fn poll_write(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.$field).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.$field).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.$field.is_write_vectored()
            }

            fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.$field).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                Pin::new(&mut self.$field).poll_shutdown(cx)
            }
        }
    };
}

/// What a request learns about its connection (in its extensions; under TLS inside
/// `TlsConnectInfo`): the peer's addresses, and the connection's activity, which the
/// admission layer marks while an authenticated call runs.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// Local and remote address.
    pub tcp: TcpConnectInfo,
    /// See [`Activity`].
    pub activity: Arc<Activity>,
}

/// Counts open connections in `accessgrant_connections_open` while it lives.
#[derive(Debug)]
struct OpenGauge;

impl OpenGauge {
    fn new() -> Self {
        metrics::gauge!(crate::metrics::CONNECTIONS_OPEN).increment(1.0);
        Self
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        metrics::gauge!(crate::metrics::CONNECTIONS_OPEN).decrement(1.0);
    }
}

/// An accepted TCP connection holding one of the `max_connections` slots until it closes.
/// Reads end (EOF) once the connection was closed from outside (see [`Activity`]).
#[derive(Debug)]
pub struct Admitted {
    // Declared (so dropped) before `stream`: the registry must forget the socket before its
    // descriptor is closed and can be reused.
    registered: Registered,
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    _open: OpenGauge,
}

impl Admitted {
    pub(super) fn new(
        stream: TcpStream,
        slot: OwnedSemaphorePermit,
        registry: &Arc<Registry>,
    ) -> Self {
        use std::os::fd::AsRawFd;
        Self {
            registered: registry.register(stream.as_raw_fd()),
            stream,
            _slot: slot,
            _open: OpenGauge::new(),
        }
    }

    /// The connection's activity.
    pub fn activity(&self) -> &Arc<Activity> {
        &self.registered.activity
    }
}

impl Connected for Admitted {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        ConnectionInfo {
            tcp: self.stream.connect_info(),
            activity: self.registered.activity.clone(),
        }
    }
}

impl AsyncRead for Admitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.registered.activity.poll_closing(cx) {
            // End of stream: HTTP/2 (or the TLS handshake) ends the connection.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

delegate_write!([] Admitted, stream);

/// A connection whose first bytes must be the HTTP/2 preface, all of it by a deadline.
/// Past the deadline, or on any other first bytes, or on end of stream before the preface
/// is complete, reading fails (and HTTP/2 closes the connection); each such connection is
/// counted once in `accessgrant_connection_handshake_failures_total`. Later reads are not
/// timed.
#[derive(Debug)]
pub struct Preface<T> {
    inner: T,
    activity: Arc<Activity>,
    /// Armed until the whole preface has arrived.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Preface bytes seen so far.
    seen: usize,
}

impl<T> Preface<T> {
    pub(super) fn new(inner: T, activity: Arc<Activity>, deadline: Instant) -> Self {
        Self {
            inner,
            activity,
            deadline: Some(Box::pin(tokio::time::sleep_until(deadline))),
            seen: 0,
        }
    }

    /// Disarms the deadline and counts a failed handshake (unless the connection was closed
    /// from outside: that is counted as what it was, an eviction or a shutdown).
    fn fail(&mut self, kind: io::ErrorKind, why: &'static str) -> io::Error {
        self.deadline = None;
        if !self.activity.is_closing() {
            metrics::counter!(crate::metrics::HANDSHAKE_FAILURES).increment(1);
        }
        io::Error::new(kind, why)
    }
}

impl<T: Connected> Connected for Preface<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Preface<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // Polled before reading, so a peer that sends nothing still wakes us at the deadline.
        if let Some(deadline) = this.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(this.fail(
                io::ErrorKind::TimedOut,
                "no HTTP/2 preface within the handshake timeout",
            )));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if this.deadline.is_some() {
            let new = &buf.filled()[before..];
            if new.is_empty() {
                return Poll::Ready(Err(this.fail(
                    io::ErrorKind::UnexpectedEof,
                    "closed before the HTTP/2 preface",
                )));
            }
            let expected = &PREFACE[this.seen..];
            let n = new.len().min(expected.len());
            if new[..n] != expected[..n] {
                return Poll::Ready(Err(this.fail(
                    io::ErrorKind::InvalidData,
                    "not an HTTP/2 client (no HTTP/2 preface)",
                )));
            }
            this.seen += n;
            if this.seen == PREFACE.len() {
                this.deadline = None;
                this.activity.mark_serving();
            }
        }
        Poll::Ready(Ok(()))
    }
}

delegate_write!([T: AsyncWrite + Unpin] Preface<T>, inner);
