//! Use cases: each public method is one request's work. A method reads what it needs, asks
//! `domain` what the rules say, and writes the result and its audit event in one transaction
//! through `storage`. Transport calls these; nothing here knows about gRPC.

pub mod access_requests;
pub mod accounts;
pub mod audit;
pub mod commands;
pub mod expiry;
pub mod grants;
pub mod page_token;
pub mod policy;
pub mod support_access;
pub mod transparency;

pub use crate::domain::permission::Caller;
pub use crate::storage::write::Idempotency;

use std::{sync::Arc, time::Duration};

use crate::{
    clock::SharedClock,
    domain::Error,
    storage::{
        Store,
        write::{self, Command, Writer},
    },
};

/// Settings the use cases need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long `request_id` responses are kept (at least 24 h).
    pub idempotency_retention: Duration,
    /// Caps on assumption lifetimes.
    pub lifetimes: crate::domain::assumption::Lifetimes,
    /// How long a pending access request waits for its reviews (`[access_requests]
    /// pending_lifetime`).
    pub pending_request_lifetime: chrono::Duration,
}

/// The defaults of `[assumptions]` and `[idempotency]` (docs/configuration.md): a support
/// session lasts a working day at most, an emergency one an hour; a `request_id` replays
/// for two days.
impl Default for Settings {
    fn default() -> Self {
        Self {
            idempotency_retention: Duration::from_secs(48 * 3600),
            lifetimes: crate::domain::assumption::Lifetimes {
                max: chrono::Duration::hours(8),
                emergency: chrono::Duration::hours(1),
            },
            pending_request_lifetime: chrono::Duration::hours(24),
        }
    }
}

/// The application: storage, clock and settings shared by every request.
#[derive(Clone)]
pub struct App {
    /// The database.
    pub(crate) store: Store,
    /// The only source of "now".
    pub(crate) clock: SharedClock,
    /// Tunables.
    pub(crate) settings: Arc<Settings>,
    /// The group-commit loop every change goes through.
    writer: Writer,
    /// The audit log's signing identity.
    pub(crate) signer: Arc<transparency::Signer>,
}

impl App {
    /// Assembles the application and starts its write loop (needs a Tokio runtime).
    pub fn new(
        store: Store,
        clock: SharedClock,
        settings: Settings,
        signer: transparency::Signer,
    ) -> Self {
        Self {
            signer: Arc::new(signer),
            writer: write::start(store.clone(), clock.clone()),
            store,
            clock,
            settings: Arc::new(settings),
        }
    }

    /// True while the group-commit loop runs (readiness).
    pub fn writer_alive(&self) -> bool {
        self.writer.is_alive()
    }

    /// The store (for the server's lifecycle and offline tools).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs `command` through the group-commit loop: replays the first answer for a known
    /// `request_id`, otherwise applies it and remembers its answer, in the batch
    /// transaction; answers once the commit is durable. The loop owns the command: if the
    /// client disconnects or its deadline passes, the change still commits whole or not at
    /// all.
    pub(crate) async fn write<C: Command>(
        &self,
        command: C,
        idempotency: Option<Idempotency>,
    ) -> Result<C::Answer, Error> {
        self.writer.submit(command, idempotency).await
    }

    /// Deletes idempotency records past their retention; run periodically by the server.
    pub async fn prune_idempotency_records(&self) -> Result<(), Error> {
        let retention = chrono::Duration::from_std(self.settings.idempotency_retention)
            .unwrap_or(chrono::Duration::days(1));
        let cutoff = self.clock.now() - retention;
        self.write(commands::prune::PruneResponses { cutoff }, None)
            .await
    }
}
