//! The measured part: tasks sending requests in a closed or an open loop over a scenario's
//! window, each keeping its own tally, merged once the window closes.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use accessgrant::proto::v1::{
    AccessReason, AuthorizeAssumptionRequest, BatchGetAccessGrantsRequest, Decision,
    GetAccessGrantRequest, GetAuditConsistencyProofRequest, GetAuditInclusionProofRequest,
    ListAuditEventsRequest,
};
use hdrhistogram::Histogram;
use tokio::{
    task::JoinSet,
    time::{Instant, sleep_until},
};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use uuid::Uuid;

use crate::{
    BoxError,
    args::{Args, Op, Scenario},
    connect::{Clients, Outcome, code_name},
    report::ScenarioResult,
};

/// Account ids per `BatchGetAccessGrants` call.
pub(crate) const BATCH_SIZE: usize = 100;

/// An open-loop request sent more than this behind schedule counts as late.
const LATE_TOLERANCE: Duration = Duration::from_millis(1);

/// Latencies above this (one hour, in µs) are recorded as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Linux reports utime/stime in USER_HZ ticks, which is 100 on every mainstream architecture.
const CLOCK_TICKS_PER_SEC: u64 = 100;

/// Staff id, ticket id and customer user id the generator acts as.
pub(crate) const LOADGEN_USER: &str = "loadgen";

/// Ticket id sent with every assumption request.
pub(crate) const LOADGEN_TICKET: &str = "LG-1";

/// SplitMix64: fast and good enough to pick accounts; not for anything secret.
#[derive(Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator seeded from the OS's randomness (via a v4 UUID).
    pub(crate) fn seeded() -> Self {
        Self(Uuid::new_v4().as_u64_pair().0)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), by multiply-shift.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A random element of a non-empty slice, cloned.
    pub(crate) fn pick(&mut self, ids: &[String]) -> String {
        ids[self.below(ids.len())].clone()
    }
}

/// The seeded account ids: `ids[..allow_len]` allow, the rest deny.
#[derive(Debug)]
pub(crate) struct Accounts {
    /// Every seeded id.
    pub(crate) ids: Vec<String>,
    /// How many leading ids have the grant enabled.
    pub(crate) allow_len: usize,
    /// The account the `list` scenario reads, if not a seeded one.
    pub(crate) list_account: Option<String>,
    /// The recent window the `list` scenario asks for, if any.
    pub(crate) list_window: Option<Duration>,
    /// How many `growth-K` events the `proof` scenario picks from.
    pub(crate) proof_events: usize,
    /// `(account, approved access request)` of each deny-set account, when the
    /// `request_allow` scenario runs.
    pub(crate) requests: Vec<(String, String)>,
}

impl Accounts {
    /// `count` ids tagged with `run_id`, the first half to be enabled.
    pub(crate) fn new(run_id: &str, count: usize) -> Self {
        Self {
            ids: (0..count).map(|n| format!("lg-{run_id}-{n}")).collect(),
            allow_len: count / 2,
            list_account: None,
            list_window: None,
            proof_events: 0,
            requests: Vec::new(),
        }
    }

    /// Accounts whose grant is enabled.
    pub(crate) fn allow(&self) -> &[String] {
        &self.ids[..self.allow_len]
    }

    /// Accounts whose grant is disabled.
    pub(crate) fn deny(&self) -> &[String] {
        &self.ids[self.allow_len..]
    }
}

/// One task's view: a connection, the seeded accounts, its own random numbers.
#[derive(Debug)]
pub(crate) struct Worker {
    /// Clients on this task's connection.
    pub(crate) clients: Clients,
    /// The seeded accounts.
    pub(crate) accounts: Arc<Accounts>,
    /// Picks accounts and mixed-scenario requests.
    pub(crate) rng: Rng,
    /// The empty latency histogram this task's tally starts from.
    pub(crate) latency_template: Histogram<u64>,
}

