//! `loadgen`: throughput and latency of accessgrant RPCs, reported as ratios to an empty-RPC
//! baseline (`grpc.health.v1.Health/Check`) measured in the same run, so results from different
//! machines can be compared.
//!
//! The run seeds `--accounts` paid accounts `lg-<runid>-<n>`: the first half with the grant
//! enabled indefinitely (the *allow set*), the second half never enabled (the *deny set*). Each
//! scenario then runs for `--warmup` (unmeasured) and `--duration` (measured) with
//! `--concurrency` tasks, each with one request in flight, spread over `--connections` HTTP/2
//! connections.
//!
//! Closed loop by default: a task sends its next request when the previous one completes. With
//! `--rate`, open loop: each task follows a fixed schedule, and a request sent behind schedule
//! (because the previous one was slow) has its latency measured from its *intended* send time,
//! so a slow server cannot hide its queueing (coordinated omission).
//!
//! The target is plain HTTP/2 (`http://`); TLS is not configured.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use accessgrant::proto::v1::{
    AccessDuration, AccessReason, AccountPlan, Actor, AuthorizeAssumptionRequest,
    BatchGetAccessGrantsRequest, Decision, EnableAccessGrantRequest, GetAccessGrantRequest,
    ListAuditEventsRequest, Product, ProductRole, Role, UpsertAccountRequest,
    access_grant_service_client::AccessGrantServiceClient,
    account_service_client::AccountServiceClient, audit_service_client::AuditServiceClient,
    support_access_service_client::SupportAccessServiceClient,
};
use clap::{Parser, ValueEnum};
use futures::stream::{self, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::{
    task::JoinSet,
    time::{Instant, sleep_until},
};
use tonic::{
    Code, Status,
    metadata::{AsciiMetadataValue, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use uuid::Uuid;

/// Errors that end the run (bad arguments, no connection, failed seeding).
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Seeding requests in flight at once.
const SEED_IN_FLIGHT: usize = 32;
/// Attempts per seeding call (see [`with_retry`]).
const SEED_ATTEMPTS: u32 = 8;
/// Pause after the first failed seeding attempt; doubles after each further one.
const SEED_BACKOFF: Duration = Duration::from_millis(20);
/// Account ids per `BatchGetAccessGrants` call.
const BATCH_SIZE: usize = 100;
/// An open-loop request sent more than this behind schedule counts as late.
const LATE_TOLERANCE: Duration = Duration::from_millis(1);
/// How long to wait for each connection to be established.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Latencies above this (one hour, in µs) are recorded as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Linux reports utime/stime in USER_HZ ticks, which is 100 on every mainstream architecture.
const CLOCK_TICKS_PER_SEC: u64 = 100;
/// Staff id, ticket id and customer user id the generator acts as.
const LOADGEN_USER: &str = "loadgen";
/// Ticket id sent with every assumption request.
const LOADGEN_TICKET: &str = "LG-1";

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Load generator for accessgrant: RPC throughput and latency relative to Health/Check"
)]
struct Args {
    /// Server URL (plain HTTP/2), e.g. http://127.0.0.1:50051.
    #[arg(long)]
    target: String,
    /// Bearer token, sent as `authorization: Bearer TOKEN` on every call.
    #[arg(long, env = "LOADGEN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Separate HTTP/2 connections (channels) to spread the load over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Requests in flight (one per task), spread evenly over the connections.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured time per scenario.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Unmeasured time before each scenario's measurement.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Per-request timeout; a request exceeding it counts as an error.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// Accounts to seed: the first half allowed, the second half denied.
    #[arg(long, default_value_t = 2000)]
    accounts: usize,
    /// Scenarios to run, comma-separated; `health` (the baseline) always runs first.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "health,get,batch_get,allow,deny,mixed"
    )]
    scenarios: Vec<Scenario>,
    /// Open loop at this many requests/s in total (default: closed loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Account whose log the `list` scenario pages (default: a random seeded account), e.g. one
    /// with a million events to show that the first page does not grow with the log.
    #[arg(long)]
    list_account: Option<String>,
    /// The `list` scenario asks only for events of this recent window (`start_time` = now −
    /// window), e.g. `1h`: a time-filtered first page.
    #[arg(long, value_parser = humantime::parse_duration)]
    list_window: Option<Duration>,
}

