//! The servent's own file descriptor limit, raised at start: every peer,
//! upload, download and handshake holds one, and the usual soft limit
//! (1,024) runs out under a burst of connections long before the servent's
//! own bounds do.

/// Raises the soft limit on open files to the hard limit, where the OS
/// allows.
#[cfg(unix)]
pub(super) fn raise_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur >= limit.rlim_max {
        return;
    }
    let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        super::log(format_args!("cannot raise the open files limit from {}", limit.rlim_cur));
    }
}

/// Elsewhere the limit is left as it is.
#[cfg(not(unix))]
pub(super) fn raise_limit() {}

#[cfg(all(test, unix))]
mod tests {
    #[test]
    fn soft_limit_is_raised_to_the_hard_limit() {
        super::raise_limit();
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit only writes the struct given.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
        assert_eq!(limit.rlim_cur, limit.rlim_max);
    }
}
