//! The process's open-files limit, which bounds connections before `max_connections` does
//! when it is low (a soft limit of 1024 is a common default).

/// File descriptors kept for everything but client connections: the database files and
/// connections, the metrics listener, log files.
const RESERVED_DESCRIPTORS: u64 = 128;

/// Raises the soft limit on open files to the hard limit (as Go's runtime does at start), so
/// that `max_connections` is the limit that applies rather than a low default soft limit
/// (often 1024), and warns if even the hard limit leaves too little room: past it `accept`
/// fails with `EMFILE` and so do database opens.
pub fn raise_open_files_limit(max_connections: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct passed by reference.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    let needed = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(RESERVED_DESCRIPTORS);
    if limit.rlim_cur < needed {
        tracing::warn!(
            open_files_limit = limit.rlim_cur,
            max_connections,
            "the open-files limit is below [limits] max_connections + {RESERVED_DESCRIPTORS}: \
             connections past it fail to be accepted (EMFILE); raise `ulimit -n` or lower \
             max_connections"
        );
    }
}
