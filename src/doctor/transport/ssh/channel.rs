//! Running commands on channels of one shared, non-blocking session.
//!
//! All probes of a host share one SSH session (one handshake, one auth),
//! and the runner calls them from several threads at once. libssh2 guards
//! the session with a lock; in blocking mode one slow command would hold
//! that lock while it waits and stall every other probe. So the session is
//! switched to non-blocking after authentication and each call here
//! retries `EAGAIN` with a short back-off until its own deadline: probes
//! interleave, and a hung tool times out alone.
//!
//! sshd allows 10 channels per connection by default (`MaxSessions`), so
//! a small semaphore keeps us under it.

use std::io::Read;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use ssh2::{Channel, ErrorCode, Session};

use crate::doctor::transport::{CmdOutput, TransportError};

/// libssh2's `LIBSSH2_ERROR_EAGAIN`: the call would block; try again.
const EAGAIN: i32 = -37;
/// Below sshd's default `MaxSessions 10`.
pub const MAX_CHANNELS: usize = 8;
/// A runaway command must not exhaust our memory.
const MAX_OUTPUT: usize = 64 * 1024 * 1024;

/// A counting semaphore with a deadline (std has none).
#[derive(Debug)]
pub struct Slots {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Slots {
    pub fn new(n: usize) -> Self {
        Self {
            free: Mutex::new(n),
            cv: Condvar::new(),
        }
    }

    fn acquire(&self, deadline: Instant) -> Option<SlotGuard<'_>> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            let left = deadline.checked_duration_since(Instant::now())?;
            free = self
                .cv
                .wait_timeout(free, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *free -= 1;
        Some(SlotGuard { slots: self })
    }
}

struct SlotGuard<'a> {
    slots: &'a Slots,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *self.slots.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.slots.cv.notify_one();
    }
}

/// Why a step did not complete.
pub(super) enum Step {
    Deadline,
    /// The server did not start the command (nothing ran): safe to retry.
    NotStarted(String),
    Failed(String),
}

/// Sleeps a little longer each time nothing was ready (1 ms up to 10 ms):
/// quick answers stay quick, idle waits stay cheap.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(Duration::from_millis(1))
    }
    fn wait(&mut self, deadline: Instant) -> Result<(), Step> {
        let now = Instant::now();
        if now >= deadline {
            return Err(Step::Deadline);
        }
        std::thread::sleep(self.0.min(deadline - now));
        self.0 = (self.0 * 2).min(Duration::from_millis(10));
        Ok(())
    }
    fn reset(&mut self) {
        self.0 = Duration::from_millis(1);
    }
}

/// Retries a libssh2 call while it reports EAGAIN.
pub(super) fn retry<T>(
    deadline: Instant,
    what: &str,
    mut f: impl FnMut() -> Result<T, ssh2::Error>,
) -> Result<T, Step> {
    let mut backoff = Backoff::new();
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if e.code() == ErrorCode::Session(EAGAIN) => backoff.wait(deadline)?,
            Err(e) => return Err(Step::Failed(format!("{what}: {}", e.message()))),
        }
    }
}

/// Reads what is available from one stream; `Ok(true)` if bytes came.
fn drain(stream: &mut impl Read, buf: &mut Vec<u8>) -> Result<bool, Step> {
    let mut chunk = [0u8; 32 * 1024];
    let mut got = false;
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(got),
            Ok(n) => {
                got = true;
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > MAX_OUTPUT {
                    return Err(Step::Failed(format!(
                        "output exceeds {} MiB",
                        MAX_OUTPUT / 1024 / 1024
                    )));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(got),
            Err(e) => return Err(Step::Failed(format!("read: {e}"))),
        }
    }
}

