//! Errors of the terraform wrapper (their exit classes: `exit.rs`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TfError {
    #[error(
        "terraform not found: {detail}; install Terraform >= 1.6 (https://developer.hashicorp.com/terraform/install) or OpenTofu, put it on PATH or set TERRAFORM=/path/to/terraform"
    )]
    NotFound { detail: String },
    #[error(
        "terraform directory {path} has no *.tf files; pass --dir pointing at the stack (default: terraform)"
    )]
    NoStack { path: PathBuf },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {input}: {message}")]
    Invalid { input: String, message: String },
    #[error("terraform {step} failed: {message}")]
    Failed { step: String, message: String },
    #[error(
        "the saved plan .openpay/tfplan is stale: the state changed after it was made; run `openpay tf plan` (or `openpay tf apply` again) for a fresh plan"
    )]
    StalePlan,
    #[error(
        "the terraform state is locked by another run ({lock_info}); wait for it, or pass --lock-timeout 5m to wait, or `terraform force-unlock ID` if that run is dead"
    )]
    Locked { lock_info: String },
    #[error("cannot read terraform's plan JSON: {0}")]
    PlanJson(String),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The risk gate or a destroy safeguard said no.
    #[error("{0}")]
    Refused(String),
    #[error("openpay tf destroy needs --yes when stdin is not a terminal (nothing was destroyed)")]
    NeedsYes,
    #[error("destroy cancelled: the confirmation did not match (nothing was destroyed)")]
    Cancelled,
    #[error(
        "cannot run the doctor: the outputs have no ssh_user/public_ip; run `openpay doctor --host USER@ADDR --wait` yourself, or pass --no-doctor"
    )]
    NoDoctorTarget,
    #[error("S3 {operation} on bucket {bucket} failed: {message}")]
    S3 {
        operation: &'static str,
        bucket: String,
        message: String,
    },
}
