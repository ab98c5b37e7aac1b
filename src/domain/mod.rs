//! Pure rules of the service: no I/O, no tonic, no sea-orm. Every function that depends on
//! time takes `now` as an argument.

pub mod access_request;
pub mod account;
pub mod actor;
pub mod assumption;
pub mod duration;
pub mod error;
pub mod grant;
pub mod ids;
pub mod permission;

pub use error::{Error, FieldViolation};
