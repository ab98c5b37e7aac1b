//! An in-memory cache of accounts with their grants, for the hot read path
//! (`GetAccessGrant`, `BatchGetAccessGrants`) on **SQLite only**.
//!
//! Why it is correct there: on SQLite one process owns the file, and every change to an
//! account or a grant goes through this process's group-commit writer and writes an audit
//! event of an account or grant kind. After the commit, and before the changed job's caller is
//! answered, the writer invalidates the accounts those events name. What is cached is the
//! stored record, not the effective state: the state (`ENABLED`/`EXPIRED`, …) is still
//! computed from it at read time, so expiry needs no invalidation.
//!
//! A read that misses loads from the database and may fill the cache only if no invalidation
//! happened since it started (an epoch counter): a read that raced a commit can never leave
//! the pre-commit record behind. Decisions (`AuthorizeAssumption`) never use the cache; they
//! read inside the write transaction.
//!
//! Not used on PostgreSQL: other replicas change rows this process never hears about.

use std::{collections::HashMap, sync::Mutex};

use crate::domain::{account::Account, grant::GrantRecord};

/// Most cached accounts; past it the cache starts over (a simple bound, no LRU bookkeeping
/// on the hot path).
const CAPACITY: usize = 200_000;

/// See the module doc.
#[derive(Debug, Default)]
pub struct GrantCache {
    /// The cached records and the invalidation epoch, under one lock.
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Bumped by every invalidation.
    epoch: u64,
    /// Account id → stored account and grant.
    entries: HashMap<String, (Account, GrantRecord)>,
}

/// A read's starting point: fills are accepted only if no invalidation happened since.
#[derive(Debug, Clone, Copy)]
pub struct Epoch(u64);

impl GrantCache {
    /// Looks `ids` up: the cached rows, and the ids to load (with the epoch to fill with).
    pub fn lookup<'a>(
        &self,
        ids: &[&'a str],
    ) -> (Vec<(Account, GrantRecord)>, Vec<&'a str>, Epoch) {
        let Ok(inner) = self.inner.lock() else {
            return (Vec::new(), ids.to_vec(), Epoch(u64::MAX));
        };
        let mut hits = Vec::with_capacity(ids.len());
        let mut misses = Vec::new();
        for id in ids {
            match inner.entries.get(*id) {
                Some(row) => hits.push(row.clone()),
                None => misses.push(*id),
            }
        }
        (hits, misses, Epoch(inner.epoch))
    }

    /// Remembers rows loaded by a read that started at `since`, unless an invalidation
    /// happened meanwhile (then the rows may predate a commit and are dropped).
    pub fn fill(&self, since: Epoch, rows: &[(Account, GrantRecord)]) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.epoch != since.0 {
            return;
        }
        if inner.entries.len() + rows.len() > CAPACITY {
            inner.entries.clear();
        }
        for (account, grant) in rows {
            inner.entries.insert(
                account.account_id.as_str().to_owned(),
                (account.clone(), grant.clone()),
            );
        }
    }

    /// Forgets `ids` after a commit changed them.
    pub fn invalidate<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        match self.inner.lock() {
            Ok(mut inner) => {
                inner.epoch = inner.epoch.wrapping_add(1);
                for id in ids {
                    inner.entries.remove(id);
                }
            }
            Err(poisoned) => {
                // A panic while holding the lock: start over rather than trust the contents.
                let mut inner = poisoned.into_inner();
                inner.epoch = inner.epoch.wrapping_add(1);
                inner.entries.clear();
                self.inner.clear_poison();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::domain::{account::Plan, ids::AccountId};

    fn row(id: &str, version: i64) -> (Account, GrantRecord) {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let account = Account {
            account_id: AccountId::parse(id, "account_id").unwrap(),
            plan: Plan::Paid,
            create_time: t,
            update_time: t,
            delete_time: None,
        };
        let mut grant = GrantRecord::initial(t);
        grant.version = version;
        (account, grant)
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_is_dropped() {
        let cache = GrantCache::default();
        let (_, misses, since) = cache.lookup(&["a"]);
        assert_eq!(misses, ["a"]);
        // A commit changes "a" while the read was loading the old row.
        cache.invalidate(["a"]);
        cache.fill(since, &[row("a", 1)]);
        let (hits, misses, _) = cache.lookup(&["a"]);
        assert!(hits.is_empty());
        assert_eq!(misses, ["a"]);
    }

    #[test]
    fn fills_hit_until_invalidated() {
        let cache = GrantCache::default();
        let (_, _, since) = cache.lookup(&["a", "b"]);
        cache.fill(since, &[row("a", 1), row("b", 1)]);
        let (hits, misses, _) = cache.lookup(&["a", "b", "c"]);
        assert_eq!(hits.len(), 2);
        assert_eq!(misses, ["c"]);
        cache.invalidate(["a"]);
        let (hits, misses, _) = cache.lookup(&["a", "b"]);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].1.version, 1);
        assert_eq!(misses, ["a"]);
    }
}