impl Worker {
    /// Sends one request of kind `op` and judges the answer.
    pub(crate) async fn call(&mut self, op: Op) -> Outcome {
        match op {
            Op::Health => self.health().await,
            Op::Get => self.get().await,
            Op::BatchGet => self.batch_get().await,
            Op::Allow => self.authorize(Decision::Allow).await,
            Op::RequestAllow => self.authorize_on_request().await,
            Op::Deny => self.authorize(Decision::Deny).await,
            Op::List => self.list().await,
            Op::Inclusion => self.inclusion().await,
            Op::Consistency => self.consistency().await,
        }
    }

    /// Health/Check of the whole server; anything but SERVING is an error.
    pub(crate) async fn health(&mut self) -> Outcome {
        let request = HealthCheckRequest {
            service: String::new(),
        };
        match self.clients.health.check(request).await {
            Ok(r) if r.get_ref().status() == ServingStatus::Serving => Outcome::Ok,
            Ok(_) => Outcome::Failed("NOT_SERVING"),
            Err(status) => Outcome::Failed(code_name(status.code())),
        }
    }

    /// GetAccessGrant of a random seeded account.
    pub(crate) async fn get(&mut self) -> Outcome {
        let account_id = self.rng.pick(&self.accounts.ids);
        let request = GetAccessGrantRequest { account_id };
        Outcome::of(self.clients.grants.get_access_grant(request).await)
    }

    /// BatchGetAccessGrants of [`BATCH_SIZE`] random seeded accounts.
    pub(crate) async fn batch_get(&mut self) -> Outcome {
        let account_ids = (0..BATCH_SIZE)
            .map(|_| self.rng.pick(&self.accounts.ids))
            .collect();
        let request = BatchGetAccessGrantsRequest { account_ids };
        Outcome::of(self.clients.grants.batch_get_access_grants(request).await)
    }

    /// ListAuditEvents: the first page of `--list-account` or of a random seeded account.
    pub(crate) async fn list(&mut self) -> Outcome {
        let account_id = match &self.accounts.list_account {
            Some(id) => id.clone(),
            None => self.rng.pick(&self.accounts.ids),
        };
        let start_time = self.accounts.list_window.map(|window| {
            let start = std::time::SystemTime::now()
                .checked_sub(window)
                .unwrap_or(std::time::UNIX_EPOCH);
            prost_types::Timestamp::from(start)
        });
        let request = ListAuditEventsRequest {
            account_id,
            page_size: 50,
            start_time,
            ..Default::default()
        };
        Outcome::of(self.clients.audit.list_audit_events(request).await)
    }

    /// GetAuditInclusionProof of a random `growth-K` event at the latest checkpoint.
    pub(crate) async fn inclusion(&mut self) -> Outcome {
        if self.accounts.proof_events == 0 {
            return Outcome::Failed("NO_PROOF_EVENTS");
        }
        let k = 1 + self.rng.below(self.accounts.proof_events);
        let request = GetAuditInclusionProofRequest {
            event_id: format!("growth-{k}"),
            tree_size: 0,
        };
        Outcome::of(self.clients.audit.get_audit_inclusion_proof(request).await)
    }

    /// GetAuditConsistencyProof from a random size up to `--proof-events` to the latest.
    pub(crate) async fn consistency(&mut self) -> Outcome {
        if self.accounts.proof_events == 0 {
            return Outcome::Failed("NO_PROOF_EVENTS");
        }
        let first = 1 + self.rng.below(self.accounts.proof_events);
        let request = GetAuditConsistencyProofRequest {
            first_tree_size: first as i64,
            second_tree_size: 0,
        };
        Outcome::of(
            self.clients
                .audit
                .get_audit_consistency_proof(request)
                .await,
        )
    }

    /// AuthorizeAssumption on an account of the set that should yield `expected`.
    pub(crate) async fn authorize(&mut self, expected: Decision) -> Outcome {
        let ids = match expected {
            Decision::Allow => self.accounts.allow(),
            _ => self.accounts.deny(),
        };
        let request = AuthorizeAssumptionRequest {
            account_id: self.rng.pick(ids),
            staff_id: LOADGEN_USER.into(),
            ticket_id: LOADGEN_TICKET.into(),
            reason: AccessReason::Other.into(),
            ..Default::default()
        };
        match self.clients.support.authorize_assumption(request).await {
            Ok(r) if r.get_ref().decision() == expected => Outcome::Ok,
            Ok(_) => Outcome::Failed("WRONG_DECISION"),
            Err(status) => Outcome::Failed(code_name(status.code())),
        }
    }

