//! How checks reach a host: this machine, or one over SSH.
//!
//! Checks never spawn processes or read files themselves; they go through a
//! [`Transport`], so the same check code runs locally and remotely and tests
//! can lay out a fake host. Both calls take a deadline: a hung tool on the
//! host must fail that one check, not the whole doctor.

pub mod local;

use std::time::Duration;

/// What one command printed, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CmdOutput {
    /// Exit status; `None` when the command was killed by a signal.
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The host could not be reached or authenticated; every check on it
    /// is moot, so the runner reports one result for the host.
    #[error("host {host} unreachable: {reason}")]
    Unreachable { host: String, reason: String },
    /// The host key is unknown or changed; refused unless the user opts in.
    #[error("host key for {host} {problem} (fingerprint {fingerprint}); {fix}")]
    HostKey {
        host: String,
        problem: String,
        fingerprint: String,
        fix: String,
    },
    #[error("`{command}` did not finish within {timeout:?}")]
    Timeout { command: String, timeout: Duration },
    #[error("{0}")]
    Io(String),
}

/// The only door from a check to a host.
pub trait Transport: Send + Sync {
    /// A label for reports: `local` or `user@host:port`.
    fn label(&self) -> String;
    /// Runs `command` with `sh -c` semantics on the host.
    fn exec(&self, command: &str, timeout: Duration) -> Result<CmdOutput, TransportError>;
    /// Reads a text file; `Ok(None)` when it does not exist.
    fn read_file(&self, path: &str, timeout: Duration) -> Result<Option<String>, TransportError>;
}