impl Args {
    /// Rejects combinations that cannot produce a meaningful run.
    fn validate(&self) -> Result<(), String> {
        if self.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if self.concurrency < self.connections {
            return Err("--concurrency must be at least --connections".into());
        }
        if self.accounts < 2 {
            return Err("--accounts must be at least 2 (one allowed, one denied)".into());
        }
        if self.duration.is_zero() {
            return Err("--duration must be positive".into());
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err("--rate must be a positive number".into());
        }
        Ok(())
    }

    /// The scenarios to run: `health` first, then the requested ones in order, once each.
    fn scenario_order(&self) -> Vec<Scenario> {
        let mut order = vec![Scenario::Health];
        for &scenario in &self.scenarios {
            if !order.contains(&scenario) {
                order.push(scenario);
            }
        }
        order
    }
}

/// A workload measured on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[value(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
enum Scenario {
    /// `grpc.health.v1.Health/Check`: the baseline.
    Health,
    /// `GetAccessGrant` on a random seeded account.
    Get,
    /// `BatchGetAccessGrants` of 100 random seeded accounts.
    BatchGet,
    /// `AuthorizeAssumption` on an allow-set account, expecting ALLOW.
    Allow,
    /// `AuthorizeAssumption` on a deny-set account, expecting DENY.
    Deny,
    /// 70% get, 10% batch_get, 15% allow, 5% deny.
    Mixed,
    /// `ListAuditEvents` first page (50, newest first).
    List,
}

impl Scenario {
    /// The name used on the command line and in the table.
    fn name(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::Get => "get",
            Self::BatchGet => "batch_get",
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Mixed => "mixed",
            Self::List => "list",
        }
    }

    /// The next request to send.
    fn pick(self, rng: &mut Rng) -> Op {
        match self {
            Self::Health => Op::Health,
            Self::Get => Op::Get,
            Self::BatchGet => Op::BatchGet,
            Self::Allow => Op::Allow,
            Self::Deny => Op::Deny,
            Self::List => Op::List,
            Self::Mixed => match rng.below(100) {
                0..70 => Op::Get,
                70..80 => Op::BatchGet,
                80..95 => Op::Allow,
                _ => Op::Deny,
            },
        }
    }
}

/// One kind of request.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// Health check of the whole server.
    Health,
    /// Read one grant.
    Get,
    /// Read [`BATCH_SIZE`] grants.
    BatchGet,
    /// Assumption on an allow-set account.
    Allow,
    /// Assumption on a deny-set account.
    Deny,
    /// First page of an audit log.
    List,
}

/// SplitMix64: fast and good enough to pick accounts; not for anything secret.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    /// A generator seeded from the OS's randomness (via a v4 UUID).
    fn seeded() -> Self {
        Self(Uuid::new_v4().as_u64_pair().0)
    }

    /// The next 64 random bits.
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), by multiply-shift.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A random element of a non-empty slice, cloned.
    fn pick(&mut self, ids: &[String]) -> String {
        ids[self.below(ids.len())].clone()
    }
}

/// The seeded account ids: `ids[..allow_len]` allow, the rest deny.
#[derive(Debug)]
struct Accounts {
    /// Every seeded id.
    ids: Vec<String>,
    /// How many leading ids have the grant enabled.
    allow_len: usize,
    /// The account the `list` scenario reads, if not a seeded one.
    list_account: Option<String>,
    /// The recent window the `list` scenario asks for, if any.
    list_window: Option<Duration>,
}

impl Accounts {
    /// `count` ids tagged with `run_id`, the first half to be enabled.
    fn new(run_id: &str, count: usize) -> Self {
        Self {
            ids: (0..count).map(|n| format!("lg-{run_id}-{n}")).collect(),
            allow_len: count / 2,
            list_account: None,
            list_window: None,
        }
    }

    /// Accounts whose grant is enabled.
    fn allow(&self) -> &[String] {
        &self.ids[..self.allow_len]
    }

    /// Accounts whose grant is disabled.
    fn deny(&self) -> &[String] {
        &self.ids[self.allow_len..]
    }
}

/// Adds `authorization: Bearer TOKEN` to every call when a token is configured.
#[derive(Debug, Clone)]
struct Auth {
    /// The full header value, if any.
    header: Option<AsciiMetadataValue>,
}

impl Auth {
    /// Builds the header once; a token that is not a valid header value is an argument error.
    fn new(token: Option<&str>) -> Result<Self, BoxError> {
        let header = token
            .map(|t| MetadataValue::try_from(format!("Bearer {t}")))
            .transpose()
            .map_err(|_| "--token contains characters not allowed in a header")?;
        Ok(Self { header })
    }
}

