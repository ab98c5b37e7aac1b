//! Where a newest-first page of requests or assumptions continues: a keyset cursor (time,
//! then id, both descending), so pages stay stable while new rows arrive at the top.

use sea_orm::{ColumnTrait, Condition};
use serde::{Deserialize, Serialize};

/// The last row of the previous page: the next page holds rows strictly older.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Its time (µs): `create_time` of a request, `start_time` of an assumption.
    pub time_us: i64,
    /// Its id (breaks ties between rows of the same microsecond).
    pub id: String,
}

impl Cursor {
    /// The rows strictly after this cursor in (`time` desc, `id` desc) order: older, or as old
    /// with a smaller id.
    pub fn older(&self, time: impl ColumnTrait, id: impl ColumnTrait) -> Condition {
        Condition::any().add(time.lt(self.time_us)).add(
            Condition::all()
                .add(time.eq(self.time_us))
                .add(id.lt(self.id.as_str())),
        )
    }
}

/// The rows in any of `states` (each given by `condition`), or `None` for no filter.
pub fn any_state<S: Copy>(states: &[S], condition: impl Fn(S) -> Condition) -> Option<Condition> {
    (!states.is_empty()).then(|| {
        states
            .iter()
            .fold(Condition::any(), |any, s| any.add(condition(*s)))
    })
}
