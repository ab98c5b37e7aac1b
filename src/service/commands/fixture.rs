//! An in-memory database for command tests: loads what a command announces the way the
//! backends do, runs the command through the same job wrapper as the loop (so `request_id`
//! replays are covered), and keeps what it writes.

use std::collections::HashMap;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::{
    domain::{
        Error,
        access_request::AccessRequest,
        account::{Account, Plan},
        assumption::{Assumption, Basis},
        duration::AccessDuration,
        grant::GrantRecord,
        ids::AccountId,
    },
    storage::{
        to_us,
        write::{
            ChainHead, Changes, Command, GrantRow, Idempotency, Keys, Loaded, View,
            command::{Job, Submitted},
            rows::{EventRow, StoredResponse},
        },
    },
};

/// `n` hours after a fixed start.
pub(crate) fn t(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::hours(n)
}

/// The stored rows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Fixture {
    pub(crate) accounts: HashMap<String, (Account, GrantRow)>,
    pub(crate) heads: HashMap<String, ChainHead>,
    pub(crate) assumptions: Vec<Assumption>,
    pub(crate) access_requests: Vec<AccessRequest>,
    pub(crate) responses: HashMap<(String, String), StoredResponse>,
    pub(crate) events: Vec<EventRow>,
}

impl Fixture {
    /// One paid account, grant off, no events.
    pub(crate) fn paid(id: &str) -> Self {
        let mut f = Fixture::default();
        f.add(id, Plan::Paid);
        f
    }

    /// Adds an account with its initial grant.
    pub(crate) fn add(&mut self, id: &str, plan: Plan) {
        let account = Account {
            account_id: AccountId::parse(id, "account_id").unwrap(),
            plan,
            create_time: t(0),
            update_time: t(0),
            delete_time: None,
        };
        let grant = GrantRow {
            record: GrantRecord::initial(t(0)),
            expiry_recorded_us: None,
        };
        self.accounts.insert(id.to_owned(), (account, grant));
    }

    /// Enables the grant (stored directly) until `end`.
    pub(crate) fn enable_until(&mut self, id: &str, end: DateTime<Utc>) {
        let (_, grant) = self.accounts.get_mut(id).unwrap();
        grant.record = GrantRecord {
            enabled: true,
            duration: Some(AccessDuration::OneDay),
            enable_time: Some(t(0)),
            expire_time: Some(end),
            update_time: t(0),
            update_user_id: "admin".into(),
            version: grant.record.version + 1,
            policy: grant.record.policy,
        };
    }

    /// Stores a request directly (replacing one with the same id).
    pub(crate) fn put_request(&mut self, r: AccessRequest) {
        match self
            .access_requests
            .iter_mut()
            .find(|s| s.access_request_id == r.access_request_id)
        {
            Some(slot) => *slot = r,
            None => self.access_requests.push(r),
        }
    }

    /// Loads `keys` as a backend would.
    pub(crate) fn load(&self, keys: &Keys, now: DateTime<Utc>) -> Loaded {
        let mut loaded = Loaded::default();
        let mut accounts = keys.accounts.clone();
        for id in &keys.assumptions {
            if let Some(a) = self.assumptions.iter().find(|a| &a.assumption_id == id) {
                loaded.assumptions.push(a.clone());
                if !accounts.contains(&a.account_id) {
                    accounts.push(a.account_id.clone());
                }
            }
        }
        for id in &accounts {
            if let Some(found) = self.accounts.get(id) {
                loaded.accounts.push(found.clone());
            }
            if let Some(head) = self.heads.get(id) {
                loaded.heads.push((id.clone(), head.clone()));
            }
        }
        for id in &keys.open_assumptions {
            let grant_end = self
                .accounts
                .get(id)
                .and_then(|(_, g)| g.record.expire_time);
            loaded.open_assumptions.extend(
                self.assumptions
                    .iter()
                    .filter(|a| &a.account_id == id && a.end_reason.is_none())
                    .filter(|a| {
                        a.expire_time > now
                            || (a.basis == Basis::CustomerGrant && Some(a.expire_time) == grant_end)
                    })
                    .cloned(),
            );
        }
        for id in &keys.access_requests {
            if let Some(r) = self
                .access_requests
                .iter()
                .find(|r| &r.access_request_id == id)
            {
                loaded.access_requests.push(r.clone());
            }
        }
        for id in &keys.open_requests {
            loaded.access_requests.extend(
                self.access_requests
                    .iter()
                    .filter(|r| &r.account_id == id && r.status.is_open())
                    .cloned(),
            );
        }
        for key in &keys.responses {
            if let Some(r) = self.responses.get(key) {
                loaded.responses.push((key.clone(), r.clone()));
            }
        }
        loaded
    }

    /// Stores `changes` as a backend would.
    pub(crate) fn save(&mut self, changes: Changes) {
        for a in changes.accounts {
            let id = a.account_id.as_str().to_owned();
            let grant = changes
                .grants
                .iter()
                .find(|(g, _)| *g == id)
                .map(|(_, g)| g.clone());
            match self.accounts.get_mut(&id) {
                Some(slot) => slot.0 = a,
                None => {
                    self.accounts
                        .insert(id, (a, grant.expect("a new account has a grant")));
                }
            }
        }
        for (id, g) in changes.grants {
            self.accounts.get_mut(&id).expect("a grant's account").1 = g;
        }
        self.assumptions.extend(changes.new_assumptions);
        for a in changes.changed_assumptions {
            let slot = self
                .assumptions
                .iter_mut()
                .find(|s| s.assumption_id == a.assumption_id)
                .expect("a changed assumption exists");
            *slot = a;
        }
        for r in changes.access_requests {
            self.put_request(r);
        }
        self.events.extend(changes.events);
        self.heads.extend(changes.heads);
        for r in changes.responses {
            self.responses.insert((r.scope, r.request_id), r.response);
        }
    }

    /// Runs `command` (cloned) at `now` through the loop's job wrapper and stores its changes
    /// when it succeeds, as a batch of one.
    pub(crate) fn run<C: Command + Clone>(
        &mut self,
        command: &C,
        now: DateTime<Utc>,
    ) -> Result<C::Answer, Error> {
        self.run_idempotent(command, None, now)
    }

    /// [`Fixture::run`] with a `request_id`.
    pub(crate) fn run_idempotent<C: Command + Clone>(
        &mut self,
        command: &C,
        idempotency: Option<Idempotency>,
        now: DateTime<Utc>,
    ) -> Result<C::Answer, Error> {
        let (job, mut answered) = Submitted::new(command.clone(), idempotency);
        let mut job: Box<dyn Job> = Box::new(job);
        let mut keys = Keys::default();
        job.announce(&mut keys);
        let view = View::new(&keys, self.load(&keys, now));
        match job.run(&view, now) {
            Ok(changes) => {
                self.save(changes);
                job.answer(Ok(()));
            }
            Err(e) => job.answer(Err(e)),
        }
        answered.try_recv().expect("the job answered")
    }

    /// The kinds of an account's events, in order.
    pub(crate) fn kinds(&self, account_id: &str) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e.account_id == account_id)
            .map(|e| e.kind.clone())
            .collect()
    }

    /// The detail of an account's last event.
    pub(crate) fn last_detail(&self, account_id: &str) -> serde_json::Value {
        let e = self
            .events
            .iter()
            .rev()
            .find(|e| e.account_id == account_id)
            .expect("an event");
        serde_json::from_str(&e.detail_json).unwrap()
    }

    /// Stored time of `t`, for assertions.
    pub(crate) fn us(at: DateTime<Utc>) -> i64 {
        to_us(at)
    }
}
