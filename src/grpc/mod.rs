//! Transport: thin gRPC handlers. Each one converts (and validates) the request into a domain
//! command, calls the application, and converts the result back. Errors leave through the one
//! mapping in [`status`].

pub mod access_grant;
pub mod account;
pub mod audit;
pub mod codec;
pub mod convert;
pub mod permissions;
pub mod status;
pub mod support_access;

use tonic::{Request, Status};

use crate::domain::permission::Caller;

/// The authenticated calling service of a request, as placed by the admission layer
/// (`auth::layer`). A request that reached a handler without one is refused: fail closed.
pub fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::from(crate::domain::Error::Unauthenticated))
}
