//! The S3 raw zone.
//!
//! HEAD decides everything: 404 is "absent"; 403 and every other error are
//! errors (403 names the permission to grant), never "absent". New objects
//! are created with `If-None-Match: *`, so two runs racing cannot both
//! write. Large files go multipart, parts streamed from disk in parallel
//! (memory stays flat whatever the file size), each part as soon as the
//! download has written it. Every object carries a full-object CRC64/NVME
//! checksum that S3 verifies against the bytes it stored.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
};
use futures::{StreamExt, TryStreamExt};

use super::attempts::AttemptLog;
use super::{ObjectInfo, PutMode, PutOutcome, StoreError};
use crate::aws::AwsClients;
use crate::pipeline::growing::{GrowingFile, Interrupted};

/// Files above this go multipart.
pub const MULTIPART_THRESHOLD: u64 = 32 * 1024 * 1024;
const MIN_PART: u64 = 16 * 1024 * 1024;
const PARALLEL_PARTS: usize = 8;
/// Read size for part bodies. The SDK's default (4 KiB) made every part
/// thousands of tiny reads and body frames: measured on loopback, 1 GiB
/// took 5.7 s with it and 4.5 s with 256 KiB (s5cmd: 5.1 s); 1 MiB was no
/// faster and costs 8 MiB more memory with 8 parts in flight.
const READ_BUFFER: usize = 256 * 1024;
const SHA_METADATA: &str = "sha256";
/// The bucket's lifecycle rule (terraform/storage.tf) that deletes the
/// parts of an upload nobody completed or aborted.
pub const ABORT_RULE: &str = "abort-incomplete-multipart-uploads";
const ABORT_RULE_DAYS: u32 = 7;

#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Empty, or ending in `/`.
    prefix: String,
}

/// How an SDK error reads, without leaking request details.
struct Failure {
    status: Option<u16>,
    code: Option<String>,
    message: String,
}

type Raw = aws_smithy_runtime_api::client::orchestrator::HttpResponse;

/// Why a part did not upload.
enum PartError {
    /// Its bytes will not come (the download restarted or failed).
    Source(Interrupted),
    S3(Failure),
}

fn failure<E: ProvideErrorMetadata + std::error::Error + 'static>(e: &SdkError<E, Raw>) -> Failure {
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(str::to_string);
    let message = match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        _ => aws_smithy_types::error::display::DisplayErrorContext(e).to_string(),
    };
    Failure {
        status,
        code,
        message,
    }
}

