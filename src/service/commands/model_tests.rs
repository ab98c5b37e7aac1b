//! Property tests: random sequences of the real commands on a few accounts, with a moving
//! clock, run through the fixture (the loop's job wrapper over an in-memory database) and
//! checked against a small model of the contract after every step:
//!
//! - no ALLOW unless, at that instant, the account exists, is not deleted and its grant is in
//!   force (trial, or enabled and unexpired), or the request is an emergency;
//! - every ALLOW has exactly its committed event naming its assumption, and its row;
//! - every account's chain is gap-free and linked (verified with `audit::chain`);
//! - no assumption is active without a basis in force; after a Disable or a Delete, none of
//!   that account is;
//! - a failed command changes nothing; a successful one appends exactly the expected events.

use std::{collections::HashMap, mem::discriminant};

use chrono::{DateTime, Duration, Utc};
use proptest::{prelude::*, test_runner::TestCaseError};

use super::{
    account::{Delete, Upsert, UpsertAccount},
    assumption::{Authorize, End},
    fixture::{Fixture, t},
    grant::{Disable, Enable},
    lapse::RecordLapse,
};
use crate::{
    audit::{AuditEvent, EventActor, EventKind, chain::ChainVerifier},
    domain::{
        Error,
        account::Plan,
        actor::{Actor, Product, Role},
        assumption::{
            AccessReason, AssumptionRequest, AssumptionState, Basis, Emergency, EmergencyReason,
            Lifetimes,
        },
        duration::AccessDuration,
        grant::{DisableGrant, EnableGrant},
        ids::AccountId,
    },
    storage::{from_us, to_us},
};

mod invariants;
mod steps;

/// A step's result, what it should have done, and the model's account after it.
type Stepped = (Result<(), Error>, Expect, Option<(usize, Modeled)>);

const IDS: [&str; 3] = ["acct-0", "acct-1", "acct-2"];
/// Lifetime caps: the default (8 h, under the shortest grant period), or one longer than a
/// day, so shortening a grant has assumptions to cap.
fn limits() -> impl Strategy<Value = Lifetimes> {
    prop_oneof![1 => Just(8_i64), 2 => Just(48)].prop_map(|max| Lifetimes {
        max: Duration::hours(max),
        emergency: Duration::hours(1),
    })
}

/// What a grant change request gets wrong, if anything.
#[derive(Debug, Clone, Copy)]
enum Fault {
    None,
    NotAdmin,
    StaleEtag,
}

#[derive(Debug, Clone)]
enum Step {
    Upsert {
        account: usize,
        paid: bool,
    },
    Enable {
        account: usize,
        duration: AccessDuration,
        fault: Fault,
    },
    Disable {
        account: usize,
        fault: Fault,
    },
    Authorize {
        account: usize,
        emergency: bool,
    },
    /// Ends the `pick`-th assumption allowed so far (modulo their number).
    End {
        pick: usize,
    },
    Delete {
        account: usize,
    },
    /// Records the lapse of the account's current period.
    RecordLapse {
        account: usize,
    },
    Advance {
        seconds: i64,
    },
    /// Moves the clock to exactly the `pick`-th next deadline (a grant's or an active
    /// assumption's end, modulo their number), where half-open periods are decided.
    AdvanceToDeadline {
        pick: usize,
    },
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![10 => Just(Fault::None), 1 => Just(Fault::NotAdmin), 1 => Just(Fault::StaleEtag)]
}

fn duration() -> impl Strategy<Value = AccessDuration> {
    prop_oneof![
        3 => Just(AccessDuration::OneDay),
        1 => Just(AccessDuration::OneWeek),
        1 => Just(AccessDuration::OneMonth),
        1 => Just(AccessDuration::OneYear),
        1 => Just(AccessDuration::Indefinite),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    // Mostly the first account, so long stories (create, enable, allow, shorten, lapse)
    // happen on one chain; the others interleave.
    let account = prop_oneof![4 => Just(0_usize), 2 => Just(1), 1 => Just(2)];
    // Boundaries on purpose: an emergency's hour, the cap's 8 hours, a day's grant.
    let seconds = prop_oneof![
        Just(0_i64),
        Just(3_600),
        Just(28_800),
        Just(86_400),
        Just(172_800),
        1..=7_200_i64,
        1..=172_800_i64,
        86_401..=3_000_000_i64,
    ];
    prop_oneof![
        2 => (account.clone(), prop::bool::weighted(0.7))
            .prop_map(|(account, paid)| Step::Upsert { account, paid }),
        3 => (account.clone(), duration(), fault())
            .prop_map(|(account, duration, fault)| Step::Enable { account, duration, fault }),
        2 => (account.clone(), fault()).prop_map(|(account, fault)| Step::Disable { account, fault }),
        5 => (account.clone(), any::<bool>())
            .prop_map(|(account, emergency)| Step::Authorize { account, emergency }),
        2 => (0..16_usize).prop_map(|pick| Step::End { pick }),
        1 => account.clone().prop_map(|account| Step::Delete { account }),
        2 => account.prop_map(|account| Step::RecordLapse { account }),
        3 => seconds.prop_map(|seconds| Step::Advance { seconds }),
        2 => (0..4_usize).prop_map(|pick| Step::AdvanceToDeadline { pick }),
    ]
}

/// An account as the contract describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Modeled {
    plan: Plan,
    deleted: bool,
    enabled: bool,
    expire: Option<DateTime<Utc>>,
    /// End of the last period whose lapse was claimed.
    recorded: Option<DateTime<Utc>>,
}

