//! What each open connection is doing, so that at the connection limit an anonymous
//! connection makes room for a new one, instead of the new one being refused.
//!
//! Without this, whoever holds `max_connections` sockets (a leaky client, or anyone who can
//! reach the port: no credentials are needed to connect) locks every new client out, the
//! kubelet's probes included, and the pod gets restarted. With it, a new connection at the
//! limit closes the **oldest connection that never made an authenticated call** (sockets
//! that say nothing, health checks, reflection): a flood of anonymous sockets only ever
//! replaces itself, and each of its sockets lives about `max_connections` ÷ (connections
//! per second) before it is closed, which is still plenty for a probe or a client's first
//! call. A connection that has made an authenticated call is never closed this way: only
//! the holder of a credential can fill the limit with those, and then new connections are
//! refused.
//!
//! Closing shuts the socket down (both directions) under the registry's lock, so it takes
//! effect even on a connection that has stopped reading, and never reaches a descriptor
//! that was already closed and reused. Shutdown uses the same switch to close connections
//! that never finished their handshake, which graceful HTTP/2 shutdown would otherwise wait
//! for until `handshake_timeout`.

use std::{
    collections::BTreeMap,
    os::fd::RawFd,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    task::Context,
};

use futures::task::AtomicWaker;

/// The open connections of one listener, in the order they were accepted.
#[derive(Debug, Default)]
pub struct Registry {
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    next_id: u64,
    /// By id, so the first eligible entry is the oldest connection.
    connections: BTreeMap<u64, Arc<Activity>>,
}

/// One connection's state, shared by its I/O (which ends when it is closed from outside)
/// and the calls on it (which mark it authenticated).
#[derive(Debug)]
pub struct Activity {
    /// The socket, shut down to close the connection from outside.
    fd: RawFd,
    /// Whether an authenticated call ever ran on it.
    authenticated: AtomicBool,
    /// Whether its HTTP/2 preface has arrived.
    serving: AtomicBool,
    /// Set when it was closed from outside: its next read ends the connection.
    closing: AtomicBool,
    /// The task reading the connection, woken to notice `closing`.
    reader: AtomicWaker,
}

impl Activity {
    fn new(fd: RawFd) -> Self {
        Self {
            fd,
            authenticated: AtomicBool::new(false),
            serving: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            reader: AtomicWaker::new(),
        }
    }

    /// An authenticated call arrived on it: from now on the connection is never closed to
    /// make room.
    pub fn mark_authenticated(&self) {
        self.authenticated.store(true, Ordering::Relaxed);
    }

    /// The HTTP/2 preface has arrived.
    pub(super) fn mark_serving(&self) {
        self.serving.store(true, Ordering::Relaxed);
    }

    /// Whether the connection was closed from outside.
    pub(super) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Closes the connection: shuts the socket down in both directions (pending reads and
    /// writes fail, so even a connection that stopped reading ends) and wakes its reader.
    /// Only called under the registry's lock, while the connection is registered, so `fd`
    /// is still this connection's socket.
    fn close(&self) {
        self.closing.store(true, Ordering::Release);
        // SAFETY: shutdown(2) on a descriptor this connection still owns (see above); it
        // does not close or invalidate the descriptor.
        unsafe {
            libc::shutdown(self.fd, libc::SHUT_RDWR);
        }
        self.reader.wake();
    }

    /// Whether the connection was closed from outside; registers the reader to be woken if
    /// it is.
    pub(super) fn poll_closing(&self, cx: &Context<'_>) -> bool {
        if self.is_closing() {
            return true;
        }
        self.reader.register(cx.waker());
        self.is_closing()
    }
}

/// A connection's entry in the registry. It must be dropped before the socket is closed
/// (field order in `Admitted`), so the registry never shuts down a reused descriptor.
#[derive(Debug)]
pub struct Registered {
    registry: Arc<Registry>,
    id: u64,
    /// The connection's state.
    pub activity: Arc<Activity>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.lock().connections.remove(&self.id);
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // The map stays consistent even if a holder panicked: every change is one call.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a connection that was just accepted on socket `fd`.
    pub fn register(self: &Arc<Self>, fd: RawFd) -> Registered {
        let activity = Arc::new(Activity::new(fd));
        let mut open = self.lock();
        let id = open.next_id;
        open.next_id += 1;
        open.connections.insert(id, activity.clone());
        Registered {
            registry: self.clone(),
            id,
            activity,
        }
    }

    /// Closes the oldest connection that never made an authenticated call (see the module
    /// doc); false if there is none.
    pub fn close_oldest_anonymous(&self) -> bool {
        let open = self.lock();
        let victim = open
            .connections
            .values()
            .find(|a| !a.is_closing() && !a.authenticated.load(Ordering::Relaxed));
        match victim {
            Some(activity) => {
                activity.close();
                true
            }
            None => false,
        }
    }

    /// Closes every connection that has not sent its HTTP/2 preface yet (at shutdown: the
    /// serving ones get HTTP/2's graceful shutdown instead).
    pub fn close_handshaking(&self) {
        for activity in self.lock().connections.values() {
            if !activity.serving.load(Ordering::Relaxed) && !activity.is_closing() {
                activity.close();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected socket pair's descriptors; the test keeps the streams open.
    fn sockets() -> (
        std::os::unix::net::UnixStream,
        std::os::unix::net::UnixStream,
    ) {
        std::os::unix::net::UnixStream::pair().unwrap()
    }

    #[test]
    fn the_oldest_anonymous_connection_goes_first_and_authenticated_ones_never() {
        use std::os::fd::AsRawFd;
        let registry = Registry::new();
        let pairs: Vec<_> = (0..4).map(|_| sockets()).collect();
        let authenticated = registry.register(pairs[0].0.as_raw_fd());
        let older = registry.register(pairs[1].0.as_raw_fd());
        let newer = registry.register(pairs[2].0.as_raw_fd());
        let later_authenticated = registry.register(pairs[3].0.as_raw_fd());
        authenticated.activity.mark_authenticated();
        later_authenticated.activity.mark_authenticated();

        assert!(registry.close_oldest_anonymous());
        assert!(older.activity.is_closing());
        assert!(!newer.activity.is_closing());
        // The peer of a closed connection sees it end.
        let mut buf = [0u8; 1];
        assert_eq!(
            std::io::Read::read(&mut &pairs[1].1, &mut buf).unwrap(),
            0,
            "shut down"
        );
        assert!(registry.close_oldest_anonymous());
        assert!(newer.activity.is_closing());
        // Authenticated: never.
        assert!(!registry.close_oldest_anonymous());
        assert!(!authenticated.activity.is_closing());
        assert!(!later_authenticated.activity.is_closing());
    }

    #[test]
    fn dropped_connections_leave_the_registry() {
        use std::os::fd::AsRawFd;
        let registry = Registry::new();
        let (a_sock, _a_peer) = sockets();
        let (b_sock, _b_peer) = sockets();
        let a = registry.register(a_sock.as_raw_fd());
        let _b = registry.register(b_sock.as_raw_fd());
        assert_eq!(registry.lock().connections.len(), 2);
        drop(a);
        assert_eq!(registry.lock().connections.len(), 1);
    }
}
