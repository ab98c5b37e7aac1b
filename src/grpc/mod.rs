//! Transport: thin gRPC handlers. Each one converts (and validates) the request into a domain
//! command, calls the application, and converts the result back. Errors leave through the one
//! mapping in [`status`].

pub mod access_grant;
pub mod account;
pub mod audit;
pub mod convert;
pub mod status;
pub mod support_access;

use tonic::{Request, Status};

use crate::domain::permission::Caller;

/// The authenticated calling service of a request. Until principals are configurable every
/// caller is the development principal (the server listens on loopback by default).
pub fn caller<T>(_request: &Request<T>) -> Result<Caller, Status> {
    Ok(Caller::development())
}
