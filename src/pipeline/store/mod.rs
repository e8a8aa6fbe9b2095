//! Destinations: a local lake directory or an S3 bucket, with the same
//! layout and the same idempotency rules.
//!
//! Both keep the object's sha256 with the object (S3 user metadata
//! `x-amz-meta-sha256`; a hidden sidecar in a local lake), so a later run
//! decides "identical" from a HEAD, without downloading anything.

mod local;
mod s3;

use std::path::Path;

pub use local::LocalStore;
pub use s3::S3Store;

/// What a HEAD tells about an existing object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// Absent for objects not written by openpay.
    pub sha256: Option<String>,
}

/// Whether a write may replace an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// `If-None-Match: *`: fails with `AlreadyExists` when another writer won.
    CreateOnly,
    Overwrite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Written,
    /// A create-only write lost a race (S3 412 Precondition Failed).
    AlreadyExists,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The identity lacks a permission; the message names it and the fix.
    #[error(
        "{operation} {location} was denied: the identity needs {permission}; grant it in terraform/policies/runner.json.tftpl (then `openpay tf apply`) and check with `openpay doctor --only aws.iam.put-object`"
    )]
    AccessDenied {
        operation: &'static str,
        location: String,
        permission: String,
    },
    #[error(
        "bucket {bucket} does not exist (or is in another account); check [aws] bucket / --dest, or create it with `openpay tf apply`"
    )]
    NoSuchBucket { bucket: String },
    #[error("{operation} {location} failed: {message}")]
    Other {
        operation: &'static str,
        location: String,
        message: String,
    },
}

/// Where a run writes. Keys are relative (`raw/dataset=…/…`); the store
/// adds its prefix.
#[derive(Debug, Clone)]
pub enum Destination {
    Local(LocalStore),
    S3(S3Store),
}

impl Destination {
    pub fn describe(&self) -> String {
        match self {
            Destination::Local(l) => l.describe(),
            Destination::S3(s) => s.describe(),
        }
    }

    /// The location a key maps to, for audits and dry runs.
    pub fn locate(&self, key: &str) -> String {
        match self {
            Destination::Local(l) => l.path_of(key).display().to_string(),
            Destination::S3(s) => format!("s3://{}/{}", s.bucket(), s.full_key(key)),
        }
    }

    /// Preflight: the destination exists and we may write to it.
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        match self {
            Destination::Local(l) => l.check_writable(),
            Destination::S3(s) => s.check_bucket().await,
        }
    }

    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        match self {
            Destination::Local(l) => l.head(key).await,
            Destination::S3(s) => s.head(key).await,
        }
    }

    pub async fn put_file(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        sha256: &str,
        mode: PutMode,
    ) -> Result<PutOutcome, StoreError> {
        match self {
            Destination::Local(l) => l.put_file(key, path, sha256, mode).await,
            Destination::S3(s) => s.put_file(key, path, size, sha256, mode).await,
        }
    }

    /// Small documents (manifests): replaced whole.
    pub async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        match self {
            Destination::Local(l) => l.put_bytes(key, &bytes),
            Destination::S3(s) => s.put_bytes(key, bytes, content_type).await,
        }
    }
}