    /// AuthorizeAssumption naming a random seeded approved request; anything but ALLOW is an
    /// error.
    async fn authorize_on_request(&mut self) -> Outcome {
        if self.accounts.requests.is_empty() {
            return Outcome::Failed("NO_REQUESTS_SEEDED");
        }
        let (account_id, access_request_id) =
            self.accounts.requests[self.rng.below(self.accounts.requests.len())].clone();
        let request = AuthorizeAssumptionRequest {
            account_id,
            staff_id: LOADGEN_USER.into(),
            ticket_id: LOADGEN_TICKET.into(),
            reason: AccessReason::Other.into(),
            access_request_id,
            ..Default::default()
        };
        match self.clients.support.authorize_assumption(request).await {
            Ok(r) if r.get_ref().decision() == Decision::Allow => Outcome::Ok,
            Ok(_) => Outcome::Failed("WRONG_DECISION"),
            Err(status) => Outcome::Failed(code_name(status.code())),
        }
    }
}

/// What one task (and, merged, one scenario) observed in the measured window.
#[derive(Debug)]
pub(crate) struct Tally {
    /// Latency of OK requests, in microseconds (clamped to [`MAX_LATENCY_US`]).
    pub(crate) latency_us: Histogram<u64>,
    /// Requests answered OK as expected.
    pub(crate) ok: u64,
    /// Failed requests by status code name (or `WRONG_DECISION` / `NOT_SERVING`).
    pub(crate) errors: BTreeMap<&'static str, u64>,
    /// Open loop only: requests sent more than [`LATE_TOLERANCE`] behind schedule, or not sent
    /// at all before the window closed.
    pub(crate) late: u64,
}

impl Tally {
    /// The empty histogram every tally copies its configuration from.
    pub(crate) fn template() -> Result<Histogram<u64>, BoxError> {
        Ok(Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?)
    }

    /// An empty tally whose histogram has `template`'s bounds.
    pub(crate) fn new(template: &Histogram<u64>) -> Self {
        Self {
            latency_us: Histogram::new_from(template),
            ok: 0,
            errors: BTreeMap::new(),
            late: 0,
        }
    }

    /// Counts one completed request.
    pub(crate) fn record(&mut self, latency: Duration, outcome: Outcome) {
        match outcome {
            Outcome::Ok => {
                self.ok += 1;
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.latency_us.saturating_record(micros);
            }
            Outcome::Failed(code) => *self.errors.entry(code).or_default() += 1,
        }
    }

    /// Adds another task's tally to this one.
    pub(crate) fn merge(&mut self, other: Self) -> Result<(), BoxError> {
        self.latency_us.add(&other.latency_us)?;
        self.ok += other.ok;
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        self.late += other.late;
        Ok(())
    }
}

/// A scenario's time window: requests *started* before `measure_start` are warmup; requests
/// started in `measure_start..end` are measured (and awaited to completion).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    /// End of warmup.
    pub(crate) measure_start: Instant,
    /// No request starts after this.
    pub(crate) end: Instant,
}

impl Window {
    /// A window starting now.
    pub(crate) fn from_now(warmup: Duration, duration: Duration) -> Self {
        let measure_start = Instant::now() + warmup;
        Self {
            measure_start,
            end: measure_start + duration,
        }
    }
}

/// Closed loop: the next request goes out as soon as the previous one completes.
pub(crate) async fn closed_loop(worker: &mut Worker, scenario: Scenario, window: Window) -> Tally {
    let mut tally = Tally::new(&worker.latency_template);
    loop {
        let start = Instant::now();
        if start >= window.end {
            return tally;
        }
        let op = scenario.pick(&mut worker.rng);
        let outcome = worker.call(op).await;
        if start >= window.measure_start {
            tally.record(start.elapsed(), outcome);
        }
    }
}

/// A task's open-loop schedule: one request every `period`, the first at `first`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    /// Intended send time of the first request.
    pub(crate) first: Instant,
    /// Time between intended send times.
    pub(crate) period: Duration,
}

