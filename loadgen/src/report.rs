//! The results: one row per scenario with its ratio to the health baseline, printed as a table
//! and optionally written as JSON.

use std::{collections::BTreeMap, path::Path, time::Duration};

use serde::Serialize;

use crate::{
    BoxError,
    args::{Args, Scenario},
    workload::{BATCH_SIZE, Tally},
};

/// One row of the results.
#[derive(Debug, Serialize)]
pub(crate) struct ScenarioResult {
    /// Which scenario.
    pub(crate) scenario: Scenario,
    /// OK answers per second over the measured window.
    pub(crate) requests_per_sec: f64,
    /// `requests_per_sec` divided by the health scenario's; `None` if health had none.
    pub(crate) ratio_to_health: Option<f64>,
    /// Median latency of OK requests.
    p50_ms: f64,
    /// 99th percentile latency of OK requests.
    p99_ms: f64,
    /// 99.9th percentile latency of OK requests.
    p999_ms: f64,
    /// OK answers.
    pub(crate) ok: u64,
    /// Errors by code.
    pub(crate) errors: BTreeMap<&'static str, u64>,
    /// Open loop only: late or unsent requests.
    pub(crate) late: u64,
    /// The generator's own CPU use during the measured window, in % of one core.
    pub(crate) loadgen_cpu_percent: Option<f64>,
}

impl ScenarioResult {
    /// Summarises a merged tally; the ratio is filled in once health is known.
    pub(crate) fn new(
        scenario: Scenario,
        tally: &Tally,
        duration: Duration,
        cpu: Option<Duration>,
    ) -> Self {
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

/// Divides every scenario's throughput by the health scenario's.
pub(crate) fn set_ratios(results: &mut [ScenarioResult]) {
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
pub(crate) struct Parameters {
    /// Server URL.
    pub(crate) target: String,
    /// Tag in the seeded account ids.
    pub(crate) run_id: String,
    /// HTTP/2 connections.
    pub(crate) connections: usize,
    /// Requests in flight.
    pub(crate) concurrency: usize,
    /// Measured seconds per scenario.
    pub(crate) duration_secs: f64,
    /// Warmup seconds per scenario.
    pub(crate) warmup_secs: f64,
    /// Seeded accounts.
    pub(crate) accounts: usize,
    /// Open-loop target rate; `None` for closed loop.
    pub(crate) rate: Option<f64>,
    /// CPUs available to this process (what `nproc` prints).
    pub(crate) nproc: usize,
}

impl Parameters {
    /// Collects the parameters of this run.
    pub(crate) fn new(args: &Args, run_id: &str) -> Self {
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
    pub(crate) fn print(&self) {
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
pub(crate) struct Report {
    /// How the run was configured.
    pub(crate) parameters: Parameters,
    /// Seconds spent seeding.
    pub(crate) seeding_secs: f64,
    /// One entry per scenario, health first.
    pub(crate) scenarios: Vec<ScenarioResult>,
    /// The generator's total CPU time (user + system) for the whole run.
    pub(crate) loadgen_cpu_secs: Option<f64>,
}

/// Formats error counts as `CODE=n CODE=n`, or `-` if none.
pub(crate) fn format_errors(errors: &BTreeMap<&'static str, u64>) -> String {
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
pub(crate) fn print_table(results: &[ScenarioResult], open_loop: bool) {
    let late_header = if open_loop { "      late" } else { "" };
    println!(
        "{:<13} {:>12} {:>15} {:>9} {:>9} {:>9} {:>10}{late_header} {:>8}  errors",
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
            "{:<13} {:>12.1} {:>15} {:>9.3} {:>9.3} {:>9.3} {:>10}{late} {cpu:>8}  {}",
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
pub(crate) fn write_json(path: &Path, report: &Report) -> Result<(), BoxError> {
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(path, text + "\n")
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}
