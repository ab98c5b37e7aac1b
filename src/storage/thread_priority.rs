//! Scheduling priority of the SQLite writer thread.
//!
//! On a SQLite file every durable change goes through one thread ([`super::writer`]). When the
//! two kinds of work compete for the CPU — request handling on the runtime's workers, commits
//! on the writer — the writer should win: it finishes work already admitted (and answers up to
//! a whole batch at once), while the workers may only be accepting, or shedding, new calls.
//! Measured under 2× overload on two cores (`docs/benchmarks.md`): ALLOW goodput 66–84% of
//! peak at normal priority, 98–113% with the writer at nice −5, and no loss at peak.
//!
//! Raising a priority needs `CAP_SYS_NICE` (or root, or an `RLIMIT_NICE` that allows it).
//! Lowering one never does, and only the *ratio* of the two matters to the scheduler (CFS
//! weights: nice −5 : 0 ≈ 0 : +5 ≈ 3 : 1). So where the writer cannot be raised, the server
//! lowers its request workers to [`FALLBACK_WORKER_NICE`] instead ([`lower_workers`]), and
//! says so once at start.

/// The nice value the writer thread asks for (the default is 0; lower runs first).
pub const WRITER_NICE: i32 = -5;

/// The nice value of the runtime's threads when [`WRITER_NICE`] is not permitted: the same
/// distance below the writer.
pub const FALLBACK_WORKER_NICE: i32 = WRITER_NICE.abs();

/// Whether the runtime's threads must step down for the writer: true when this process may
/// not raise a thread's priority to [`WRITER_NICE`]. Probed on a short-lived thread of its
/// own, so no thread that stays keeps the probe's priority.
pub fn lower_workers() -> bool {
    std::thread::Builder::new()
        .name("accessgrant-nice-probe".into())
        .spawn(|| set_current_thread_nice(WRITER_NICE).is_err())
        .ok()
        .and_then(|probe| probe.join().ok())
        .unwrap_or(true)
}

/// Sets the calling thread's nice value (Linux: per thread). Fails without the privilege
/// to raise it, and on systems without per-thread priorities.
pub fn set_current_thread_nice(nice: i32) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid` has no preconditions; `setpriority` only reads its arguments and
        // affects the calling thread (on Linux, `PRIO_PROCESS` with a thread id).
        let result = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
        };
        if result == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = nice;
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }
}
