//! The exit-code contract of DESIGN.md, in one place.
//!
//! Every command returns an [`Exit`] on success paths (a run with a failed
//! file is still a *result*, not an error) and an error otherwise. Each
//! error type of the library is mapped onto its exit class here, and only
//! here, by the [`Classify`] impls below; [`classify`] walks an error chain
//! for the first error whose type is listed. An error of a type not listed
//! is not silently "could not evaluate": [`classify`] returns
//! [`Unclassified`] and `main` says it is a bug in openpay.

use std::error::Error as StdError;
use std::process::ExitCode;

use crate::config::ConfigError;
use crate::doctor::DoctorError;
use crate::infra::cidr::CidrError;
use crate::infra::drift::DriftError;
use crate::infra::tf::TfError;
use crate::logging::LogError;
use crate::output::OutputError;
use crate::pipeline::PipelineError;
use crate::pipeline::runs::RunsError;
use crate::pipeline::store::StoreError;

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
    /// missing, host unreachable, terraform missing, the source down.
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

/// The exit class of an error type.
pub trait Classify {
    fn exit(&self) -> Exit;
}

/// An error chain with no error of a listed type: a bug (a library error
/// type missing from this module, or an untyped error), reported as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unclassified;

/// Maps an error chain onto its exit class: the first error in the chain
/// whose type is listed in [`class_of`] decides.
pub fn classify(err: &anyhow::Error) -> Result<Exit, Unclassified> {
    err.chain().find_map(class_of).ok_or(Unclassified)
}

/// The one list of error types and their classes.
fn class_of(e: &(dyn StdError + 'static)) -> Option<Exit> {
    macro_rules! typed {
        ($($t:ty),* $(,)?) => {
            $(if let Some(e) = e.downcast_ref::<$t>() {
                return Some(Classify::exit(e));
            })*
        };
    }
    typed!(
        clap::Error,
        ConfigError,
        LogError,
        OutputError,
        PipelineError,
        RunsError,
        StoreError,
        DoctorError,
        TfError,
        DriftError,
        CidrError,
    );
    None
}

impl Classify for clap::Error {
    fn exit(&self) -> Exit {
        Exit::Usage
    }
}

impl Classify for ConfigError {
    fn exit(&self) -> Exit {
        Exit::Usage
    }
}

impl Classify for LogError {
    fn exit(&self) -> Exit {
        Exit::Usage
    }
}

/// The work may be done, but its report could not be delivered.
impl Classify for OutputError {
    fn exit(&self) -> Exit {
        Exit::Blocked
    }
}

impl Classify for PipelineError {
    fn exit(&self) -> Exit {
        match self {
            PipelineError::Input(_) => Exit::Usage,
            PipelineError::Blocked(_) | PipelineError::SourceUnavailable { .. } => Exit::Blocked,
        }
    }
}

impl Classify for RunsError {
    fn exit(&self) -> Exit {
        match self {
            RunsError::NotFound { .. } | RunsError::NoReadableRun { .. } => Exit::Usage,
            RunsError::ManifestMissing { .. }
            | RunsError::ManifestUnreadable { .. }
            | RunsError::AuditsMissing { .. } => Exit::Blocked,
        }
    }
}

/// The destination could not be read or written (reachability, a denied
/// permission): nothing about the input decides it.
impl Classify for StoreError {
    fn exit(&self) -> Exit {
        Exit::Blocked
    }
}

impl Classify for DoctorError {
    fn exit(&self) -> Exit {
        match self {
            DoctorError::UnknownCheck { .. }
            | DoctorError::Host { .. }
            | DoctorError::IdentityFile { .. }
            | DoctorError::MinBuildx { .. } => Exit::Usage,
        }
    }
}

impl Classify for TfError {
    fn exit(&self) -> Exit {
        match self {
            TfError::Invalid { .. } | TfError::NoStack { .. } | TfError::NeedsYes => Exit::Usage,
            TfError::NotFound { .. }
            | TfError::Spawn { .. }
            | TfError::Failed { .. }
            | TfError::StalePlan
            | TfError::Locked { .. }
            | TfError::PlanJson(_)
            | TfError::Io { .. }
            | TfError::Refused(_)
            | TfError::Cancelled
            | TfError::NoDoctorTarget
            | TfError::S3 { .. } => Exit::Blocked,
        }
    }
}

impl Classify for DriftError {
    fn exit(&self) -> Exit {
        match self {
            DriftError::Vars(_)
            | DriftError::ReadTemplate { .. }
            | DriftError::Template(_)
            | DriftError::InvalidPolicy { .. }
            | DriftError::NoRole => Exit::Usage,
            DriftError::Live(_) => Exit::Blocked,
        }
    }
}

impl Classify for CidrError {
    fn exit(&self) -> Exit {
        Exit::Usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_errors_decide_even_under_context() {
        let e = anyhow::Error::new(PipelineError::SourceUnavailable {
            url: "https://cms.example/api".into(),
            reason: "HTTP 503 after 6 attempts".into(),
        })
        .context("planning the run");
        assert_eq!(classify(&e), Ok(Exit::Blocked));
        let e = anyhow::Error::new(TfError::NeedsYes);
        assert_eq!(classify(&e), Ok(Exit::Usage));
        let e = anyhow::Error::new(CidrError::Empty(String::new()));
        assert_eq!(classify(&e), Ok(Exit::Usage));
    }

    #[test]
    fn an_untyped_error_is_a_bug_not_a_silent_3() {
        let io = std::io::Error::other("disk on fire");
        assert_eq!(classify(&anyhow::Error::new(io)), Err(Unclassified));
        assert_eq!(
            classify(&anyhow::anyhow!("plain message")),
            Err(Unclassified)
        );
    }
}
