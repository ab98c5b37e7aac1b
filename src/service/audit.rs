//! Reading the audit log: customer-visible pages, chain verification, and the watch stream.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use futures::Stream;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{App, Caller};
use crate::{
    audit::{AuditEvent, canonical::format_time, chain::Verification},
    domain::{Error, ids::AccountId, permission::Permission},
    storage::audit_log::{self, EventFilter},
};

/// Default page size.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// Largest page; larger requests are lowered to it.
pub const MAX_PAGE_SIZE: u64 = 500;
/// A page also stops once its events reach this many bytes (then it carries a
/// `next_page_token`, as any short page may). 500 events of the largest valid size would be
/// ~9 MB, over the 4 MiB that gRPC clients (and grpcurl) accept by default.
pub const MAX_PAGE_BYTES: usize = 3 * 1024 * 1024;
/// Events a watch stream may hold for a slow client. When full, the stream's reader waits;
/// writers never do (the stream reads committed events from storage at the client's pace).
pub const WATCH_BUFFER: usize = 256;
/// Events read from storage per round trip by a watch stream.
const WATCH_BATCH: u64 = 256;
/// A watch stream re-reads storage at least this often, even without a local commit
/// notification (events committed by another process or replica).
const WATCH_POLL: Duration = Duration::from_millis(500);

/// Counts an open watch stream for as long as it lives.
struct WatchGauge;

impl WatchGauge {
    fn open() -> Self {
        metrics::gauge!(crate::metrics::WATCH_STREAMS).increment(1.0);
        Self
    }
}

impl Drop for WatchGauge {
    fn drop(&mut self) {
        metrics::gauge!(crate::metrics::WATCH_STREAMS).decrement(1.0);
    }
}

/// A request for one page.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// The account.
    pub account_id: AccountId,
    /// Page size (already defaulted and capped).
    pub page_size: u64,
    /// The previous page's token, if any.
    pub page_token: Option<String>,
    /// Filters.
    pub filter: EventFilter,
}

/// One page, newest first.
#[derive(Debug, Clone)]
pub struct EventPage {
    /// The events.
    pub events: Vec<AuditEvent>,
    /// Token for the next page; `None` at the end.
    pub next_page_token: Option<String>,
}

/// What a page token carries. Opaque to clients (base64url of JSON plus a checksum).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct PageToken {
    /// Format version.
    v: u8,
    /// The account the token was issued for.
    a: String,
    /// Fingerprint of the filters it was issued for.
    f: String,
    /// Continue with sequences below this one.
    s: i64,
}

fn filter_fingerprint(filter: &EventFilter) -> String {
    let mut kinds: Vec<&str> = filter.kinds.iter().map(|k| k.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let text = format!(
        "kinds={};start={};end={}",
        kinds.join(","),
        filter.start_time.map(format_time).unwrap_or_default(),
        filter.end_time.map(format_time).unwrap_or_default()
    );
    hex::encode(&Sha256::digest(text.as_bytes())[..12])
}

fn encode_token(token: &PageToken) -> String {
    let json = serde_json::to_vec(token).unwrap_or_default();
    let check = &Sha256::digest(&json)[..8];
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&json),
        URL_SAFE_NO_PAD.encode(check)
    )
}

fn invalid_token(reason: &str) -> Error {
    Error::invalid("page_token", reason)
}

fn decode_token(text: &str, query: &ListQuery) -> Result<i64, Error> {
    let (body, check) = text
        .split_once('.')
        .ok_or_else(|| invalid_token("malformed"))?;
    let json = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| invalid_token("malformed"))?;
    let check = URL_SAFE_NO_PAD
        .decode(check)
        .map_err(|_| invalid_token("malformed"))?;
    if check != Sha256::digest(&json)[..8] {
        return Err(invalid_token("corrupted"));
    }
    let token: PageToken = serde_json::from_slice(&json).map_err(|_| invalid_token("malformed"))?;
    if token.v != 1 {
        return Err(invalid_token("unsupported version"));
    }
    if token.a != query.account_id.as_str() || token.f != filter_fingerprint(&query.filter) {
        return Err(invalid_token(
            "issued for another account or other filters; repeat the same request",
        ));
    }
    Ok(token.s)
}

