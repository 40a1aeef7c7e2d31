//! Printing that never panics. `println!` and `eprintln!` panic when the
//! other end of stdout or stderr is gone (a `head` that has read enough, a
//! closed terminal, a killed `tee`); these macros return or drop the error
//! instead.
//!
//! - [`outln!`](crate::outln) writes a line to stdout and returns a `Result` whose error is
//!   [`Error::Stdout`](crate::Error::Stdout): the short
//!   commands pass it up with `?`, and the binary ends them quietly on a
//!   broken pipe ([`is_broken_pipe`]); a training run ignores it and keeps
//!   training.
//! - [`errln!`](crate::errln) writes a line to stderr and drops any error: where stderr is
//!   gone, nothing is printed.

/// `println!` that returns `Result<(), gan_gpu::Error>` (a failed write is
/// [`Error::Stdout`](crate::Error::Stdout)) instead of panicking.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        writeln!(::std::io::stdout().lock(), $($arg)*).map_err($crate::Error::Stdout)
    }};
}

/// `eprintln!` that prints nothing, and does not panic, where stderr is gone.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = writeln!(::std::io::stderr().lock(), $($arg)*);
    }};
}

/// Whether `error` is, or was caused by, a write to a pipe whose reader has
/// gone away: normal use for a command piped into `head`, not a failure.
pub fn is_broken_pipe(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        next = e.source();
    }
    false
}
