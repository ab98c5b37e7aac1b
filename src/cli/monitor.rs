//! `accessgrant audit monitor`: what a customer's auditor (or the security team) runs
//! against a server it does not trust.
//!
//! Each run: fetch the latest checkpoint and check its signature with the verifier key given
//! on the command line (never the one the server names); prove it consistent with the
//! checkpoint kept in the state file; with `--account`, re-read that account's whole log,
//! recompute every event's hash from its fields and chain them from the first, require the
//! newest event seen last time to still be there unchanged, and prove the newest covered
//! event included in the new checkpoint. Only then is the new checkpoint kept. Any failure
//! prints the evidence — both signed checkpoints and the failing event — and exits 1.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, Serialize};
use tonic::{Request, metadata::MetadataValue, service::Interceptor, transport::Channel};

use crate::{
    audit::chain::ChainVerifier,
    grpc::audit::convert::event_from_pb,
    proto::v1::{self as pb, audit_service_client::AuditServiceClient},
    transparency::{Checkpoint, Hash, VerifierKey, merkle, note, proof},
};

/// `accessgrant audit monitor` flags.
#[derive(Debug, clap::Args)]
pub struct MonitorArgs {
    /// The server: http://HOST:PORT, or https://HOST:PORT with --ca-file.
    #[arg(long)]
    target: String,
    /// The log's verifier key, obtained out of band (never trusted from the server).
    #[arg(long)]
    verifier_key: String,
    /// Where the last verified checkpoint (and per account the newest event) is kept.
    #[arg(long)]
    state: PathBuf,
    /// Also re-read and re-verify this account's whole log.
    #[arg(long)]
    account: Option<String>,
    /// A file holding the bearer token (needs audit:read).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// PEM CA certificate to verify an https target with.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Check once and exit (0 verified, 1 evidence of tampering, 2 could not check).
    #[arg(long)]
    once: bool,
    /// Time between checks.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    interval: Duration,
}

/// What the monitor keeps between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The last verified checkpoint's signed-note text.
    checkpoint: Option<String>,
    /// Per account, the newest event verified.
    #[serde(default)]
    accounts: BTreeMap<String, SeenEvent>,
}

/// An event the monitor saw and verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SeenEvent {
    event_id: String,
    sequence: i64,
    /// Base64 of its chain hash.
    hash: String,
}

/// Why a run did not verify.
enum Failure {
    /// Evidence: the log or its checkpoints do not hold (exit 1).
    Evidence {
        what: String,
        kept: Option<String>,
        fetched: Option<String>,
        event: Option<Box<pb::AuditEvent>>,
    },
    /// The check could not be made: server unreachable, bad flags, unreadable state (exit 2).
    Unable(String),
}

fn evidence(what: impl Into<String>) -> Failure {
    Failure::Evidence {
        what: what.into(),
        kept: None,
        fetched: None,
        event: None,
    }
}

/// Runs the monitor until a failure (or once).
pub(super) fn run(args: MonitorArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("accessgrant: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        loop {
            match check(&args).await {
                Ok(summary) => println!("{summary}"),
                Err(Failure::Evidence {
                    what,
                    kept,
                    fetched,
                    event,
                }) => {
                    print_evidence(&what, kept.as_deref(), fetched.as_deref(), event.as_deref());
                    return ExitCode::FAILURE;
                }
                Err(Failure::Unable(why)) if args.once => {
                    eprintln!("accessgrant: monitor: {why}");
                    return ExitCode::from(2);
                }
                Err(Failure::Unable(why)) => {
                    eprintln!(
                        "accessgrant: monitor: {why}; trying again in {:?}",
                        args.interval
                    );
                }
            }
            if args.once {
                return ExitCode::SUCCESS;
            }
            tokio::time::sleep(args.interval).await;
        }
    })
}

