//! Every mutating use case as a command value (see `storage::write`): each announces the rows
//! it reads and applies its rule to a draft of the batch, with no I/O, so the rules are
//! unit-tested here without a database (`tests` below each command).

pub mod access_request;
pub mod account;
pub mod assumption;
pub mod checkpoint;
pub mod grant;
pub mod lapse;
pub mod policy;
pub mod prune;

#[cfg(test)]
mod access_request_tests;
#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
mod model_tests;

use crate::domain::{Error, account::Account, grant::GrantRecord};

/// The account if it exists and is not deleted.
fn open_account(found: Option<(Account, GrantRecord)>) -> Result<(Account, GrantRecord), Error> {
    found
        .filter(|(a, _)| !a.is_deleted())
        .ok_or(Error::AccountNotFound)
}
