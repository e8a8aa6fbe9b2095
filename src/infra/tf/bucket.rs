//! Destroy's data guard: the bucket is versioned, so "empty" means no
//! object versions and no delete markers (S3 refuses to delete the bucket
//! otherwise). With `--force` every version is deleted first.

use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::TfError;

fn s3_err(operation: &'static str, bucket: &str, e: impl std::fmt::Display) -> TfError {
    TfError::S3 {
        operation,
        bucket: bucket.to_string(),
        message: e.to_string(),
    }
}

/// Whether the bucket holds any object version or delete marker; a bucket
/// that does not exist is empty.
pub async fn holds_objects(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<bool, TfError> {
    match s3
        .list_object_versions()
        .bucket(bucket)
        .max_keys(1)
        .send()
        .await
    {
        Ok(out) => Ok(!out.versions().is_empty() || !out.delete_markers().is_empty()),
        Err(e) => {
            let code = e
                .as_service_error()
                .and_then(|s| s.meta().code())
                .map(str::to_string);
            if code.as_deref() == Some("NoSuchBucket") {
                Ok(false)
            } else {
                Err(s3_err(
                    "ListObjectVersions",
                    bucket,
                    aws_smithy_types::error::display::DisplayErrorContext(e),
                ))
            }
        }
    }
}

/// Deletes every object version and delete marker; returns how many.
pub async fn empty(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<usize, TfError> {
    let mut deleted = 0;
    loop {
        let out = s3
            .list_object_versions()
            .bucket(bucket)
            .max_keys(1000)
            .send()
            .await
            .map_err(|e| {
                s3_err(
                    "ListObjectVersions",
                    bucket,
                    aws_smithy_types::error::display::DisplayErrorContext(e),
                )
            })?;
        let ids: Vec<ObjectIdentifier> = out
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(
                out.delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id())),
            )
            .filter_map(|(k, v)| {
                ObjectIdentifier::builder()
                    .key(k?)
                    .set_version_id(v.map(str::to_string))
                    .build()
                    .ok()
            })
            .collect();
        if ids.is_empty() {
            return Ok(deleted);
        }
        let n = ids.len();
        let delete = Delete::builder()
            .set_objects(Some(ids))
            .quiet(true)
            .build()
            .map_err(|e| s3_err("DeleteObjects", bucket, e))?;
        let res = s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| {
                s3_err(
                    "DeleteObjects",
                    bucket,
                    aws_smithy_types::error::display::DisplayErrorContext(e),
                )
            })?;
        if let Some(err) = res.errors().first() {
            return Err(s3_err(
                "DeleteObjects",
                bucket,
                format!(
                    "{}: {}",
                    err.key().unwrap_or("?"),
                    err.code().unwrap_or("error")
                ),
            ));
        }
        deleted += n;
    }
}