/// Scheduled requests in `from..end` that were never sent.
pub(crate) fn unsent(from: Instant, end: Instant, period: Duration) -> u64 {
    let span = end.saturating_duration_since(from).as_nanos();
    u64::try_from(span.div_ceil(period.as_nanos().max(1))).unwrap_or(u64::MAX)
}

/// Open loop: requests go out on schedule. When the previous request overran, the next one is
/// sent at once and its latency counts from its intended send time; otherwise the task sleeps
/// until then and counts from the actual send (so timer slack is not charged to the server).
pub(crate) async fn open_loop(
    worker: &mut Worker,
    scenario: Scenario,
    window: Window,
    schedule: Schedule,
) -> Tally {
    let mut tally = Tally::new(&worker.latency_template);
    let mut intended = schedule.first;
    while intended < window.end {
        let now = Instant::now();
        if now >= window.end {
            tally.late += unsent(
                intended.max(window.measure_start),
                window.end,
                schedule.period,
            );
            break;
        }
        let behind = now.saturating_duration_since(intended);
        let start = if behind.is_zero() {
            sleep_until(intended).await;
            Instant::now()
        } else {
            intended
        };
        let op = scenario.pick(&mut worker.rng);
        let outcome = worker.call(op).await;
        if intended >= window.measure_start {
            tally.record(start.elapsed(), outcome);
            if behind > LATE_TOLERANCE {
                tally.late += 1;
            }
        }
        intended += schedule.period;
    }
    tally
}

/// Starts `--concurrency` tasks for `scenario`; task `i` uses connection `i % connections`.
pub(crate) fn spawn_tasks(
    scenario: Scenario,
    clients: &[Clients],
    accounts: &Arc<Accounts>,
    args: &Args,
    window: Window,
    template: &Histogram<u64>,
) -> JoinSet<Tally> {
    let tasks = args.concurrency;
    // Each task sends rate/concurrency requests/s; offsets spread the sends evenly.
    let period = args
        .rate
        .map(|rate| Duration::from_secs_f64(tasks as f64 / rate));
    let origin = Instant::now();
    let mut set = JoinSet::new();
    for i in 0..tasks {
        let mut worker = Worker {
            clients: clients[i % clients.len()].clone(),
            accounts: Arc::clone(accounts),
            rng: Rng::seeded(),
            latency_template: Histogram::new_from(template),
        };
        let schedule = period.map(|period| Schedule {
            first: origin + period.mul_f64(i as f64 / tasks as f64),
            period,
        });
        set.spawn(async move {
            match schedule {
                None => closed_loop(&mut worker, scenario, window).await,
                Some(schedule) => open_loop(&mut worker, scenario, window, schedule).await,
            }
        });
    }
    set
}

/// CPU time (user + system) this process has used so far; `None` off Linux.
pub(crate) fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name start at field 3 (state); utime is field 14.
    let (_, after_comm) = stat.rsplit_once(')')?;
    let mut fields = after_comm.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / CLOCK_TICKS_PER_SEC,
    ))
}

/// Runs one scenario (warmup, then measurement) and summarises it.
pub(crate) async fn run_scenario(
    scenario: Scenario,
    clients: &[Clients],
    accounts: &Arc<Accounts>,
    args: &Args,
) -> Result<ScenarioResult, BoxError> {
    let template = Tally::template()?;
    let window = Window::from_now(args.warmup, args.duration);
    let mut tasks = spawn_tasks(scenario, clients, accounts, args, window, &template);
    sleep_until(window.measure_start).await;
    let cpu_before = cpu_time();
    sleep_until(window.end).await;
    let cpu_after = cpu_time();
    let mut tally = Tally::new(&template);
    while let Some(joined) = tasks.join_next().await {
        tally.merge(joined.map_err(|e| format!("a {} task failed: {e}", scenario.name()))?)?;
    }
    let cpu = cpu_before.zip(cpu_after).map(|(b, a)| a.saturating_sub(b));
    Ok(ScenarioResult::new(scenario, &tally, args.duration, cpu))
}