/// Runs `command` on a new channel of `session` and collects stdout,
/// stderr and the exit status before `timeout` runs out.
pub fn run(
    session: &Session,
    slots: &Slots,
    command: &str,
    timeout: Duration,
) -> Result<CmdOutput, TransportError> {
    let deadline = Instant::now() + timeout;
    let timed_out = || TransportError::Timeout {
        command: command.to_string(),
        timeout,
    };
    let Some(_slot) = slots.acquire(deadline) else {
        return Err(timed_out());
    };
    // Under load sshd occasionally answers an exec request on a fresh
    // channel with a failure (seen with 8 channels busy on one session);
    // nothing ran then, so a second channel is a safe retry.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut channel = match retry(deadline, "open channel", || session.channel_session()) {
            Ok(c) => c,
            Err(Step::Deadline) => return Err(timed_out()),
            Err(Step::Failed(m) | Step::NotStarted(m)) => return Err(TransportError::Io(m)),
        };
        match collect(&mut channel, command, deadline) {
            Ok(out) => return Ok(out),
            Err(step) => {
                abandon(&mut channel);
                match step {
                    Step::NotStarted(m) if attempts < 3 => {
                        tracing::debug!(command, error = %m, "exec refused; retrying on a new channel");
                        std::thread::sleep(Duration::from_millis(20 * attempts));
                    }
                    Step::Deadline => return Err(timed_out()),
                    Step::Failed(m) | Step::NotStarted(m) => {
                        return Err(TransportError::Io(format!("`{command}`: {m}")));
                    }
                }
            }
        }
    }
}

fn collect(channel: &mut Channel, command: &str, deadline: Instant) -> Result<CmdOutput, Step> {
    // The login shell may not be POSIX (fish, csh); the Transport promises
    // `sh -c` semantics, so say so explicitly.
    let wrapped = format!("sh -c {}", shell_quote(command));
    retry(deadline, "exec", || channel.exec(&wrapped)).map_err(|s| match s {
        Step::Failed(m) => Step::NotStarted(m),
        other => other,
    })?;
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut backoff = Backoff::new();
    loop {
        // Checked on every pass, not only when idle: a command that
        // trickles output forever must still time out.
        if Instant::now() >= deadline {
            return Err(Step::Deadline);
        }
        let a = drain(channel, &mut stdout)?;
        let b = drain(&mut channel.stderr(), &mut stderr)?;
        if channel.eof() {
            // One more pass: data may have arrived with the EOF.
            drain(channel, &mut stdout)?;
            drain(&mut channel.stderr(), &mut stderr)?;
            break;
        }
        if a || b {
            backoff.reset();
        } else {
            backoff.wait(deadline)?;
        }
    }
    retry(deadline, "close", || channel.close())?;
    retry(deadline, "wait for close", || channel.wait_close())?;
    let signal = channel.exit_signal().ok().and_then(|s| s.exit_signal);
    let status = if signal.is_some() {
        None
    } else {
        Some(
            channel
                .exit_status()
                .map_err(|e| Step::Failed(e.message().to_string()))?,
        )
    };
    Ok(CmdOutput {
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// Best effort on a timed-out or broken channel: ask the server to close
/// it, give it a moment, and move on (the remote process may outlive us;
/// sshd cleans up when the connection ends).
fn abandon(channel: &mut Channel) {
    let deadline = Instant::now() + Duration::from_millis(200);
    let _ = retry(deadline, "close", || channel.close());
    let _ = retry(deadline, "wait for close", || channel.wait_close());
}

/// Single-quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(shell_quote("echo hi"), "'echo hi'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn slots_wait_for_a_release_and_respect_the_deadline() {
        let slots = Slots::new(1);
        let held = slots
            .acquire(Instant::now() + Duration::from_secs(1))
            .unwrap();
        let t0 = Instant::now();
        assert!(slots.acquire(t0 + Duration::from_millis(50)).is_none());
        assert!(t0.elapsed() >= Duration::from_millis(50));
        drop(held);
        assert!(
            slots
                .acquire(Instant::now() + Duration::from_millis(50))
                .is_some()
        );
    }
}
