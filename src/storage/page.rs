//! Where a newest-first page of requests or assumptions continues: a keyset cursor (time,
//! then id, both descending), so pages stay stable while new rows arrive at the top.

use serde::{Deserialize, Serialize};

/// The last row of the previous page: the next page holds rows strictly older.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Its time (µs): `create_time` of a request, `start_time` of an assumption.
    pub time_us: i64,
    /// Its id (breaks ties between rows of the same microsecond).
    pub id: String,
}
