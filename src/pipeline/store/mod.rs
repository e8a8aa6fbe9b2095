//! Destinations: a local lake directory or an S3 bucket, with the same
//! layout and the same idempotency rules.
//!
//! Both keep the object's digests with the object, so a later run decides
//! "identical" from a HEAD, without downloading anything: in S3 the
//! full-object CRC64/NVME checksum (S3 verifies it when the upload
//! completes) and, when known before the upload started, the sha256 as
//! user metadata `x-amz-meta-sha256`; in a local lake a hidden sidecar.
//! An upload that streams while its file is still downloading cannot label
//! the object with a sha256 it does not know yet; the run's audit keeps it.

pub mod attempts;
mod local;
mod s3;

use crate::pipeline::checksum::Digests;
use crate::pipeline::growing::GrowingFile;

pub use attempts::S3Attempts;
pub use local::LocalStore;
pub use s3::{ABORT_RULE, MULTIPART_THRESHOLD, S3Store};

/// What a HEAD tells about an existing object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// Absent for objects not written by openpay, and for objects
    /// uploaded while their file was still downloading.
    pub sha256: Option<String>,
    /// Full-object CRC64/NVME (base64), when the store reports one.
    pub crc64nvme: Option<String>,
    /// The store's version tag of the object (S3 ETag).
    pub etag: Option<String>,
}

impl ObjectInfo {
    /// Whether the object holds exactly the file with these digests: the
    /// sha256 decides when the object carries one, else the CRC64/NVME.
    /// An object with neither (a streamed upload to a store that keeps no
    /// checksums) is identical only when it is the very object this work
    /// dir uploaded from the file (`uploaded_etag`, from the file's record).
    /// Anything else is never "identical".
    pub fn holds(&self, size: u64, d: &Digests, uploaded_etag: Option<&str>) -> bool {
        size == self.size
            && match (&self.sha256, &self.crc64nvme) {
                (Some(sha), _) => *sha == d.sha256,
                (None, Some(crc)) => *crc == d.crc64nvme,
                (None, None) => self.etag.is_some() && self.etag.as_deref() == uploaded_etag,
            }
    }

    /// The strongest digest the object carries, for messages.
    pub fn describe_digest(&self) -> String {
        match (&self.sha256, &self.crc64nvme) {
            (Some(sha), _) => format!("sha256 {sha}"),
            (None, Some(crc)) => format!("crc64nvme {crc}"),
            (None, None) => "no checksum".into(),
        }
    }
}

/// Whether a write may replace an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// `If-None-Match: *`: fails with `AlreadyExists` when another writer won.
    CreateOnly,
    Overwrite,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// With the new object's ETag, when the store has them.
    Written { etag: Option<String> },
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
    /// A streaming upload lost its source mid-way; nothing was completed.
    #[error("upload to {location} stopped: {reason}")]
    Interrupted {
        location: String,
        reason: crate::pipeline::growing::Interrupted,
    },
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

    /// Writes `file`, which may still be growing: S3 sends each part as
    /// soon as its bytes are written.
    pub async fn put_file(
        &self,
        key: &str,
        file: GrowingFile,
        mode: PutMode,
    ) -> Result<PutOutcome, StoreError> {
        match self {
            Destination::Local(l) => l.put_file(key, file, mode).await,
            Destination::S3(s) => s.put_file(key, file, mode).await,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn digests() -> Digests {
        Digests {
            sha256: "ab".into(),
            crc64nvme: "CRC=".into(),
        }
    }

    #[test]
    fn sha256_decides_when_present_else_the_crc_else_our_own_etag() {
        let both = ObjectInfo {
            size: 3,
            sha256: Some("ab".into()),
            crc64nvme: Some("other".into()),
            etag: Some("\"e\"".into()),
        };
        assert!(both.holds(3, &digests(), None), "sha256 outranks the crc");
        assert!(!both.holds(4, &digests(), None), "size differs");
        let crc_only = ObjectInfo {
            sha256: None,
            crc64nvme: Some("CRC=".into()),
            ..both.clone()
        };
        assert!(crc_only.holds(3, &digests(), None));
        let wrong_sha = ObjectInfo {
            sha256: Some("cd".into()),
            crc64nvme: Some("CRC=".into()),
            ..both.clone()
        };
        assert!(
            !wrong_sha.holds(3, &digests(), Some("\"e\"")),
            "a matching crc or etag never overrides a different sha256"
        );
        let neither = ObjectInfo {
            size: 3,
            sha256: None,
            crc64nvme: None,
            etag: Some("\"e\"".into()),
        };
        assert!(!neither.holds(3, &digests(), None), "unknown content");
        assert!(
            !neither.holds(3, &digests(), Some("\"f\"")),
            "another object"
        );
        assert!(
            neither.holds(3, &digests(), Some("\"e\"")),
            "the one we uploaded"
        );
    }
}