/// How many of `events` go on a page: at most `page_size`, and no more than fit in
/// [`MAX_PAGE_BYTES`] (always at least one, so a page always moves the cursor).
fn fitting(events: &[AuditEvent], page_size: usize) -> usize {
    let mut bytes = 0;
    events
        .iter()
        .take(page_size)
        .take_while(|e| {
            bytes += e.encoded_len_bound();
            bytes <= MAX_PAGE_BYTES
        })
        .count()
        .max(1)
        .min(events.len())
}

impl App {
    /// One page of an account's log, newest first. Deleted accounts' logs stay readable.
    pub async fn list_audit_events(
        &self,
        query: ListQuery,
        caller: &Caller,
    ) -> Result<EventPage, Error> {
        caller.require(Permission::AuditRead)?;
        let before = query
            .page_token
            .as_deref()
            .map(|t| decode_token(t, &query))
            .transpose()?;
        let reader = self.store.reader();
        if !audit_log::has_chain(reader, query.account_id.as_str()).await? {
            return Err(Error::AccountNotFound);
        }
        // One extra row tells whether another page exists.
        let mut events = audit_log::page(
            reader,
            query.account_id.as_str(),
            &query.filter,
            before,
            query.page_size + 1,
        )
        .await?;
        let fit = fitting(
            &events,
            usize::try_from(query.page_size).unwrap_or(usize::MAX),
        );
        let more = events.len() > fit;
        events.truncate(fit);
        let next_page_token = match (more, events.last()) {
            (true, Some(last)) => Some(encode_token(&PageToken {
                v: 1,
                a: query.account_id.as_str().to_owned(),
                f: filter_fingerprint(&query.filter),
                s: last.sequence,
            })),
            _ => None,
        };
        Ok(EventPage {
            events,
            next_page_token,
        })
    }

    /// Recomputes an account's chain.
    pub async fn verify_audit_chain(
        &self,
        id: &AccountId,
        caller: &Caller,
    ) -> Result<Verification, Error> {
        caller.require(Permission::AuditRead)?;
        let reader = self.store.reader();
        if !audit_log::has_chain(reader, id.as_str()).await? {
            return Err(Error::AccountNotFound);
        }
        audit_log::verify(&self.store, id.as_str()).await
    }

    /// Streams events after `after_position` in commit order, then live ones. The stream
    /// reads committed events from storage at the client's pace through a bounded buffer: a
    /// slow client costs at most [`WATCH_BUFFER`] events of memory and never blocks writers;
    /// a client that reconnects with its last position resumes exactly where it stopped.
    /// A position beyond the log's end is refused ([`Error::PositionAheadOfLog`]): it can
    /// only come from another history (a restored backup reuses positions), and waiting for
    /// the log to pass it would skip every event in between without a word.
    pub async fn watch_audit_events(
        &self,
        account: Option<AccountId>,
        after_position: i64,
        caller: &Caller,
    ) -> Result<impl Stream<Item = Result<(i64, AuditEvent), Error>> + Send + 'static, Error> {
        // The contract's split: audit:read for one account, audit:read_all for all of them.
        caller.require(if account.is_some() {
            Permission::AuditRead
        } else {
            Permission::AuditReadAll
        })?;
        let last = audit_log::last_position(self.store.reader()).await?;
        if after_position > last {
            return Err(Error::PositionAheadOfLog {
                after: after_position,
                last,
            });
        }
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let store = self.store.clone();
        let mut commits = store.subscribe_commits();
        tokio::spawn(async move {
            let _open = WatchGauge::open();
            let account = account.map(|a| a.as_str().to_owned());
            let mut position = after_position;
            loop {
                // Mark the current commit as seen *before* reading: a commit that lands
                // after the read wakes the wait below instead of being missed.
                commits.borrow_and_update();
                let batch = match audit_log::after_position(
                    store.reader(),
                    account.as_deref(),
                    position,
                    WATCH_BATCH,
                )
                .await
                {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let full = batch.len() as u64 == WATCH_BATCH;
                for event in batch {
                    position = event.global_position;
                    if tx.send(Ok((position, event))).await.is_err() {
                        return; // the client went away
                    }
                }
                if full {
                    continue;
                }
                tokio::select! {
                    changed = commits.changed() => if changed.is_err() { return },
                    () = tokio::time::sleep(WATCH_POLL) => {}
                    () = tx.closed() => return,
                }
            }
        });
        Ok(ReceiverStream::new(rx))
    }
}
