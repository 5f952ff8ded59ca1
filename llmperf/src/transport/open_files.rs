//! The process's limit on open files: every connection is one, so a run
//! of 10,000 streams needs more than the usual soft limit of 1,024.

/// What [`raise`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit before.
    pub before: u64,
    /// The soft limit now (the hard limit, when it could be raised).
    pub now: u64,
}

/// Raises the soft limit on open files to the hard limit (a process may,
/// without privileges). `None` where there is no such limit to read.
#[cfg(unix)]
pub fn raise() -> Option<OpenFiles> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    let before = limit.rlim_cur;
    // macOS refuses more than OPEN_MAX (10,240) with an unlimited hard limit.
    #[cfg(target_os = "macos")]
    let target = if limit.rlim_max == libc::RLIM_INFINITY {
        (10_240 as libc::rlim_t).max(before)
    } else {
        limit.rlim_max
    };
    #[cfg(not(target_os = "macos"))]
    let target = limit.rlim_max;
    if target > before {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = target;
        }
    }
    // rlim_t is u64 on Linux and macOS, not on every Unix.
    #[allow(clippy::unnecessary_cast)]
    Some(OpenFiles {
        before: before as u64,
        now: limit.rlim_cur as u64,
    })
}

/// Raises the soft limit on open files to the hard limit (a process may,
/// without privileges). `None` where there is no such limit to read.
#[cfg(not(unix))]
pub fn raise() -> Option<OpenFiles> {
    None
}

/// Files a run needs besides its connections (results, the tokenizer,
/// the runtime's own descriptors).
pub const SPARE_FILES: u64 = 64;

/// A warning when `connections` connections cannot fit under the limit.
pub fn shortfall(limit: &OpenFiles, connections: u64) -> Option<String> {
    let needed = connections.saturating_add(SPARE_FILES);
    (needed > limit.now).then(|| {
        format!(
            "{connections} connections need about {needed} open files, but this process may open {} (the hard limit; ulimit -Hn): requests past it fail with `too many open files`; raise the hard limit or spread the load over shards (--shard)",
            limit.now
        )
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_rises_to_the_hard_one() {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in `raise`.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        let hard = limit.rlim_max;
        let raised = raise().expect("a limit");
        assert!(raised.now >= raised.before);
        #[allow(clippy::unnecessary_cast)]
        let hard = hard as u64;
        if !cfg!(target_os = "macos") {
            assert_eq!(raised.now, hard);
        }
        assert!(shortfall(&raised, raised.now).is_some());
        assert!(shortfall(&raised, 1).is_none() || raised.now < 1 + SPARE_FILES);
    }
}