impl Modeled {
    /// The grant is a basis for an ALLOW at `now`.
    fn in_force(&self, now: DateTime<Utc>) -> bool {
        self.plan == Plan::Trial || (self.enabled && self.expire.is_none_or(|end| now < end))
    }

    /// A lapse that the next grant change records first.
    fn pending_lapse(&self, now: DateTime<Utc>) -> bool {
        self.enabled && self.expire.is_some_and(|end| end <= now) && self.recorded != self.expire
    }
}

/// What a step should do: fail with this error, or append these events to this account.
enum Expect {
    Fail(Error),
    Events(usize, Vec<EventKind>),
}

struct Run {
    f: Fixture,
    now: DateTime<Utc>,
    model: HashMap<usize, Modeled>,
    /// (assumption id, event id) of every ALLOW answered.
    allowed: Vec<(String, String)>,
    /// The caps `Authorize` runs with.
    limits: Lifetimes,
}

fn id(account: usize) -> AccountId {
    AccountId::parse(IDS[account], "account_id").unwrap()
}

fn actor(fault: Fault) -> Actor {
    let roles = match fault {
        Fault::NotAdmin => vec![(Product::Support, Role::Agent)],
        _ => vec![(Product::Support, Role::Admin)],
    };
    Actor {
        user_id: "ada".into(),
        roles,
    }
}

fn etag(fault: Fault) -> Option<String> {
    matches!(fault, Fault::StaleEtag).then(|| "v999999".into())
}

/// The grant change errors, in the order the rules check them.
fn change_refused(m: Option<&Modeled>, fault: Fault) -> Option<Error> {
    match (m, fault) {
        (None, _) => Some(Error::AccountNotFound),
        (Some(m), _) if m.deleted => Some(Error::AccountNotFound),
        (_, Fault::NotAdmin) => Some(Error::ActorNotAccountAdmin),
        (Some(m), _) if m.plan == Plan::Trial => Some(Error::TrialAccountAlwaysOn),
        (_, Fault::StaleEtag) => Some(Error::EtagMismatch),
        _ => None,
    }
}

impl Run {
    fn new(limits: Lifetimes) -> Self {
        Self {
            limits,
            f: Fixture::default(),
            now: t(0),
            model: HashMap::new(),
            allowed: Vec::new(),
        }
    }

    /// Assumptions of `account` active at `now`, as stored.
    fn active(&self, account: usize) -> Vec<String> {
        self.f
            .assumptions
            .iter()
            .filter(|a| a.account_id == IDS[account])
            .filter(|a| a.state_at(self.now) == AssumptionState::Active)
            .map(|a| a.assumption_id.clone())
            .collect()
    }

    fn step(&mut self, step: &Step) -> Result<(), TestCaseError> {
        let before = self.f.clone();
        let (result, expect, after): Stepped = match *step {
            Step::Advance { seconds } => {
                self.now += Duration::seconds(seconds);
                return self.check();
            }
            Step::AdvanceToDeadline { pick } => {
                let mut deadlines: Vec<DateTime<Utc>> = self
                    .model
                    .values()
                    .filter_map(|m| m.expire)
                    .chain(self.f.assumptions.iter().map(|a| a.expire_time))
                    .filter(|end| *end > self.now)
                    .collect();
                deadlines.sort();
                deadlines.dedup();
                if !deadlines.is_empty() {
                    self.now = deadlines[pick % deadlines.len()];
                }
                return self.check();
            }
            Step::Upsert { account, paid } => self.upsert(account, paid)?,
            Step::Enable {
                account,
                duration,
                fault,
            } => self.enable(account, duration, fault)?,
            Step::Disable { account, fault } => self.disable(account, fault)?,
            Step::Delete { account } => self.delete(account)?,
            Step::RecordLapse { account } => self.record_lapse(account)?,
            Step::End { pick } => self.end(pick)?,
            Step::Authorize { account, emergency } => {
                return self.authorize(account, emergency, before);
            }
        };
        self.outcome(result, expect, &before)?;
        if let Some((account, m)) = after {
            self.model.insert(account, m);
        }
        self.check()
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random command sequences on three accounts with a moving clock keep every invariant.
    #[test]
    fn commands_keep_the_invariants(
        limits in limits(),
        steps in proptest::collection::vec(step(), 1..=40),
    ) {
        let mut run = Run::new(limits);
        for s in &steps {
            run.step(s)?;
        }
    }
}
