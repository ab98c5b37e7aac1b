//! Assumption rows.

use sea_orm::{ConnectionTrait, EntityTrait};

use super::{entities::assumption, from_us, from_us_opt};
use crate::domain::{
    Error,
    assumption::{Assumption, Basis, EndReason},
};

pub(crate) fn to_domain(m: assumption::Model) -> Result<Assumption, Error> {
    Ok(Assumption {
        basis: Basis::from_str_name(&m.basis)
            .ok_or_else(|| Error::Internal(format!("stored basis {:?}", m.basis)))?,
        end_reason: m
            .end_reason
            .as_deref()
            .map(|r| {
                EndReason::from_str_name(r)
                    .ok_or_else(|| Error::Internal(format!("stored end reason {r:?}")))
            })
            .transpose()?,
        start_time: from_us(m.start_time_us)?,
        expire_time: from_us(m.expire_time_us)?,
        end_time: from_us_opt(m.end_time_us)?,
        assumption_id: m.assumption_id,
        account_id: m.account_id,
        staff_id: m.staff_id,
    })
}

/// Reads one assumption.
pub async fn find(db: &impl ConnectionTrait, id: &str) -> Result<Option<Assumption>, Error> {
    assumption::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .map(to_domain)
        .transpose()
}
