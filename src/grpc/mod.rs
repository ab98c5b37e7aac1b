//! Transport: thin gRPC handlers. Each one converts (and validates) the request into a domain
//! command, calls the application, and converts the result back. Errors leave through the one
//! mapping in [`status`].

pub mod access_grant;
pub mod account;
pub mod audit;
pub mod convert;
pub mod status;
pub mod support_access;
