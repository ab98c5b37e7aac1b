//! What each open connection is doing, so that at the connection limit the idlest connection
//! makes room for a new one, instead of the new one being refused.
//!
//! Without this, whoever holds `max_connections` idle sockets (a leaky client, or anyone
//! who can reach the port: no credentials are needed to connect) locks every new client
//! out, the kubelet's probes included, and the pod gets restarted. With it, a new connection
//! at the limit closes the open connection that has been idle longest:
//!
//! - *active* means an **authenticated** call in flight (until its response ends, so a
//!   long `WatchAuditEvents` stream keeps its connection). Health checks and reflection need
//!   no credentials, so they do not protect a connection;
//! - connections that never ran an authenticated call go first, then the longest idle;
//! - a connection younger than [`MIN_IDLE`] (one that has just connected and not yet sent
//!   its first call) is never chosen.
//!
//! An idle gRPC channel that is closed this way reconnects on its next call. Shutdown uses
//! the same switch to close connections that never finished their handshake, which
//! graceful HTTP/2 shutdown would otherwise wait for until `handshake_timeout`.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::Context,
    time::{Duration, Instant},
};

use futures::task::AtomicWaker;

/// How long a connection must have been idle before it can be closed to make room.
pub const MIN_IDLE: Duration = Duration::from_secs(1);

/// The open connections of one listener.
#[derive(Debug)]
pub struct Registry {
    /// Origin of every connection's `last_active_ms`.
    epoch: Instant,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    next_id: u64,
    connections: HashMap<u64, Arc<Activity>>,
}

/// One connection's state, shared by its I/O (which closes it when asked) and the calls on
/// it (which mark it active).
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    /// When it was accepted, or an authenticated call last started or ended (ms since epoch).
    last_active_ms: AtomicU64,
    /// Authenticated calls whose response has not ended.
    calls: AtomicUsize,
    /// Whether an authenticated call ever ran on it.
    authenticated: AtomicBool,
    /// Whether its HTTP/2 preface has arrived.
    serving: AtomicBool,
    /// Set to close it: its next read ends the connection.
    closing: AtomicBool,
    /// The task reading the connection, woken to notice `closing`.
    reader: AtomicWaker,
}

impl Activity {
    fn new(epoch: Instant) -> Self {
        let activity = Self {
            epoch,
            last_active_ms: AtomicU64::new(0),
            calls: AtomicUsize::new(0),
            authenticated: AtomicBool::new(false),
            serving: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            reader: AtomicWaker::new(),
        };
        activity.touch();
        activity
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active_ms.store(ms, Ordering::Relaxed);
    }

    /// An authenticated call started; it counts until the guard is dropped (when its
    /// response ends or is abandoned).
    pub fn call_started(self: &Arc<Self>) -> CallGuard {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.authenticated.store(true, Ordering::Relaxed);
        self.touch();
        CallGuard(self.clone())
    }

    /// The HTTP/2 preface has arrived.
    pub(super) fn mark_serving(&self) {
        self.serving.store(true, Ordering::Relaxed);
    }

    /// Asks the connection to close; its reader notices at once.
    pub(super) fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.reader.wake();
    }

    /// Whether the connection was asked to close; registers the reader to be woken if it is.
    pub(super) fn poll_closing(&self, cx: &Context<'_>) -> bool {
        if self.closing.load(Ordering::Acquire) {
            return true;
        }
        self.reader.register(cx.waker());
        self.closing.load(Ordering::Acquire)
    }
}

/// An authenticated call in flight on a connection (see [`Activity::call_started`]).
#[derive(Debug)]
pub struct CallGuard(Arc<Activity>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.calls.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection's entry in the registry, removed when the connection is dropped.
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
        Arc::new(Self {
            epoch: Instant::now(),
            open: Mutex::new(Open::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // The map stays consistent even if a holder panicked: every change is one call.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a connection that was just accepted.
    pub fn register(self: &Arc<Self>) -> Registered {
        let activity = Arc::new(Activity::new(self.epoch));
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

    /// Closes the connection that has been idle longest (see the module doc); false if every
    /// connection is active, young, or already closing.
    pub fn close_idlest(&self) -> bool {
        let now_ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let min_idle_ms = u64::try_from(MIN_IDLE.as_millis()).unwrap_or(u64::MAX);
        let open = self.lock();
        let victim = open
            .connections
            .values()
            .filter(|a| {
                !a.closing.load(Ordering::Relaxed)
                    && a.calls.load(Ordering::Relaxed) == 0
                    && now_ms.saturating_sub(a.last_active_ms.load(Ordering::Relaxed))
                        >= min_idle_ms
            })
            // Never authenticated first, then the longest idle.
            .min_by_key(|a| {
                (
                    a.authenticated.load(Ordering::Relaxed),
                    a.last_active_ms.load(Ordering::Relaxed),
                )
            });
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
            if !activity.serving.load(Ordering::Relaxed) {
                activity.close();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idlest_unauthenticated_connection_goes_first() {
        let registry = Registry::new();
        let young = registry.register();
        let authenticated_idle = registry.register();
        let anonymous_idle = registry.register();
        let busy = registry.register();
        // Age three of them past MIN_IDLE; `young` stays young.
        for r in [&authenticated_idle, &anonymous_idle, &busy] {
            r.activity.last_active_ms.store(0, Ordering::Relaxed);
        }
        young.activity.touch();
        std::thread::sleep(MIN_IDLE + Duration::from_millis(20));
        young.activity.touch();
        drop(authenticated_idle.activity.call_started());
        authenticated_idle
            .activity
            .last_active_ms
            .store(0, Ordering::Relaxed);
        let _call = busy.activity.call_started();
        busy.activity.last_active_ms.store(0, Ordering::Relaxed);

        assert!(registry.close_idlest());
        assert!(anonymous_idle.activity.closing.load(Ordering::Relaxed));
        assert!(!authenticated_idle.activity.closing.load(Ordering::Relaxed));
        assert!(registry.close_idlest());
        assert!(authenticated_idle.activity.closing.load(Ordering::Relaxed));
        // The busy one has a call in flight, the young one is young.
        assert!(!registry.close_idlest());
        assert!(!busy.activity.closing.load(Ordering::Relaxed));
        assert!(!young.activity.closing.load(Ordering::Relaxed));
    }

    #[test]
    fn dropped_connections_leave_the_registry() {
        let registry = Registry::new();
        let a = registry.register();
        let _b = registry.register();
        assert_eq!(registry.lock().connections.len(), 2);
        drop(a);
        assert_eq!(registry.lock().connections.len(), 1);
    }
}
