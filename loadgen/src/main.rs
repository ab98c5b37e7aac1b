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

mod args;
mod connect;
mod report;
mod seed;
mod workload;

use std::{process::ExitCode, sync::Arc};

use clap::Parser;
use uuid::Uuid;

use crate::{
    args::{Args, Scenario},
    connect::{Auth, connect},
    report::{Parameters, Report, print_table, set_ratios, write_json},
    seed::{seed, seed_requests},
    workload::{Accounts, cpu_time, run_scenario},
};

/// Errors that end the run (bad arguments, no connection, failed seeding).
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
    let mut accounts = Accounts {
        list_account: args.list_account.clone(),
        list_window: args.list_window,
        proof_events: args.proof_events,
        ..Accounts::new(&run_id, args.accounts)
    };
    let seeding = seed(&clients, &accounts).await?;
    if args.scenarios.contains(&Scenario::RequestAllow) {
        accounts.requests = seed_requests(&clients, &accounts).await?;
    }
    let accounts = Arc::new(accounts);
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
