//! Accepts the gRPC port's TCP connections and bounds what a connection can hold before it
//! has shown it is a client at all.
//!
//! tonic's own listener accepts every connection and then waits for a TLS handshake or an
//! HTTP/2 preface for as long as the peer likes: a few thousand sockets that connect and say
//! nothing hold file descriptors, tasks and memory, and nothing reports them. Here:
//!
//! - at most `[limits] max_connections` connections are open at once. One more is closed as
//!   soon as it is accepted (its client sees the connection close and can try another
//!   replica), and counted in `accessgrant_connections_refused_total`;
//! - each connection must finish its TLS handshake (with `[tls]`) **and** send the HTTP/2
//!   client preface within `[limits] handshake_timeout` of being accepted, or it is closed
//!   (`accessgrant_connection_handshake_failures_total`). After the preface nothing is timed
//!   here: an idle gRPC channel is normal, and HTTP/2 keepalive finds dead peers;
//! - handshakes run on tasks of their own, so a slow one never delays accepting the next;
//! - the soft open-files limit is raised to the hard one at start, with a warning if that is
//!   still below `max_connections` (past it, `accept` and database opens fail with `EMFILE`).
//!
//! TLS is terminated here rather than inside tonic for two reasons: tonic's handshake
//! timeout does not cover the preface sent inside TLS, and its certificate loading reports a
//! bad key or certificate file only as "transport error". [`tls_server_config`] names the
//! file and what is wrong with it when the server starts.

use std::{
    future::Future,
    io,
    path::{Path, PathBuf},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    task::JoinHandle,
    time::{Instant, Sleep},
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self, RootCertStore,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
        server::WebPkiClientVerifier,
    },
    server::TlsStream,
};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::config::TlsSettings;

/// Length of the HTTP/2 client connection preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`).
const PREFACE_LEN: usize = 24;
/// Pause after a failed `accept` (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The `[limits]` that apply to connections rather than calls.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once; more are closed when accepted.
    pub max_connections: usize,
    /// From accept to the end of the TLS handshake and the HTTP/2 preface.
    pub handshake_timeout: Duration,
    /// TCP keepalive on accepted sockets.
    pub tcp_keepalive: Duration,
}

/// File descriptors kept for everything but client connections: the database files and
/// connections, the metrics listener, log files.
const RESERVED_DESCRIPTORS: u64 = 128;

/// Raises the soft limit on open files to the hard limit (as Go's runtime does at start), so
/// that `max_connections` is the limit that applies rather than a low default soft limit
/// (often 1024), and warns if even the hard limit leaves too little room: past it `accept`
/// fails with `EMFILE` and so do database opens.
pub fn raise_open_files_limit(max_connections: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct passed by reference.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    let needed = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(RESERVED_DESCRIPTORS);
    if limit.rlim_cur < needed {
        tracing::warn!(
            open_files_limit = limit.rlim_cur,
            max_connections,
            "the open-files limit is below [limits] max_connections + {RESERVED_DESCRIPTORS}: \
             connections past it fail to be accepted (EMFILE); raise `ulimit -n` or lower \
             max_connections"
        );
    }
}

/// Why the `[tls]` files cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("tls: {path}: {reason}")]
pub struct TlsFileError {
    /// The file at fault.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

fn tls_error(path: &Path, reason: impl Into<String>) -> TlsFileError {
    TlsFileError {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|e| tls_error(path, format!("cannot read: {e}")))
}

/// Every `CERTIFICATE` block of a PEM file; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let certs = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(tls_error(path, "no CERTIFICATE block"));
    }
    Ok(certs)
}

