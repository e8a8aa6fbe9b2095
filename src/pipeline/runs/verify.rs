//! `openpay verify`: does every object of a run still hold what its audit
//! records? Exists, same size, same checksum.
//!
//! In a bucket the checksum comes from a HEAD with checksum mode (the
//! object's `x-amz-meta-sha256` when it has one, and S3's full-object
//! CRC64/NVME, which S3 itself verified when the upload completed): no
//! byte is downloaded. In a local lake the file is re-hashed, since a
//! sidecar next to it could be as stale as the file.

use futures::StreamExt;
use serde::Serialize;

use super::record::{AuditView, Stated};
use crate::pipeline::checksum;
use crate::pipeline::manifest::UploadStatus;
use crate::pipeline::store::{Destination, ObjectInfo, StoreError};

/// What one object turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Exists with the recorded size and checksum.
    Holds,
    Deleted,
    /// Shorter than recorded.
    Truncated,
    /// Other bytes: another size (longer) or another checksum.
    Replaced,
    /// Exists with the recorded size, but carries no checksum the audit
    /// can be compared with.
    Unverifiable,
    /// The run kept an existing object with other content
    /// (`skipped_exists`): the audit's digests were never its content.
    KeptExisting,
    /// The run did not write this file (upload failed or not attempted):
    /// nothing to check; the run's own status already says so.
    NotUploaded,
}

