//! Reports go to stdout through here, and only through here.
//!
//! `println!` panics when the reader of a pipe has gone (`openpay cidr … |
//! head -1`): Rust ignores SIGPIPE, so the write fails with EPIPE and the
//! macro turns that into a panic, exit 101. A reader that stopped reading
//! wants no more output, which is not a failure of the command: the rest of
//! the output is dropped and the command's exit code stays what its work
//! decided (ripgrep does the same). Any other write error (a full disk
//! behind `> report.txt`) is an [`OutputError`].

use std::fmt::Display;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout's reader has gone; later writes are skipped.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// The report could not be written (other than its reader going away).
#[derive(Debug, thiserror::Error)]
#[error("cannot write the report to stdout: {0}")]
pub struct OutputError(#[source] pub io::Error);

/// Runs `f` on the locked stdout, then flushes.
pub fn write(f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<(), OutputError> {
    if CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match f(&mut out).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err(OutputError(e)),
    }
}

/// One line (or a block ending in a newline) of a report: `println!`.
pub fn line(text: impl Display) -> Result<(), OutputError> {
    write(|out| writeln!(out, "{text}"))
}