/// One verification run.
async fn check(args: &MonitorArgs) -> Result<String, Failure> {
    let verifier = VerifierKey::parse(&args.verifier_key)
        .map_err(|e| Failure::Unable(format!("--verifier-key: {e}")))?;
    let mut state = read_state(&args.state)?;
    let mut client = connect(args).await?;
    let kept = match &state.checkpoint {
        Some(text) => Some(note::open(text, &verifier).map_err(|e| Failure::Evidence {
            what: format!("the kept checkpoint does not verify: {e}"),
            kept: Some(text.clone()),
            fetched: None,
            event: None,
        })?),
        None => None,
    };
    let fetched_text = client
        .get_audit_checkpoint(pb::GetAuditCheckpointRequest {})
        .await
        .map_err(|s| unable("GetAuditCheckpoint", &s))?
        .into_inner()
        .checkpoint;
    let with_notes = |f: Failure| match f {
        Failure::Evidence { what, event, .. } => Failure::Evidence {
            what,
            kept: state.checkpoint.clone(),
            fetched: Some(fetched_text.clone()),
            event,
        },
        unable => unable,
    };
    let fetched = note::open(&fetched_text, &verifier)
        .map_err(|e| evidence(format!("the server's checkpoint does not verify: {e}")))
        .map_err(with_notes)?;
    if let Some(kept) = &kept {
        check_consistency(&mut client, kept, &fetched)
            .await
            .map_err(with_notes)?;
    }
    let mut summary = format!(
        "verified checkpoint {} at size {}",
        fetched.origin, fetched.size
    );
    if let Some(account) = &args.account {
        let seen = check_account(&mut client, account, state.accounts.get(account), &fetched)
            .await
            .map_err(with_notes)?;
        summary.push_str(&format!(
            "; account {account}: {} events re-verified",
            seen.as_ref().map_or(0, |s| s.sequence)
        ));
        if let Some(seen) = seen {
            state.accounts.insert(account.clone(), seen);
        }
    }
    state.checkpoint = Some(fetched_text.clone());
    write_state(&args.state, &state)?;
    Ok(summary)
}

/// The new checkpoint must extend the kept one.
async fn check_consistency(
    client: &mut Client,
    kept: &Checkpoint,
    fetched: &Checkpoint,
) -> Result<(), Failure> {
    if fetched.size < kept.size {
        return Err(evidence(format!(
            "the log shrank: the kept checkpoint covers {} events, the server's only {}",
            kept.size, fetched.size
        )));
    }
    if fetched.size == kept.size || kept.size == 0 {
        if fetched.size == kept.size && fetched.root != kept.root {
            return Err(evidence(
                "two signed checkpoints of the same size with different roots: a forked log",
            ));
        }
        return Ok(());
    }
    let response = client
        .get_audit_consistency_proof(pb::GetAuditConsistencyProofRequest {
            first_tree_size: to_i64(kept.size),
            second_tree_size: to_i64(fetched.size),
        })
        .await
        .map_err(|s| unable("GetAuditConsistencyProof", &s))?
        .into_inner();
    let hashes = hashes(&response.hashes)?;
    if response.second_tree_size != to_i64(fetched.size)
        || !proof::verify_consistency(kept.size, fetched.size, &kept.root, &fetched.root, &hashes)
    {
        return Err(evidence(format!(
            "the server's checkpoint of size {} is not consistent with the kept one of size {}: \
             the log was rewritten",
            fetched.size, kept.size
        )));
    }
    Ok(())
}

/// Re-reads and re-verifies an account's whole log; returns its newest event.
async fn check_account(
    client: &mut Client,
    account: &str,
    seen_before: Option<&SeenEvent>,
    fetched: &Checkpoint,
) -> Result<Option<SeenEvent>, Failure> {
    let mut events = read_log(client, account).await?;
    events.reverse(); // oldest first
    let Some(newest) = events.last() else {
        return match seen_before {
            Some(seen) => Err(evidence(format!(
                "account {account}'s log is empty, but event {} (sequence {}) was seen before",
                seen.event_id, seen.sequence
            ))),
            None => Ok(None),
        };
    };
    let mut chain = ChainVerifier::new(Some((newest.sequence, newest.hash.clone())));
    for e in &events {
        let decoded =
            event_from_pb(e).map_err(|why| with_event(e, format!("undecodable: {why}")))?;
        chain.push(&decoded);
    }
    let verification = chain.finish();
    if let Some(broken) = verification.first_broken_event_id {
        let event = events
            .iter()
            .find(|e| e.event_id == broken)
            .cloned()
            .map(Box::new);
        return Err(Failure::Evidence {
            what: format!("account {account}'s hash chain breaks at event {broken}"),
            kept: None,
            fetched: None,
            event,
        });
    }
    if let Some(seen) = seen_before {
        let still = events.iter().find(|e| e.sequence == seen.sequence);
        if still.is_none_or(|e| e.event_id != seen.event_id || B64.encode(&e.hash) != seen.hash) {
            let what = format!(
                "event {} (sequence {}, hash {}) seen last time is no longer in account \
                 {account}'s log as it was: the log was rewritten or cut",
                seen.event_id, seen.sequence, seen.hash
            );
            return Err(Failure::Evidence {
                what,
                kept: None,
                fetched: None,
                event: still.cloned().map(Box::new),
            });
        }
    }
    let covered = events
        .iter()
        .rev()
        .find(|e| u64::try_from(e.leaf_index).is_ok_and(|l| l < fetched.size));
    if let Some(e) = covered {
        prove_included(client, e, fetched).await?;
    }
    Ok(Some(SeenEvent {
        event_id: newest.event_id.clone(),
        sequence: newest.sequence,
        hash: B64.encode(&newest.hash),
    }))
}