impl S3Store {
    pub fn new(clients: &AwsClients, bucket: &str, prefix: &str) -> Self {
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let conf = clients
            .s3()
            .config()
            .to_builder()
            .interceptor(AttemptLog)
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(conf),
            bucket: bucket.to_string(),
            prefix,
        }
    }

    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The client and the key prefix (empty or ending in `/`), for readers
    /// of the run records (`pipeline::runs`) that list and fetch.
    pub(crate) fn parts(&self) -> (&aws_sdk_s3::Client, &str) {
        (&self.client, &self.prefix)
    }

    /// The IAM resource a key falls under, as the policy grants it
    /// (`arn:aws:s3:::BUCKET/raw/*`).
    fn resource_of(&self, key: &str) -> String {
        let zone = key.split('/').next().unwrap_or("raw");
        format!("arn:aws:s3:::{}/{}{zone}/*", self.bucket, self.prefix)
    }

    fn denied(&self, operation: &'static str, key: &str, action: &str) -> StoreError {
        let mut permission = format!("{action} on {}", self.resource_of(key));
        if operation == "HeadObject" {
            permission.push_str(&format!(" (and s3:ListBucket on arn:aws:s3:::{}, without which a missing object reads as 403)", self.bucket));
        }
        StoreError::AccessDenied {
            operation,
            location: format!("s3://{}/{}", self.bucket, self.full_key(key)),
            permission,
        }
    }

    fn interrupted(&self, key: &str, reason: Interrupted) -> StoreError {
        StoreError::Interrupted {
            location: format!("s3://{}/{}", self.bucket, self.full_key(key)),
            reason,
        }
    }

    fn other(&self, operation: &'static str, key: &str, f: Failure) -> StoreError {
        StoreError::Other {
            operation,
            location: format!("s3://{}/{}", self.bucket, self.full_key(key)),
            message: f.message,
        }
    }

    pub async fn check_bucket(&self) -> Result<(), StoreError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let f = failure(&e);
                match f.status {
                    Some(404) => Err(StoreError::NoSuchBucket {
                        bucket: self.bucket.clone(),
                    }),
                    Some(403) => Err(StoreError::AccessDenied {
                        operation: "HeadBucket",
                        location: format!("s3://{}", self.bucket),
                        permission: format!("s3:ListBucket on arn:aws:s3:::{}", self.bucket),
                    }),
                    _ => Err(StoreError::Other {
                        operation: "HeadBucket",
                        location: format!("s3://{}", self.bucket),
                        message: f.message,
                    }),
                }
            }
        }
    }

    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let full = self.full_key(key);
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&full)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectInfo {
                size: out.content_length().unwrap_or_default().max(0) as u64,
                sha256: out.metadata().and_then(|m| m.get(SHA_METADATA)).cloned(),
                // A composite checksum is per part, not the file's.
                crc64nvme: out
                    .checksum_crc64_nvme()
                    .filter(|_| out.checksum_type() != Some(&ChecksumType::Composite))
                    .map(str::to_string),
                etag: out.e_tag().map(str::to_string),
            })),
            Err(e) => {
                let f = failure(&e);
                match (f.status, f.code.as_deref()) {
                    (Some(404), _) | (_, Some("NotFound" | "NoSuchKey")) => Ok(None),
                    (Some(403), _) => Err(self.denied("HeadObject", key, "s3:GetObject")),
                    _ => Err(self.other("HeadObject", key, f)),
                }
            }
        }
    }

    pub async fn put_file(
        &self,
        key: &str,
        mut file: GrowingFile,
        mode: PutMode,
    ) -> Result<PutOutcome, StoreError> {
        if file.size() > MULTIPART_THRESHOLD {
            return self.put_multipart(key, file, mode).await;
        }
        let digests = file
            .wait_complete()
            .await
            .map_err(|r| self.interrupted(key, r))?;
        let body = ByteStream::read_from()
            .path(file.path())
            .buffer_size(READ_BUFFER)
            .build()
            .await
            .map_err(|e| {
                self.other(
                    "PutObject",
                    key,
                    Failure {
                        status: None,
                        code: None,
                        message: e.to_string(),
                    },
                )
            })?;
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .body(body)
            .content_type("text/csv")
            // Our own CRC, taken as the bytes arrived from the source: S3
            // checks what it stored against it.
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_crc64_nvme(digests.crc64nvme)
            .metadata(SHA_METADATA, digests.sha256);
        if mode == PutMode::CreateOnly {
            req = req.if_none_match("*");
        }
        match req.send().await {
            Ok(out) => Ok(PutOutcome::Written {
                etag: out.e_tag().map(str::to_string),
            }),
            Err(e) => self.put_error("PutObject", key, e),
        }
    }

    fn put_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
        &self,
        op: &'static str,
        key: &str,
        e: SdkError<E, Raw>,
    ) -> Result<PutOutcome, StoreError> {
        let f = failure(&e);
        match (f.status, f.code.as_deref()) {
            (Some(412), _) | (_, Some("PreconditionFailed")) => Ok(PutOutcome::AlreadyExists),
            (Some(403), _) | (_, Some("AccessDenied")) => Err(self.denied(op, key, "s3:PutObject")),
            _ => Err(self.other(op, key, f)),
        }
    }

    async fn put_multipart(
        &self,
        key: &str,
        file: GrowingFile,
        mode: PutMode,
    ) -> Result<PutOutcome, StoreError> {
        let full = self.full_key(key);
        let size = file.size();
        let create = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .content_type("text/csv")
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_type(ChecksumType::FullObject)
            .set_metadata(file.known_digests().map(|d| {
                [(SHA_METADATA.to_string(), d.sha256.clone())]
                    .into_iter()
                    .collect()
            }));
        let created = match create.send().await {
            Ok(c) => c,
            Err(e) => return self.put_error("CreateMultipartUpload", key, e),
        };
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        // ≤ 10,000 parts whatever the size; at least 16 MiB each.
        let part_size = MIN_PART.max(size.div_ceil(9_000).next_multiple_of(1024 * 1024));
        let count = size.div_ceil(part_size);
        let parts = futures::stream::iter(0..count)
            .map(|i| {
                let (client, bucket, full, upload_id, mut file) = (
                    self.client.clone(),
                    self.bucket.clone(),
                    full.clone(),
                    upload_id.clone(),
                    file.clone(),
                );
                async move {
                    let offset = i * part_size;
                    let len = part_size.min(size - offset);
                    file.wait_for(offset + len)
                        .await
                        .map_err(PartError::Source)?;
                    let body = ByteStream::read_from()
                        .path(file.path())
                        .offset(offset)
                        .buffer_size(READ_BUFFER)
                        .length(Length::Exact(len))
                        .build()
                        .await
                        .map_err(|e| {
                            PartError::S3(Failure {
                                status: None,
                                code: None,
                                message: e.to_string(),
                            })
                        })?;
                    let number = (i + 1) as i32;
                    let out = client
                        .upload_part()
                        .bucket(bucket)
                        .key(full)
                        .upload_id(upload_id)
                        .part_number(number)
                        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| PartError::S3(failure(&e)))?;
                    Ok::<_, PartError>(
                        CompletedPart::builder()
                            .part_number(number)
                            .set_e_tag(out.e_tag().map(str::to_string))
                            .set_checksum_crc64_nvme(out.checksum_crc64_nvme().map(str::to_string))
                            .build(),
                    )
                }
            })
            .buffered(PARALLEL_PARTS)
            .try_collect::<Vec<_>>()
            .await;
        // The whole file's CRC, which S3 checks against what it assembled.
        let mut file = file;
        let parts = match parts {
            Ok(parts) => file
                .wait_complete()
                .await
                .map(|d| (parts, d))
                .map_err(PartError::Source),
            Err(e) => Err(e),
        };
        let result = match parts {
            Err(PartError::Source(reason)) => Err(self.interrupted(key, reason)),
            // A part that failed while its bytes were being replaced (the
            // source changed and the download restarted) is the restart's
            // doing, not S3's.
            Err(PartError::S3(_)) if file.is_broken() => {
                Err(self.interrupted(key, Interrupted::Broken))
            }
            Err(PartError::S3(f)) => Err(if f.status == Some(403) {
                self.denied("UploadPart", key, "s3:PutObject")
            } else {
                self.other("UploadPart", key, f)
            }),
            Ok((parts, digests)) => {
                let mut req = self
                    .client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&full)
                    .upload_id(&upload_id)
                    .checksum_type(ChecksumType::FullObject)
                    .checksum_crc64_nvme(digests.crc64nvme.clone())
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    );
                if mode == PutMode::CreateOnly {
                    req = req.if_none_match("*");
                }
                match req.send().await {
                    Ok(out) => {
                        return Ok(PutOutcome::Written {
                            etag: out.e_tag().map(str::to_string),
                        });
                    }
                    Err(e) if e.code() == Some("NoSuchUpload") => {
                        // A retry of a completion whose answer was lost:
                        // the first attempt may have assembled the object.
                        // It is ours only if it holds exactly our bytes.
                        match self.head(key).await {
                            Ok(Some(info)) if info.holds(size, &digests, None) => {
                                return Ok(PutOutcome::Written { etag: info.etag });
                            }
                            _ => self.put_error("CompleteMultipartUpload", key, e),
                        }
                    }
                    Err(e) => self.put_error("CompleteMultipartUpload", key, e),
                }
            }
        };
        let cleanup = self.abort(key, &upload_id).await;
        match result {
            Err(StoreError::Other {
                operation,
                location,
                message,
            }) => Err(StoreError::Other {
                operation,
                location,
                message: format!("{message}; {cleanup}"),
            }),
            other => other,
        }
    }

    /// Aborts an upload that will not be completed, so its parts stop
    /// costing money; what became of them, for the audit.
    async fn abort(&self, key: &str, upload_id: &str) -> String {
        let sent = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .upload_id(upload_id)
            .send()
            .await;
        match sent {
            Ok(_) => {
                tracing::info!(file = key, "multipart upload aborted");
                "its multipart upload was aborted".into()
            }
            Err(e) => {
                let f = failure(&e);
                let why = match (f.status, f.code.as_deref()) {
                    (_, Some("NoSuchUpload")) => return "its multipart upload is gone".into(),
                    (Some(403), _) | (_, Some("AccessDenied")) => {
                        "was denied (s3:AbortMultipartUpload)".to_string()
                    }
                    _ => format!("failed ({})", f.message),
                };
                let note = format!(
                    "aborting its multipart upload {why}: the bucket's lifecycle rule `{ABORT_RULE}` deletes its parts {ABORT_RULE_DAYS} days after it started"
                );
                tracing::warn!(file = key, "{note}");
                note
            }
        }
    }

    pub async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(drop)
            .map_err(|e| {
                let f = failure(&e);
                if f.status == Some(403) {
                    self.denied("PutObject", key, "s3:PutObject")
                } else {
                    self.other("PutObject", key, f)
                }
            })
    }
}