impl Outcome {
    /// Whether the object diverges from its audit (exit 1).
    pub fn diverges(self) -> bool {
        !matches!(self, Outcome::Holds | Outcome::NotUploaded)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ObjectCheck {
    pub file: String,
    pub location: String,
    pub outcome: Outcome,
    pub expected_bytes: Option<u64>,
    pub found_bytes: Option<u64>,
    /// What differed, in words.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub run_id: String,
    pub destination: String,
    pub holds: bool,
    pub objects_checked: usize,
    pub divergences: usize,
    pub objects: Vec<ObjectCheck>,
    /// Audit lines that could not be read: each counts as a divergence.
    pub audit_errors: Vec<String>,
}

impl VerifyReport {
    pub fn new(
        run_id: String,
        destination: String,
        objects: Vec<ObjectCheck>,
        audit_errors: Vec<String>,
    ) -> Self {
        let divergences =
            objects.iter().filter(|o| o.outcome.diverges()).count() + audit_errors.len();
        VerifyReport {
            run_id,
            destination,
            holds: divergences == 0,
            objects_checked: objects
                .iter()
                .filter(|o| o.outcome != Outcome::NotUploaded)
                .count(),
            divergences,
            objects,
            audit_errors,
        }
    }
}

/// Checks each audited object, 8 at a time. Only a store that cannot be
/// asked (denied, unreachable) is an error: the run cannot be evaluated.
pub async fn check_all(
    dest: &Destination,
    audits: &[AuditView],
) -> Result<Vec<ObjectCheck>, StoreError> {
    futures::stream::iter(audits)
        .map(|a| check(dest, a))
        .buffered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

async fn check(dest: &Destination, a: &AuditView) -> Result<ObjectCheck, StoreError> {
    let key = a.object_key();
    let mut c = ObjectCheck {
        file: a.file.clone(),
        location: dest.locate(&key),
        outcome: Outcome::NotUploaded,
        expected_bytes: a.bytes,
        found_bytes: None,
        detail: None,
    };
    match &a.upload {
        Stated::Known(UploadStatus::Failed | UploadStatus::NotAttempted) => return Ok(c),
        Stated::Known(UploadStatus::SkippedExists) => {
            c.outcome = Outcome::KeptExisting;
            c.detail = Some(
                "the run found this object with other content and kept it; rerun with --overwrite to replace it".into(),
            );
            return Ok(c);
        }
        _ => {}
    }
    let (outcome, found, detail) = match dest {
        Destination::Local(l) => {
            let path = l.path_of(&key);
            let hash_err = |message: String| StoreError::Other {
                operation: "hash",
                location: c.location.clone(),
                message,
            };
            match tokio::task::spawn_blocking(move || judge_file(&path))
                .await
                .map_err(|e| hash_err(e.to_string()))?
                .map_err(|e| hash_err(e.to_string()))?
            {
                None => judge_absent(),
                Some((size, sha)) => judge(a, size, Some(&sha), None),
            }
        }
        Destination::S3(_) => match dest.head(&key).await? {
            None => judge_absent(),
            Some(info) => judge_object(a, &info),
        },
    };
    c.outcome = outcome;
    c.found_bytes = found;
    c.detail = detail;
    Ok(c)
}

type Judged = (Outcome, Option<u64>, Option<String>);

fn judge_absent() -> Judged {
    (Outcome::Deleted, None, Some("the object is gone".into()))
}

/// A local file's size and sha256; a missing file is size `None`.
fn judge_file(path: &std::path::Path) -> std::io::Result<Option<(u64, String)>> {
    match checksum::digest_file(path) {
        Ok((d, size)) => Ok(Some((size, d.sha256))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn judge_object(a: &AuditView, info: &ObjectInfo) -> Judged {
    judge(
        a,
        info.size,
        info.sha256.as_deref(),
        info.crc64nvme.as_deref(),
    )
}

/// The verdict from what was found: size first (shorter is truncated,
/// longer is replaced), then every digest both sides know.
fn judge(a: &AuditView, size: u64, sha256: Option<&str>, crc64nvme: Option<&str>) -> Judged {
    if let Some(expected) = a.bytes {
        if size < expected {
            return (
                Outcome::Truncated,
                Some(size),
                Some(format!("{size} bytes, the audit records {expected}")),
            );
        }
        if size > expected {
            return (
                Outcome::Replaced,
                Some(size),
                Some(format!("{size} bytes, the audit records {expected}")),
            );
        }
    }
    let pairs = [
        ("sha256", a.sha256.as_deref(), sha256),
        ("crc64nvme", a.crc64nvme.as_deref(), crc64nvme),
    ];
    let mut compared = false;
    for (name, recorded, now) in pairs {
        if let (Some(recorded), Some(now)) = (recorded, now) {
            if recorded != now {
                return (
                    Outcome::Replaced,
                    Some(size),
                    Some(format!("{name} is {now}, the audit records {recorded}")),
                );
            }
            compared = true;
        }
    }
    if compared && a.bytes.is_some() {
        (Outcome::Holds, Some(size), None)
    } else {
        (
            Outcome::Unverifiable,
            Some(size),
            Some(
                "no checksum to compare: the object carries neither the sha256 nor the CRC64/NVME the audit records (replaced by another writer, or an audit from before openpay recorded the CRC)".into(),
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit() -> AuditView {
        AuditView {
            file: "a.csv".into(),
            dataset: "general-payments".into(),
            year: 2023,
            key: "/lake/raw/dataset=general-payments/year=2023/a.csv".into(),
            bytes: Some(10),
            sha256: Some("s".into()),
            crc64nvme: Some("c".into()),
            upload: Stated::Known(UploadStatus::Uploaded),
        }
    }

    fn obj(size: u64, sha: Option<&str>, crc: Option<&str>) -> ObjectInfo {
        ObjectInfo {
            size,
            sha256: sha.map(Into::into),
            crc64nvme: crc.map(Into::into),
            etag: None,
        }
    }

    #[test]
    fn verdicts() {
        let a = audit();
        let v = |o: ObjectInfo| judge_object(&a, &o).0;
        assert_eq!(v(obj(10, Some("s"), Some("c"))), Outcome::Holds);
        assert_eq!(
            v(obj(10, None, Some("c"))),
            Outcome::Holds,
            "streamed: crc only"
        );
        assert_eq!(v(obj(9, Some("s"), Some("c"))), Outcome::Truncated);
        assert_eq!(v(obj(11, Some("s"), Some("c"))), Outcome::Replaced);
        assert_eq!(v(obj(10, Some("x"), Some("c"))), Outcome::Replaced);
        assert_eq!(v(obj(10, None, Some("x"))), Outcome::Replaced);
        assert_eq!(v(obj(10, None, None)), Outcome::Unverifiable);
        let old = AuditView {
            crc64nvme: None,
            ..audit()
        };
        assert_eq!(
            judge_object(&old, &obj(10, None, Some("c"))).0,
            Outcome::Unverifiable,
            "an old audit without the CRC cannot vouch for a streamed object"
        );
    }
}