/// `e` must be the leaf it claims in the checkpoint's tree.
async fn prove_included(
    client: &mut Client,
    e: &pb::AuditEvent,
    fetched: &Checkpoint,
) -> Result<(), Failure> {
    let response = client
        .get_audit_inclusion_proof(pb::GetAuditInclusionProofRequest {
            event_id: e.event_id.clone(),
            tree_size: to_i64(fetched.size),
        })
        .await
        .map_err(|s| unable("GetAuditInclusionProof", &s))?
        .into_inner();
    let path = hashes(&response.hashes)?;
    let leaf = merkle::leaf_hash(&e.hash);
    let index = u64::try_from(response.leaf_index).unwrap_or(u64::MAX);
    if response.leaf_index != e.leaf_index
        || !proof::verify_inclusion(&leaf, index, fetched.size, &path, &fetched.root)
    {
        return Err(with_event(
            e,
            format!(
                "event {} is not proven included in the checkpoint of size {}",
                e.event_id, fetched.size
            ),
        ));
    }
    Ok(())
}

/// Every event of the account, newest first.
async fn read_log(client: &mut Client, account: &str) -> Result<Vec<pb::AuditEvent>, Failure> {
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_audit_events(pb::ListAuditEventsRequest {
                account_id: account.to_owned(),
                page_size: 500,
                page_token,
                ..Default::default()
            })
            .await
            .map_err(|s| unable("ListAuditEvents", &s))?
            .into_inner();
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            return Ok(events);
        }
        page_token = page.next_page_token;
    }
}

type Client = AuditServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

/// Adds the bearer token to every call.
#[derive(Clone)]
struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

async fn connect(args: &MonitorArgs) -> Result<Client, Failure> {
    let token = match &args.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::Unable(format!("{}: {e}", path.display())))?;
            let value = MetadataValue::try_from(format!("Bearer {}", text.trim()))
                .map_err(|_| Failure::Unable("the token is not valid header text".into()))?;
            Some(value)
        }
        None => None,
    };
    let mut endpoint = tonic::transport::Endpoint::from_shared(args.target.clone())
        .map_err(|e| Failure::Unable(format!("--target: {e}")))?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60));
    if let Some(ca) = &args.ca_file {
        let pem =
            std::fs::read(ca).map_err(|e| Failure::Unable(format!("{}: {e}", ca.display())))?;
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(pem));
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| Failure::Unable(format!("--ca-file: {e}")))?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| Failure::Unable(format!("cannot connect to {}: {e}", args.target)))?;
    Ok(AuditServiceClient::with_interceptor(channel, Bearer(token)))
}

fn read_state(path: &Path) -> Result<State, Failure> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            Failure::Unable(format!("{}: not a monitor state file: {e}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(Failure::Unable(format!("{}: {e}", path.display()))),
    }
}

/// Writes the state atomically (a crash leaves the old state or the new one).
fn write_state(path: &Path, state: &State) -> Result<(), Failure> {
    let unable = |e: std::io::Error| Failure::Unable(format!("{}: {e}", path.display()));
    let json = serde_json::to_vec_pretty(state)
        .map_err(|e| Failure::Unable(format!("cannot encode the state: {e}")))?;
    crate::checkpoints::write_atomically(path, &json).map_err(unable)
}

fn hashes(raw: &[Vec<u8>]) -> Result<Vec<Hash>, Failure> {
    raw.iter()
        .map(|h| {
            h.as_slice()
                .try_into()
                .map_err(|_| evidence("the server sent a proof hash that is not 32 bytes"))
        })
        .collect()
}

fn with_event(e: &pb::AuditEvent, what: String) -> Failure {
    Failure::Evidence {
        what,
        kept: None,
        fetched: None,
        event: Some(Box::new(e.clone())),
    }
}

fn unable(rpc: &str, status: &tonic::Status) -> Failure {
    Failure::Unable(format!("{rpc}: {:?}: {}", status.code(), status.message()))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn print_evidence(
    what: &str,
    kept: Option<&str>,
    fetched: Option<&str>,
    event: Option<&pb::AuditEvent>,
) {
    println!("MONITOR FAILURE: {what}");
    for (label, text) in [("kept checkpoint", kept), ("server's checkpoint", fetched)] {
        match text {
            Some(text) => {
                println!("{label}:");
                for line in text.lines() {
                    println!("  | {line}");
                }
            }
            None => println!("{label}: none"),
        }
    }
    if let Some(e) = event {
        println!(
            "failing event: event_id={} account_id={} sequence={} leaf_index={} kind={} \
             occur_time={:?} request_id={:?} detail_json={} prev_hash={} hash={}",
            e.event_id,
            e.account_id,
            e.sequence,
            e.leaf_index,
            e.kind,
            e.occur_time,
            e.request_id,
            e.detail_json,
            B64.encode(&e.prev_hash),
            B64.encode(&e.hash)
        );
    }
}