impl Interceptor for Auth {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

/// The channel every client uses, with the auth interceptor.
type Svc = InterceptedService<Channel, Auth>;

/// Clients of every service, all on one HTTP/2 connection.
#[derive(Debug, Clone)]
struct Clients {
    /// `grpc.health.v1.Health`.
    health: HealthClient<Svc>,
    /// `accessgrant.v1.AccountService`.
    accounts: AccountServiceClient<Svc>,
    /// `accessgrant.v1.AccessGrantService`.
    grants: AccessGrantServiceClient<Svc>,
    /// `accessgrant.v1.SupportAccessService`.
    support: SupportAccessServiceClient<Svc>,
    /// `accessgrant.v1.AuditService`.
    audit: AuditServiceClient<Svc>,
}

impl Clients {
    /// Clients sharing `channel`.
    fn new(channel: Channel, auth: &Auth) -> Self {
        Self {
            health: HealthClient::with_interceptor(channel.clone(), auth.clone()),
            accounts: AccountServiceClient::with_interceptor(channel.clone(), auth.clone()),
            grants: AccessGrantServiceClient::with_interceptor(channel.clone(), auth.clone()),
            support: SupportAccessServiceClient::with_interceptor(channel.clone(), auth.clone()),
            audit: AuditServiceClient::with_interceptor(channel, auth.clone()),
        }
    }
}

/// An error and its sources, `outer: inner: …` (tonic's transport error alone says little).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    text
}

/// Opens `--connections` separate HTTP/2 connections.
async fn connect(args: &Args, auth: &Auth) -> Result<Vec<Clients>, BoxError> {
    let endpoint = Endpoint::from_shared(args.target.clone())?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(args.request_timeout)
        .tcp_nodelay(true);
    let mut clients = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        // Each `connect()` dials its own connection; clones of one Channel would share it.
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {}: {}", args.target, error_chain(&e)))?;
        clients.push(Clients::new(channel, auth));
    }
    Ok(clients)
}

/// How one request ended.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// OK with the expected answer.
    Ok,
    /// A non-OK status (by code name), or `WRONG_DECISION` / `NOT_SERVING`.
    Failed(&'static str),
}

impl Outcome {
    /// The outcome of an RPC whose only check is the status.
    fn of<T>(result: Result<tonic::Response<T>, Status>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(status) => Self::Failed(code_name(status.code())),
        }
    }
}

/// The canonical gRPC name of a status code, e.g. `RESOURCE_EXHAUSTED`.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The customer admin who enables grants during seeding.
fn loadgen_admin() -> Actor {
    Actor {
        user_id: LOADGEN_USER.into(),
        roles: vec![ProductRole {
            product: Product::Support.into(),
            role: Role::Admin.into(),
        }],
    }
}

/// Whether a seeding call that failed with `code` is worth retrying (shed or briefly down).
fn retryable(code: Code) -> bool {
    matches!(code, Code::ResourceExhausted | Code::Unavailable)
}

