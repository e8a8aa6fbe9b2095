//! Bad input to `openpay doctor`, found before any check runs (exit 2; the
//! class is decided in `exit.rs`). Checks never fail with an error: a check
//! that cannot decide is a result (`fail`/`skip`) of that check.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// `--only`, `--skip` or `--explain` names no check of the catalog;
    /// the message lists close ids.
    #[error("{message}")]
    UnknownCheck { message: String },
    #[error(
        "invalid --host {input:?}: {why}; expected USER@ADDR[:PORT], e.g. ec2-user@203.0.113.10 or ec2-user@[2001:db8::1]:2222"
    )]
    Host { input: String, why: String },
    #[error(
        "--identity-file {}: no such file; pass the path of the private key (e.g. ~/.ssh/ingest.pem)",
        path.display()
    )]
    IdentityFile { path: PathBuf },
    #[error(
        "invalid [doctor] min_buildx `{value}`: expected a version such as \"0.17.0\" (openpay.toml or OPENPAY_DOCTOR_MIN_BUILDX)"
    )]
    MinBuildx { value: String },
}
