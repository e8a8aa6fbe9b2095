//! Why `openpay iam drift` could not compare (its exit classes are decided
//! in `exit.rs`): the repo side is bad input (2), the live side could not
//! be read (3). Drift itself is a result, not an error.

use std::path::PathBuf;

use super::template::TemplateError;
use crate::infra::iam::LiveError;
use crate::infra::policy::PolicyError;

#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    /// A `--var` flag that is not KEY=VALUE.
    #[error("{0}")]
    Vars(String),
    #[error(
        "cannot read policy template {}: {source}; run from the repository root or pass --policy FILE",
        path.display()
    )]
    ReadTemplate {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(
        "policy template {} does not render to a valid IAM policy: {source}",
        path.display()
    )]
    InvalidPolicy {
        path: PathBuf,
        #[source]
        source: PolicyError,
    },
    #[error(
        "no role to compare: pass --role NAME or set [aws] role_name in openpay.toml (terraform's outputs.json role_name also works)"
    )]
    NoRole,
    #[error(transparent)]
    Live(#[from] LiveError),
}