/// The rustls configuration of `[tls]`: the server identity (HTTP/2 only) and, with
/// `client_ca`, required client certificates signed by it.
pub fn tls_server_config(tls: &TlsSettings) -> Result<rustls::ServerConfig, TlsFileError> {
    let chain = certificates(&tls.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read(&tls.key)?).map_err(|e| {
        tls_error(
            &tls.key,
            format!("no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"),
        )
    })?;
    // ring, named rather than taken from the process default, which is ambiguous (a panic)
    // if another dependency ever enables a second provider.
    let builder = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls_error(&tls.cert, format!("no usable TLS protocol version: {e}")))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| tls_error(ca, format!("not a usable CA certificate: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .map_err(|e| tls_error(ca, format!("not a usable client CA: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        tls_error(
            &tls.key,
            format!(
                "does not fit the certificate in {}: {e}",
                tls.cert.display()
            ),
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Connections that finished their handshake, for tonic's `serve_with_incoming_shutdown`.
/// Dropping it stops accepting at once (the listening socket closes with the accept task).
pub struct Incoming<Io> {
    ready: mpsc::Receiver<Io>,
    accept: JoinHandle<()>,
}

impl<Io> Drop for Incoming<Io> {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl<Io> tokio_stream::Stream for Incoming<Io> {
    type Item = Result<Io, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.ready.poll_recv(cx).map(|io| io.map(Ok))
    }
}

/// Plaintext connections: the preface must arrive within the handshake timeout.
pub fn plain(listener: TcpListener, limits: ConnectionLimits) -> Incoming<Preface<Admitted>> {
    incoming(listener, limits, |conn, deadline| async move {
        Ok(Preface::new(conn, deadline))
    })
}

/// TLS connections: the TLS handshake and then the preface inside it must both finish
/// within the handshake timeout.
pub fn tls(
    listener: TcpListener,
    limits: ConnectionLimits,
    config: rustls::ServerConfig,
) -> Incoming<Preface<TlsStream<Admitted>>> {
    let acceptor = TlsAcceptor::from(Arc::new(config));
    incoming(listener, limits, move |conn, deadline| {
        let accept = acceptor.accept(conn);
        async move {
            let stream = tokio::time::timeout_at(deadline, accept)
                .await
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                })??;
            Ok(Preface::new(stream, deadline))
        }
    })
}

fn incoming<Io, H, F>(listener: TcpListener, limits: ConnectionLimits, handshake: H) -> Incoming<Io>
where
    Io: Send + 'static,
    H: Fn(Admitted, Instant) -> F + Send + 'static,
    F: Future<Output = io::Result<Io>> + Send + 'static,
{
    // Handshakes finish in any order; the server takes them as fast as they come.
    let (tx, ready) = mpsc::channel(64);
    let accept = tokio::spawn(accept_loop(listener, limits, tx, handshake));
    Incoming { ready, accept }
}

async fn accept_loop<Io, H, F>(
    listener: TcpListener,
    limits: ConnectionLimits,
    ready: mpsc::Sender<Io>,
    handshake: H,
) where
    Io: Send + 'static,
    H: Fn(Admitted, Instant) -> F,
    F: Future<Output = io::Result<Io>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!(crate::metrics::CONNECTIONS_REFUSED).increment(1);
            tracing::debug!(%peer, "connection closed: max_connections are open");
            continue;
        };
        configure(&stream, limits.tcp_keepalive);
        let deadline = Instant::now() + limits.handshake_timeout;
        let handshake = handshake(Admitted::new(stream, slot), deadline);
        let ready = ready.clone();
        tokio::spawn(async move {
            match handshake.await {
                Ok(io) => {
                    // Fails only when the server stopped accepting: the connection closes.
                    let _ = ready.send(io).await;
                }
                Err(e) => {
                    metrics::counter!(crate::metrics::HANDSHAKE_FAILURES).increment(1);
                    tracing::debug!(%peer, error = %e, "connection closed during its handshake");
                }
            }
        });
    }
}

/// `TCP_NODELAY` (a response must not wait behind a watch stream's frame for the peer's
/// delayed ACK) and TCP keepalive; failures only lose the optimisation.
fn configure(stream: &TcpStream, keepalive: Duration) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set");
    }
    let keepalive = socket2::TcpKeepalive::new().with_time(keepalive);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %e, "TCP keepalive not set");
    }
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
#[derive(Debug)]
pub struct Admitted {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    _open: OpenGauge,
}

impl Admitted {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit) -> Self {
        Self {
            stream,
            _slot: slot,
            _open: OpenGauge::new(),
        }
    }
}

impl Connected for Admitted {
    // The same as a bare `TcpStream`'s, so TLS connection info (client certificates) keeps
    // the type the admission layer looks for.
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Admitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A connection whose first [`PREFACE_LEN`] bytes must arrive by a deadline; reading fails
/// with `TimedOut` past it (and HTTP/2 then closes the connection). Later reads are not timed.
#[derive(Debug)]
pub struct Preface<T> {
    inner: T,
    /// Armed until the preface's bytes have arrived.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Preface bytes still to come.
    remaining: usize,
}

impl<T> Preface<T> {
    fn new(inner: T, deadline: Instant) -> Self {
        Self {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep_until(deadline))),
            remaining: PREFACE_LEN,
        }
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
            metrics::counter!(crate::metrics::HANDSHAKE_FAILURES).increment(1);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no HTTP/2 preface within the handshake timeout",
            )));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if this.deadline.is_some() {
            this.remaining = this.remaining.saturating_sub(buf.filled().len() - before);
            if this.remaining == 0 {
                this.deadline = None;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Preface<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
