//! The exit-code contract of DESIGN.md, in one place.
//!
//! Every command returns an [`Exit`] on success paths (a run with a failed
//! file is still a *result*, not an error) and an error otherwise. Errors are
//! mapped onto exit codes by [`classify`], which walks the error chain for
//! the typed errors that know their class; anything unknown is treated as a
//! blocked/could-not-evaluate condition (3), never as success.

use std::process::ExitCode;

/// The four outcomes a caller (a person, Airflow, CI) can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Run completed, every required check passed, no drift.
    Success = 0,
    /// Findings: a required check failed, drift found, a file failed.
    Findings = 1,
    /// Usage or invalid input: bad flag, config, CIDR, year.
    Usage = 2,
    /// Blocked or could not evaluate: preflight refused, credentials
    /// missing, host unreachable, terraform missing.
    Blocked = 3,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

/// Bad input from the user: exit 2. The message names the input and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Could not evaluate or refused to proceed: exit 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BlockedError(pub String);

/// Library errors that know which exit class they belong to.
pub trait Classify {
    fn exit(&self) -> Exit;
}

/// Maps an error chain onto an exit code. The first typed error found in
/// the chain decides; an unknown error is "could not evaluate" (3).
pub fn classify(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if cause.is::<UsageError>() || cause.is::<clap::Error>() {
            return Exit::Usage;
        }
        if cause.is::<BlockedError>() {
            return Exit::Blocked;
        }
        if let Some(e) = cause.downcast_ref::<crate::config::ConfigError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::pipeline::PipelineError>() {
            return e.exit();
        }
    }
    Exit::Blocked
}

/// Shorthand for returning a usage error from anywhere.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// Shorthand for returning a blocked error from anywhere.
pub fn blocked(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BlockedError(msg.into()))
}
