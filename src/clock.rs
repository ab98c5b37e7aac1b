//! Time, injected. Every rule that depends on "now" asks a [`Clock`], so tests can move time
//! forward instantly (a grant expiring after a year is tested without sleeping).

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
};

use chrono::{DateTime, Duration, DurationRound, Utc};
use tokio::sync::watch;

/// A timer of a [`Clock`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of the current time, and timers on it.
pub trait Clock: Send + Sync + 'static {
    /// The current time, truncated to whole microseconds: the precision both databases store,
    /// so a time read back compares (and hashes) equal to the time written.
    fn now(&self) -> DateTime<Utc>;

    /// Completes once this clock has moved `by` past the time of the call. Periodic work (the
    /// expiry sweep) waits on this, so a test drives it by moving its manual clock instead of
    /// waiting in real time.
    fn sleep(&self, by: std::time::Duration) -> Sleep;
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// Truncates to microseconds, the storage precision.
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::microseconds(1)).unwrap_or(t)
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        to_micros(Utc::now())
    }

    fn sleep(&self, by: std::time::Duration) -> Sleep {
        Box::pin(tokio::time::sleep(by))
    }
}

/// A clock that only moves when told to; for tests. Its timers fire when it is moved past
/// their deadline.
#[derive(Debug)]
pub struct ManualClock {
    /// The time `now()` answers; timers watch it.
    now: watch::Sender<DateTime<Utc>>,
    /// Serializes moves, so an `advance` is never lost to a concurrent one.
    moving: Mutex<()>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: watch::channel(to_micros(start)).0,
            moving: Mutex::new(()),
        }
    }

    /// Sets the time.
    pub fn set(&self, t: DateTime<Utc>) {
        let _moving = self.moving.lock().unwrap_or_else(PoisonError::into_inner);
        self.now.send_replace(to_micros(t));
    }

    /// Moves the time forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let _moving = self.moving.lock().unwrap_or_else(PoisonError::into_inner);
        let next = to_micros(*self.now.borrow() + by);
        self.now.send_replace(next);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn sleep(&self, by: std::time::Duration) -> Sleep {
        let mut now = self.now.subscribe();
        let deadline = Duration::from_std(by)
            .ok()
            .and_then(|by| now.borrow().checked_add_signed(by));
        Box::pin(async move {
            let Some(deadline) = deadline else {
                // Beyond the calendar: never.
                return std::future::pending().await;
            };
            while *now.borrow_and_update() < deadline {
                if now.changed().await.is_err() {
                    // The clock is gone: nothing will ever move it.
                    return std::future::pending().await;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manual timer fires when the clock is moved past its deadline, not before.
    #[tokio::test]
    async fn manual_timers_fire_when_the_clock_moves_past_them() {
        let clock = ManualClock::new(Utc::now());
        let mut timer = clock.sleep(std::time::Duration::from_secs(60));
        let poll = |timer: &mut Sleep| futures::FutureExt::now_or_never(timer.as_mut()).is_some();
        assert!(!poll(&mut timer));
        clock.advance(Duration::seconds(59));
        assert!(!poll(&mut timer));
        clock.advance(Duration::seconds(1));
        assert!(poll(&mut timer));
    }
}