/// Runs `call` up to [`SEED_ATTEMPTS`] times, backing off exponentially from [`SEED_BACKOFF`]
/// while it fails with a [retryable] code, so seeding survives a server that sheds load.
async fn with_retry<T, F, Fut>(mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut backoff = SEED_BACKOFF;
    for _ in 1..SEED_ATTEMPTS {
        match call().await {
            Err(status) if retryable(status.code()) => {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            done => return done,
        }
    }
    call().await
}

/// Creates one paid account and, for the allow set, enables its grant indefinitely. Both calls
/// are safe to repeat: upserting the same plan and re-enabling change nothing that matters here.
async fn seed_one(clients: &Clients, account_id: &str, enable: bool) -> Result<(), Status> {
    let upsert = UpsertAccountRequest {
        account_id: account_id.into(),
        plan: AccountPlan::Paid.into(),
        ..Default::default()
    };
    with_retry(|| {
        let mut client = clients.accounts.clone();
        let request = upsert.clone();
        async move { client.upsert_account(request).await }
    })
    .await?;
    if enable {
        let enable = EnableAccessGrantRequest {
            account_id: account_id.into(),
            duration: AccessDuration::Indefinite.into(),
            actor: Some(loadgen_admin()),
            ..Default::default()
        };
        with_retry(|| {
            let mut client = clients.grants.clone();
            let request = enable.clone();
            async move { client.enable_access_grant(request).await }
        })
        .await?;
    }
    Ok(())
}

/// Seeds every account, [`SEED_IN_FLIGHT`] at a time over all connections; fails if any fails.
async fn seed(clients: &[Clients], accounts: &Accounts) -> Result<Duration, BoxError> {
    let started = Instant::now();
    let results: Vec<Result<(), String>> = stream::iter(accounts.ids.iter().enumerate())
        .map(|(n, id)| {
            let conn = &clients[n % clients.len()];
            let enable = n < accounts.allow_len;
            async move {
                seed_one(conn, id, enable)
                    .await
                    .map_err(|s| format!("{id}: {} {}", code_name(s.code()), s.message()))
            }
        })
        .buffer_unordered(SEED_IN_FLIGHT)
        .collect()
        .await;
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if let Some(first) = failures.first() {
        return Err(format!(
            "seeding failed for {} of {} accounts; first: {first}",
            failures.len(),
            accounts.ids.len()
        )
        .into());
    }
    Ok(started.elapsed())
}

/// One task's view: a connection, the seeded accounts, its own random numbers.
#[derive(Debug)]
struct Worker {
    /// Clients on this task's connection.
    clients: Clients,
    /// The seeded accounts.
    accounts: Arc<Accounts>,
    /// Picks accounts and mixed-scenario requests.
    rng: Rng,
    /// The empty latency histogram this task's tally starts from.
    latency_template: Histogram<u64>,
}

impl Worker {
    /// Sends one request of kind `op` and judges the answer.
    async fn call(&mut self, op: Op) -> Outcome {
        match op {
            Op::Health => self.health().await,
            Op::Get => self.get().await,
            Op::BatchGet => self.batch_get().await,
            Op::Allow => self.authorize(Decision::Allow).await,
            Op::Deny => self.authorize(Decision::Deny).await,
            Op::List => self.list().await,
        }
    }

    /// Health/Check of the whole server; anything but SERVING is an error.
    async fn health(&mut self) -> Outcome {
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
    async fn get(&mut self) -> Outcome {
        let account_id = self.rng.pick(&self.accounts.ids);
        let request = GetAccessGrantRequest { account_id };
        Outcome::of(self.clients.grants.get_access_grant(request).await)
    }

    /// BatchGetAccessGrants of [`BATCH_SIZE`] random seeded accounts.
    async fn batch_get(&mut self) -> Outcome {
        let account_ids = (0..BATCH_SIZE)
            .map(|_| self.rng.pick(&self.accounts.ids))
            .collect();
        let request = BatchGetAccessGrantsRequest { account_ids };
        Outcome::of(self.clients.grants.batch_get_access_grants(request).await)
    }

    /// ListAuditEvents: the first page of `--list-account` or of a random seeded account.
    async fn list(&mut self) -> Outcome {
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

    /// AuthorizeAssumption on an account of the set that should yield `expected`.
    async fn authorize(&mut self, expected: Decision) -> Outcome {
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
}

/// What one task (and, merged, one scenario) observed in the measured window.
#[derive(Debug)]
struct Tally {
    /// Latency of OK requests, in microseconds (clamped to [`MAX_LATENCY_US`]).
    latency_us: Histogram<u64>,
    /// Requests answered OK as expected.
    ok: u64,
    /// Failed requests by status code name (or `WRONG_DECISION` / `NOT_SERVING`).
    errors: BTreeMap<&'static str, u64>,
    /// Open loop only: requests sent more than [`LATE_TOLERANCE`] behind schedule, or not sent
    /// at all before the window closed.
    late: u64,
}

impl Tally {
    /// The empty histogram every tally copies its configuration from.
    fn template() -> Result<Histogram<u64>, BoxError> {
        Ok(Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?)
    }

    /// An empty tally whose histogram has `template`'s bounds.
    fn new(template: &Histogram<u64>) -> Self {
        Self {
            latency_us: Histogram::new_from(template),
            ok: 0,
            errors: BTreeMap::new(),
            late: 0,
        }
    }

    /// Counts one completed request.
    fn record(&mut self, latency: Duration, outcome: Outcome) {
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
    fn merge(&mut self, other: Self) -> Result<(), BoxError> {
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
struct Window {
    /// End of warmup.
    measure_start: Instant,
    /// No request starts after this.
    end: Instant,
}

impl Window {
    /// A window starting now.
    fn from_now(warmup: Duration, duration: Duration) -> Self {
        let measure_start = Instant::now() + warmup;
        Self {
            measure_start,
            end: measure_start + duration,
        }
    }
}

/// Closed loop: the next request goes out as soon as the previous one completes.
async fn closed_loop(worker: &mut Worker, scenario: Scenario, window: Window) -> Tally {
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
struct Schedule {
    /// Intended send time of the first request.
    first: Instant,
    /// Time between intended send times.
    period: Duration,
}

/// Scheduled requests in `from..end` that were never sent.
fn unsent(from: Instant, end: Instant, period: Duration) -> u64 {
    let span = end.saturating_duration_since(from).as_nanos();
    u64::try_from(span.div_ceil(period.as_nanos().max(1))).unwrap_or(u64::MAX)
}

/// Open loop: requests go out on schedule. When the previous request overran, the next one is
/// sent at once and its latency counts from its intended send time; otherwise the task sleeps
/// until then and counts from the actual send (so timer slack is not charged to the server).
async fn open_loop(
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
fn spawn_tasks(
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
fn cpu_time() -> Option<Duration> {
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

/// One row of the results.
#[derive(Debug, Serialize)]
struct ScenarioResult {
    /// Which scenario.
    scenario: Scenario,
    /// OK answers per second over the measured window.
    requests_per_sec: f64,
    /// `requests_per_sec` divided by the health scenario's; `None` if health had none.
    ratio_to_health: Option<f64>,
    /// Median latency of OK requests.
    p50_ms: f64,
    /// 99th percentile latency of OK requests.
    p99_ms: f64,
    /// 99.9th percentile latency of OK requests.
    p999_ms: f64,
    /// OK answers.
    ok: u64,
    /// Errors by code.
    errors: BTreeMap<&'static str, u64>,
    /// Open loop only: late or unsent requests.
    late: u64,
    /// The generator's own CPU use during the measured window, in % of one core.
    loadgen_cpu_percent: Option<f64>,
}

impl ScenarioResult {
    /// Summarises a merged tally; the ratio is filled in once health is known.
    fn new(scenario: Scenario, tally: &Tally, duration: Duration, cpu: Option<Duration>) -> Self {
        let ms = |q: f64| tally.latency_us.value_at_quantile(q) as f64 / 1000.0;
        Self {
            scenario,
            requests_per_sec: tally.ok as f64 / duration.as_secs_f64(),
            ratio_to_health: None,
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            ok: tally.ok,
            errors: tally.errors.clone(),
            late: tally.late,
            loadgen_cpu_percent: cpu.map(|c| 100.0 * c.as_secs_f64() / duration.as_secs_f64()),
        }
    }
}

/// Runs one scenario (warmup, then measurement) and summarises it.
async fn run_scenario(
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

/// Divides every scenario's throughput by the health scenario's.
fn set_ratios(results: &mut [ScenarioResult]) {
    let baseline = results
        .iter()
        .find(|r| r.scenario == Scenario::Health)
        .map(|r| r.requests_per_sec)
        .filter(|&rps| rps > 0.0);
    for result in results {
        result.ratio_to_health = baseline.map(|b| result.requests_per_sec / b);
    }
}

/// The run's parameters, as printed and written to JSON.
#[derive(Debug, Serialize)]
struct Parameters {
    /// Server URL.
    target: String,
    /// Tag in the seeded account ids.
    run_id: String,
    /// HTTP/2 connections.
    connections: usize,
    /// Requests in flight.
    concurrency: usize,
    /// Measured seconds per scenario.
    duration_secs: f64,
    /// Warmup seconds per scenario.
    warmup_secs: f64,
    /// Seeded accounts.
    accounts: usize,
    /// Open-loop target rate; `None` for closed loop.
    rate: Option<f64>,
    /// CPUs available to this process (what `nproc` prints).
    nproc: usize,
}

impl Parameters {
    /// Collects the parameters of this run.
    fn new(args: &Args, run_id: &str) -> Self {
        Self {
            target: args.target.clone(),
            run_id: run_id.into(),
            connections: args.connections,
            concurrency: args.concurrency,
            duration_secs: args.duration.as_secs_f64(),
            warmup_secs: args.warmup.as_secs_f64(),
            accounts: args.accounts,
            rate: args.rate,
            nproc: std::thread::available_parallelism().map_or(0, usize::from),
        }
    }

    /// Prints the parameters, one line.
    fn print(&self) {
        let mode = match self.rate {
            Some(rate) => format!("open loop at {rate} req/s"),
            None => "closed loop".into(),
        };
        println!(
            "target={} run_id={} connections={} concurrency={} duration={}s warmup={}s \
             accounts={} mode={mode} nproc={}",
            self.target,
            self.run_id,
            self.connections,
            self.concurrency,
            self.duration_secs,
            self.warmup_secs,
            self.accounts,
            self.nproc,
        );
    }
}

/// Everything the run measured.
#[derive(Debug, Serialize)]
struct Report {
    /// How the run was configured.
    parameters: Parameters,
    /// Seconds spent seeding.
    seeding_secs: f64,
    /// One entry per scenario, health first.
    scenarios: Vec<ScenarioResult>,
    /// The generator's total CPU time (user + system) for the whole run.
    loadgen_cpu_secs: Option<f64>,
}

/// Formats error counts as `CODE=n CODE=n`, or `-` if none.
fn format_errors(errors: &BTreeMap<&'static str, u64>) -> String {
    if errors.is_empty() {
        return "-".into();
    }
    errors
        .iter()
        .map(|(code, n)| format!("{code}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Prints the results table; the `late` column only in open-loop mode.
fn print_table(results: &[ScenarioResult], open_loop: bool) {
    let late_header = if open_loop { "      late" } else { "" };
    println!(
        "{:<10} {:>12} {:>15} {:>9} {:>9} {:>9} {:>10}{late_header} {:>8}  errors",
        "scenario", "requests/s", "ratio_to_health", "p50_ms", "p99_ms", "p99.9_ms", "ok", "lg_cpu"
    );
    for r in results {
        let ratio = r
            .ratio_to_health
            .map_or_else(|| "n/a".into(), |x| format!("{x:.3}"));
        let late = if open_loop {
            format!(" {:>9}", r.late)
        } else {
            String::new()
        };
        let cpu = r
            .loadgen_cpu_percent
            .map_or_else(|| "n/a".into(), |c| format!("{c:.0}%"));
        println!(
            "{:<10} {:>12.1} {:>15} {:>9.3} {:>9.3} {:>9.3} {:>10}{late} {cpu:>8}  {}",
            r.scenario.name(),
            r.requests_per_sec,
            ratio,
            r.p50_ms,
            r.p99_ms,
            r.p999_ms,
            r.ok,
            format_errors(&r.errors),
        );
    }
    println!(
        "requests/s and latencies count OK answers only (one batch_get = one request of \
         {BATCH_SIZE} ids); lg_cpu = loadgen CPU during the window, % of one core"
    );
}

/// Writes the report as pretty JSON.
fn write_json(path: &Path, report: &Report) -> Result<(), BoxError> {
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(path, text + "\n")
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

/// A short tag that keeps reruns' account ids apart.
fn new_run_id() -> String {
    Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// Seeds, runs every scenario, prints (and optionally writes) the results.
async fn run(args: Args) -> Result<(), BoxError> {
    args.validate()?;
    let run_id = new_run_id();
    let parameters = Parameters::new(&args, &run_id);
    parameters.print();

    let auth = Auth::new(args.token.as_deref())?;
    let clients = connect(&args, &auth).await?;
    let accounts = Arc::new(Accounts {
        list_account: args.list_account.clone(),
        list_window: args.list_window,
        ..Accounts::new(&run_id, args.accounts)
    });
    let seeding = seed(&clients, &accounts).await?;
    println!(
        "seeded {} accounts ({} allow, {} deny) in {:.2}s ({:.0} accounts/s)",
        accounts.ids.len(),
        accounts.allow().len(),
        accounts.deny().len(),
        seeding.as_secs_f64(),
        accounts.ids.len() as f64 / seeding.as_secs_f64(),
    );

    let mut results = Vec::new();
    for scenario in args.scenario_order() {
        eprintln!(
            "running {} ({} warmup + {} measured)",
            scenario.name(),
            humantime::format_duration(args.warmup),
            humantime::format_duration(args.duration)
        );
        results.push(run_scenario(scenario, &clients, &accounts, &args).await?);
    }
    set_ratios(&mut results);
    print_table(&results, args.rate.is_some());

    let total_cpu = cpu_time();
    if let Some(cpu) = total_cpu {
        println!(
            "loadgen CPU time (user+system, whole run): {:.2}s",
            cpu.as_secs_f64()
        );
    }
    if let Some(path) = &args.json {
        let report = Report {
            parameters,
            seeding_secs: seeding.as_secs_f64(),
            scenarios: results,
            loadgen_cpu_secs: total_cpu.map(|c| c.as_secs_f64()),
        };
        write_json(path, &report)?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
