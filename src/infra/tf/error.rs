//! Errors of the terraform wrapper, each with the exit class it maps to.

use std::path::PathBuf;

use crate::exit::{Classify, Exit};

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
    #[error("{0}")]
    Refused(String),
    #[error("S3 {operation} on bucket {bucket} failed: {message}")]
    S3 {
        operation: &'static str,
        bucket: String,
        message: String,
    },
}

impl Classify for TfError {
    fn exit(&self) -> Exit {
        match self {
            TfError::Invalid { .. } | TfError::NoStack { .. } => Exit::Usage,
            _ => Exit::Blocked,
        }
    }
}

impl TfError {
    /// Wraps the error so `exit::classify` maps it onto its exit class.
    pub fn into_anyhow(self) -> anyhow::Error {
        match self.exit() {
            Exit::Usage => crate::exit::usage(self.to_string()),
            _ => crate::exit::blocked(self.to_string()),
        }
    }
}
