//! Forgetting `request_id` responses past their retention.

use chrono::{DateTime, Utc};

use crate::{
    domain::Error,
    storage::write::{Command, Draft, Keys},
};

/// Delete stored responses created before `cutoff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneResponses {
    /// Responses older than this go.
    pub cutoff: DateTime<Utc>,
}

impl Command for PruneResponses {
    type Answer = ();

    fn announce(&self, _keys: &mut Keys) {}

    fn apply(&self, draft: &mut Draft<'_>, _now: DateTime<Utc>) -> Result<(), Error> {
        draft.prune_responses_before(self.cutoff);
        Ok(())
    }
}
