//! Accepts the gRPC port's TCP connections and bounds what a connection can hold before it
//! has shown it is a client at all.
//!
//! tonic's own listener accepts every connection and then waits for a TLS handshake or an
//! HTTP/2 preface for as long as the peer likes: a few thousand sockets that connect and say
//! nothing hold file descriptors, tasks and memory, and nothing reports them. Here:
//!
//! - at most `[limits] max_connections` connections are open at once. At the limit, a new
//!   connection closes the oldest connection that never made an authenticated call
//!   ([`activity`]), and is refused only when every open connection has made one: it is
//!   closed as soon as it is accepted (its client sees the connection close and can try
//!   another replica), and counted in `accessgrant_connections_refused_total`;
//! - each connection must finish its TLS handshake (with `[tls]`) **and** send the HTTP/2
//!   client preface within `[limits] handshake_timeout` of being accepted, or it is closed
//!   (`accessgrant_connection_handshake_failures_total`, which also counts connections that
//!   close or send something else first). After the preface nothing is timed here: an idle
//!   gRPC channel is normal, and HTTP/2 keepalive finds dead peers;
//! - handshakes run on tasks of their own, so a slow one never delays accepting the next;
//! - at shutdown, connections still handshaking are closed at once (graceful HTTP/2
//!   shutdown only reaches connections that speak HTTP/2);
//! - the soft open-files limit is raised to the hard one at start, with a warning if that is
//!   still below `max_connections` (past it, `accept` and database opens fail with `EMFILE`).
//!
//! TLS is terminated here rather than inside tonic for two reasons: tonic's handshake
//! timeout does not cover the preface sent inside TLS, and its certificate loading reports a
//! bad key or certificate file only as "transport error". [`tls_server_config`] names the
//! file and what is wrong with it when the server starts.

pub mod activity;
mod io;
mod open_files;
mod tls;

pub use io::{Admitted, ConnectionInfo, Preface};
pub use open_files::raise_open_files_limit;
pub use tls::{TlsFileError, TlsSettings, tls_server_config};

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    task::JoinHandle,
    time::Instant,
};
use tokio_rustls::{TlsAcceptor, rustls, server::TlsStream};

use activity::Registry;

/// Pause after a failed `accept` (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// How long a connection accepted at the limit waits for the connection it closed to give
/// up its slot.
const EVICTION_WAIT: Duration = Duration::from_secs(2);

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

/// Connections that finished their handshake, for tonic's `serve_with_incoming_shutdown`.
/// Dropping it (tonic does at shutdown) stops accepting at once (the listening socket closes
/// with the accept task) and closes the connections still handshaking.
pub struct Incoming<Io> {
    ready: mpsc::Receiver<Io>,
    accept: JoinHandle<()>,
    registry: Arc<Registry>,
}

impl<Io> Drop for Incoming<Io> {
    fn drop(&mut self) {
        self.accept.abort();
        self.registry.close_handshaking();
    }
}

impl<Io> tokio_stream::Stream for Incoming<Io> {
    type Item = Result<Io, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.ready.poll_recv(cx).map(|io| io.map(Ok))
    }
}

/// Plaintext connections: the preface must arrive within the handshake timeout.
pub fn plain(listener: TcpListener, limits: ConnectionLimits) -> Incoming<Preface<Admitted>> {
    incoming(listener, limits, |conn, deadline| async move {
        let activity = conn.activity().clone();
        Ok(Preface::new(conn, activity, deadline))
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
        let activity = conn.activity().clone();
        let accept = acceptor.accept(conn);
        async move {
            let stream = match tokio::time::timeout_at(deadline, accept).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    metrics::counter!(crate::metrics::HANDSHAKE_FAILURES).increment(1);
                    return Err(e);
                }
                Err(_) => {
                    metrics::counter!(crate::metrics::HANDSHAKE_FAILURES).increment(1);
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "TLS handshake timed out",
                    ));
                }
            };
            Ok(Preface::new(stream, activity, deadline))
        }
    })
}

fn incoming<Io, H, F>(listener: TcpListener, limits: ConnectionLimits, handshake: H) -> Incoming<Io>
where
    Io: Send + 'static,
    H: Fn(Admitted, Instant) -> F + Send + Sync + 'static,
    F: Future<Output = std::io::Result<Io>> + Send + 'static,
{
    // Handshakes finish in any order; the server takes them as fast as they come.
    let (tx, ready) = mpsc::channel(64);
    let registry = Registry::new();
    let accept = tokio::spawn(accept_loop(
        listener,
        limits,
        registry.clone(),
        tx,
        Arc::new(handshake),
    ));
    Incoming {
        ready,
        accept,
        registry,
    }
}

async fn accept_loop<Io, H, F>(
    listener: TcpListener,
    limits: ConnectionLimits,
    registry: Arc<Registry>,
    ready: mpsc::Sender<Io>,
    handshake: Arc<H>,
) where
    Io: Send + 'static,
    H: Fn(Admitted, Instant) -> F + Send + Sync + 'static,
    F: Future<Output = std::io::Result<Io>> + Send + 'static,
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
        let deadline = Instant::now() + limits.handshake_timeout;
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) if registry.close_oldest_anonymous() => {
                metrics::counter!(crate::metrics::CONNECTIONS_EVICTED).increment(1);
                None
            }
            Err(_) => {
                metrics::counter!(crate::metrics::CONNECTIONS_REFUSED).increment(1);
                tracing::debug!(%peer, "connection closed: max_connections are open, all authenticated");
                continue;
            }
        };
        configure(&stream, limits.tcp_keepalive);
        let (slots, registry, ready, handshake) = (
            slots.clone(),
            registry.clone(),
            ready.clone(),
            handshake.clone(),
        );
        tokio::spawn(async move {
            let Some(slot) = slot_or_wait(slot, slots).await else {
                metrics::counter!(crate::metrics::CONNECTIONS_REFUSED).increment(1);
                return;
            };
            let conn = Admitted::new(stream, slot, &registry);
            match handshake(conn, deadline).await {
                Ok(io) => {
                    // Fails only when the server stopped accepting: the connection closes.
                    let _ = ready.send(io).await;
                }
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "connection closed during its handshake")
                }
            }
        });
    }
}

/// The slot taken at accept, or the one the connection closed to make room gives up.
async fn slot_or_wait(
    slot: Option<OwnedSemaphorePermit>,
    slots: Arc<Semaphore>,
) -> Option<OwnedSemaphorePermit> {
    match slot {
        Some(slot) => Some(slot),
        None => tokio::time::timeout(EVICTION_WAIT, slots.acquire_owned())
            .await
            .ok()?
            .ok(),
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
