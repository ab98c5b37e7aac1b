//! `audit verify --verifier-key`: the Merkle tree rebuilt from the event rows alone (their
//! leaf order and chain hashes; no stored tree node is trusted), compared with every stored
//! checkpoint of the key's origin and every checkpoint file given. A checkpoint whose root
//! the rows no longer give, one covering more leaves than the rows hold, or one whose
//! signature does not verify, is printed with the first leaf that differs (or, when the
//! stored tree was rewritten along with the events, the range of leaves between the last
//! checkpoint that still matches and the first that does not).

use std::{path::PathBuf, process::ExitCode};

use base64::{Engine, engine::general_purpose::STANDARD as B64};

use crate::{
    storage::{Store, tree},
    transparency::{Checkpoint, VerifierKey, merkle, note},
};

/// Event rows read per round trip.
const CHUNK: u64 = 10_000;

/// A checkpoint to hold the rebuilt tree against.
struct Target {
    /// Where it came from, for the report.
    source: String,
    /// Its signed-note text.
    note: String,
    /// What it commits to.
    checkpoint: Checkpoint,
}

/// The first leaf whose stored tree node disagrees with its event row.
struct Differing {
    leaf: u64,
    event_id: String,
    account_id: String,
    sequence: i64,
}

/// `Ok(true)` when every checkpoint matches the rebuilt tree; `Err` for a usage or
/// database error (exit 2).
pub(super) async fn verify(
    store: &Store,
    verifier: &VerifierKey,
    files: &[PathBuf],
) -> Result<bool, ExitCode> {
    let mut intact = true;
    let mut targets = Vec::new();
    let stored = tree::all_checkpoints(store.reader())
        .await
        .map_err(|e| fail(format!("cannot read the checkpoints: {e}")))?;
    let mut other_origins = 0;
    for row in stored {
        if row.checkpoint.origin != verifier.name {
            other_origins += 1;
            continue;
        }
        let source = format!("stored checkpoint of size {}", row.checkpoint.size);
        match note::open(&row.note, verifier) {
            Ok(signed) if signed == row.checkpoint => targets.push(Target {
                source,
                note: row.note,
                checkpoint: signed,
            }),
            Ok(_) => {
                intact = false;
                report(
                    &source,
                    &row.note,
                    "its columns differ from its signed text",
                );
            }
            Err(e) => {
                intact = false;
                report(&source, &row.note, &e.to_string());
            }
        }
    }
    if other_origins > 0 {
        println!(
            "tree: {other_origins} stored checkpoints of other origins (earlier keys) not checked; \
             run again with their verifier keys"
        );
    }
    for path in files {
        let text =
            std::fs::read_to_string(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        let source = format!("checkpoint file {}", path.display());
        match note::open(&text, verifier) {
            Ok(checkpoint) => targets.push(Target {
                source,
                note: text,
                checkpoint,
            }),
            Err(e) => {
                intact = false;
                report(&source, &text, &e.to_string());
            }
        }
    }
    targets.sort_by_key(|t| t.checkpoint.size);
    intact &= rebuild_and_compare(store, &targets).await?;
    Ok(intact)
}

/// Streams the event rows in leaf order, rebuilding the tree and holding each target
/// against the root at its size.
async fn rebuild_and_compare(store: &Store, targets: &[Target]) -> Result<bool, ExitCode> {
    let reader = store.reader();
    let mut builder = merkle::Builder::new();
    let mut next = targets.iter().peekable();
    let mut intact = true;
    let mut last_match = 0_u64;
    let mut differing: Option<Differing> = None;
    let mut order_broken = false;
    let mut compare = |size: u64, root: merkle::Hash, differing: &Option<Differing>| {
        let mut ok = true;
        while let Some(t) = next.next_if(|t| t.checkpoint.size == size) {
            if t.checkpoint.root == root {
                last_match = size;
            } else {
                ok = false;
                let why = format!(
                    "the event rows give root {} at size {size}, the checkpoint signed {}",
                    B64.encode(root),
                    B64.encode(t.checkpoint.root)
                );
                report(&t.source, &t.note, &why);
                print_differing(differing, last_match, size);
            }
        }
        ok
    };
    intact &= compare(0, builder.root(), &differing);
    'rows: loop {
        let from = builder.size();
        let rows = tree::leaves(reader, from, CHUNK)
            .await
            .map_err(|e| fail(format!("cannot read the events: {e}")))?;
        if rows.is_empty() {
            break;
        }
        let stored = tree::stored_leaf_hashes(reader, from, from + rows.len() as u64)
            .await
            .map_err(|e| fail(format!("cannot read the tree: {e}")))?;
        for row in rows {
            let expected = builder.size();
            if row.leaf_index != expected as i64 {
                println!(
                    "tree: BROKEN: leaf {expected} is missing or doubled: the next event by leaf \
                     order is {} (account {}, sequence {}) at leaf {}",
                    row.event_id, row.account_id, row.sequence, row.leaf_index
                );
                intact = false;
                order_broken = true;
                break 'rows;
            }
            let leaf = builder.push(&row.hash);
            if differing.is_none() && stored.get(&expected).map(Vec::as_slice) != Some(&leaf[..]) {
                differing = Some(Differing {
                    leaf: expected,
                    event_id: row.event_id,
                    account_id: row.account_id,
                    sequence: row.sequence,
                });
            }
            intact &= compare(builder.size(), builder.root(), &differing);
        }
    }
    let size = builder.size();
    for t in next {
        intact = false;
        let why = if order_broken {
            "the leaf order is broken before its size (see above)".to_owned()
        } else {
            format!(
                "it covers {} leaves, the event rows hold only {size}: events were deleted",
                t.checkpoint.size
            )
        };
        report(&t.source, &t.note, &why);
    }
    if let Some(d) = &differing {
        intact = false;
        println!(
            "tree: BROKEN: the stored tree's leaf {} does not match event {} (account {}, \
             sequence {}): the event row or the tree was changed",
            d.leaf, d.event_id, d.account_id, d.sequence
        );
    }
    if intact {
        println!(
            "tree: intact ({size} leaves rebuilt from the event rows; {} checkpoints match)",
            targets.len()
        );
    }
    Ok(intact)
}

fn print_differing(differing: &Option<Differing>, last_match: u64, size: u64) {
    match differing {
        Some(d) if d.leaf < size => println!(
            "  first leaf that differs: {} (event {}, account {}, sequence {})",
            d.leaf, d.event_id, d.account_id, d.sequence
        ),
        _ => println!(
            "  the stored tree was rewritten with the events: the first differing leaf is \
             among leaves {last_match}..{size} (after the last checkpoint that still matches)"
        ),
    }
}

fn report(source: &str, note_text: &str, why: &str) {
    println!("tree: BROKEN: {source}: {why}");
    for line in note_text.lines() {
        println!("  | {line}");
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("accessgrant: {message}");
    ExitCode::from(2)
}
