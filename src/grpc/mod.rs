//! Transport: thin gRPC handlers. Each one converts (and validates) the request into a domain
//! command, calls the application, and converts the result back. Errors leave through the one
//! mapping in [`status`].
//!
//! One folder per service: its handler (`mod.rs`) and its conversions (`convert.rs`), so a
//! change to one service's messages touches only that folder; the conversions every service
//! shares (account ids, enum values, timestamps) are in [`fields`]. Transport reaches storage
//! only through the service layer: the types it converts to are domain, audit or service types.

pub mod access_grant;
pub mod access_request;
pub mod account;
pub mod audit;
pub mod codec;
pub mod fields;
pub mod permissions;
pub mod status;
pub mod support_access;

use tokio::sync::OwnedSemaphorePermit;
use tonic::{Request, Status};

use crate::{auth::layer::CallSlots, domain::permission::Caller};

/// A call's slot among the calls in flight; released when the handler returns.
#[derive(Debug)]
pub struct Slot {
    /// Held, not read: dropping it frees the slot.
    _permit: Option<OwnedSemaphorePermit>,
}

/// The authenticated caller, and a slot among the calls in flight, or
/// `RESOURCE_EXHAUSTED SERVER_OVERLOADED` at once when none is left (no queueing). Every
/// handler calls this first, after the request body has arrived and decoded: a stalled body
/// holds no slot (see `auth::layer`). Shedding still comes before any storage work.
pub fn admit<T>(request: &Request<T>) -> Result<(Caller, Slot), Status> {
    let caller = caller(request)?;
    let slot = match request.extensions().get::<CallSlots>() {
        Some(CallSlots(slots)) => Slot {
            _permit: Some(
                slots
                    .clone()
                    .try_acquire_owned()
                    .map_err(|_| Status::from(crate::domain::Error::Overloaded))?,
            ),
        },
        // No limit installed (the caller came through the admission layer, which installs
        // both, or this is a test calling a handler directly).
        None => Slot { _permit: None },
    };
    Ok((caller, slot))
}

/// The authenticated calling service of a request, as placed by the admission layer
/// (`auth::layer`). A request that reached a handler without one is refused: fail closed.
pub fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::from(crate::domain::Error::Unauthenticated))
}
