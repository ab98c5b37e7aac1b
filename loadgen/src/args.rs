//! The command line, and the workloads it names: what to run is decided here, once, before
//! any connection is made.

use std::{path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};
use serde::Serialize;

use crate::workload::Rng;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Load generator for accessgrant: RPC throughput and latency relative to Health/Check"
)]
pub(crate) struct Args {
    /// Server URL (plain HTTP/2), e.g. http://127.0.0.1:50051.
    #[arg(long)]
    pub(crate) target: String,
    /// Bearer token, sent as `authorization: Bearer TOKEN` on every call.
    #[arg(long, env = "LOADGEN_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Separate HTTP/2 connections (channels) to spread the load over.
    #[arg(long, default_value_t = 4)]
    pub(crate) connections: usize,
    /// Requests in flight (one per task), spread evenly over the connections.
    #[arg(long, default_value_t = 64)]
    pub(crate) concurrency: usize,
    /// Measured time per scenario.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) duration: Duration,
    /// Unmeasured time before each scenario's measurement.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub(crate) warmup: Duration,
    /// Per-request timeout; a request exceeding it counts as an error.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) request_timeout: Duration,
    /// Accounts to seed: the first half allowed, the second half denied.
    #[arg(long, default_value_t = 2000)]
    pub(crate) accounts: usize,
    /// Scenarios to run, comma-separated; `health` (the baseline) always runs first.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "health,get,batch_get,allow,request_allow,deny,mixed"
    )]
    pub(crate) scenarios: Vec<Scenario>,
    /// Open loop at this many requests/s in total (default: closed loop).
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Account whose log the `list` scenario pages (default: a random seeded account), e.g. one
    /// with a million events to show that the first page does not grow with the log.
    #[arg(long)]
    pub(crate) list_account: Option<String>,
    /// The `list` scenario asks only for events of this recent window (`start_time` = now −
    /// window), e.g. `1h`: a time-filtered first page.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) list_window: Option<Duration>,
    /// The `proof` scenario proves events `growth-1` … `growth-N` included (as `scripts/growth`
    /// writes them) and trees of 1 … N leaves consistent with the latest checkpoint.
    #[arg(long, default_value_t = 0)]
    pub(crate) proof_events: usize,
}

impl Args {
    /// Rejects combinations that cannot produce a meaningful run.
    pub(crate) fn validate(&self) -> Result<(), String> {
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
    pub(crate) fn scenario_order(&self) -> Vec<Scenario> {
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
pub(crate) enum Scenario {
    /// `grpc.health.v1.Health/Check`: the baseline.
    Health,
    /// `GetAccessGrant` on a random seeded account.
    Get,
    /// `BatchGetAccessGrants` of 100 random seeded accounts.
    BatchGet,
    /// `AuthorizeAssumption` on an allow-set account, expecting ALLOW.
    Allow,
    /// `AuthorizeAssumption` on a deny-set account (grant off) naming its approved access
    /// request, expecting ALLOW (`BASIS_ACCESS_REQUEST`).
    RequestAllow,
    /// `AuthorizeAssumption` on a deny-set account, expecting DENY.
    Deny,
    /// 70% get, 10% batch_get, 15% allow, 5% deny.
    Mixed,
    /// `ListAuditEvents` first page (50, newest first).
    List,
    /// Half `GetAuditInclusionProof` of a random `growth-K` event, half
    /// `GetAuditConsistencyProof` from a random size to the latest (needs `--proof-events`).
    Proof,
}

impl Scenario {
    /// The name used on the command line and in the table.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::Get => "get",
            Self::BatchGet => "batch_get",
            Self::Allow => "allow",
            Self::RequestAllow => "request_allow",
            Self::Deny => "deny",
            Self::Mixed => "mixed",
            Self::List => "list",
            Self::Proof => "proof",
        }
    }

    /// The next request to send.
    pub(crate) fn pick(self, rng: &mut Rng) -> Op {
        match self {
            Self::Health => Op::Health,
            Self::Get => Op::Get,
            Self::BatchGet => Op::BatchGet,
            Self::Allow => Op::Allow,
            Self::RequestAllow => Op::RequestAllow,
            Self::Deny => Op::Deny,
            Self::List => Op::List,
            Self::Proof => match rng.below(2) {
                0 => Op::Inclusion,
                _ => Op::Consistency,
            },
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
pub(crate) enum Op {
    /// Health check of the whole server.
    Health,
    /// Read one grant.
    Get,
    /// Read [`BATCH_SIZE`] grants.
    BatchGet,
    /// Assumption on an allow-set account.
    Allow,
    /// Assumption on a deny-set account, through its approved request.
    RequestAllow,
    /// Assumption on a deny-set account.
    Deny,
    /// First page of an audit log.
    List,
    /// Inclusion proof of a random `growth-K` event at the latest checkpoint.
    Inclusion,
    /// Consistency proof from a random size to the latest checkpoint.
    Consistency,
}
