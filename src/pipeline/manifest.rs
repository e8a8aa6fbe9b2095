//! The run manifest and per-file audits, kept crash-safe.
//!
//! `manifest.json` is written when the run starts (`running`) and replaced
//! atomically after every step, with `file_audits.jsonl` beside it; a
//! `kill -9` at any instant leaves both valid. The same two documents are
//! copied to `metadata/runs/run_id=…/` in the destination at the end.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Dataset;
use super::atomic::write_atomic;
use super::download::DownloadStatus;
use super::records::{FindingKind, RecordAudit};
use super::store::S3Attempts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Completed,
    /// Every file is stored, and at least one is not what the publisher
    /// says it is (a [`Finding`]): the objects stay, exit 1.
    CompletedWithFindings,
    Partial,
    Failed,
    Blocked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadStatus {
    Uploaded,
    SkippedIdentical,
    SkippedExists,
    Failed,
    NotAttempted,
}

/// What the preflight decided, as recorded for auditors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreflightRecord {
    pub passed: bool,
    /// `--skip-preflight` was given.
    pub skipped: bool,
    /// Ids of the failing required checks.
    pub failing: Vec<String>,
    /// One line per failing check: why, and the fix.
    pub reasons: Vec<String>,
}

/// One line of `file_audits.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileAudit {
    pub file: String,
    pub dataset: Dataset,
    pub year: i32,
    pub url: String,
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    /// S3's full-object CRC64/NVME (base64), which `openpay verify`
    /// compares with what HeadObject reports; absent in older audits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64nvme: Option<String>,
    pub download: DownloadStatus,
    pub upload: UploadStatus,
    /// Where the object is (or would be) in the destination.
    pub key: String,
    pub attempts: u32,
    pub duration_ms: u64,
    pub error: Option<String>,
    /// What the file holds as CSV, against the publisher's numbers.
    #[serde(flatten)]
    pub records: RecordAudit,
    /// The S3 calls made for this file and the retries they needed.
    #[serde(default)]
    pub s3: S3Attempts,
}

/// Something wrong with a stored file's records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub file: String,
    pub kind: FindingKind,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub run_id: String,
    pub datasets: Vec<Dataset>,
    pub years: Vec<i32>,
    pub status: RunStatus,
    pub files_planned: usize,
    pub files_downloaded: usize,
    pub files_skipped: usize,
    pub files_failed: usize,
    pub files_uploaded: usize,
    pub files_upload_skipped: usize,
    pub bytes_downloaded: u64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub source: String,
    pub destination: String,
    pub upload: bool,
    pub preflight: PreflightRecord,
    pub openpay_version: String,
    /// Data records in the files audited (headers excluded).
    #[serde(default)]
    pub records_total: u64,
    /// The publisher's count for the same files; null unless the
    /// datastore answered for every one.
    #[serde(default)]
    pub records_expected_total: Option<u64>,
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// Download attempts beyond each file's first (drops, 429, 5xx…).
    #[serde(default)]
    pub download_retries: u64,
    /// S3 attempts beyond each call's first, summed over the files.
    #[serde(default)]
    pub s3_retries: u64,
}

impl Manifest {
    /// Recomputes the counters from the audits, so they can never disagree.
    pub fn tally(&mut self, audits: &[FileAudit]) {
        use DownloadStatus as D;
        use UploadStatus as U;
        self.files_downloaded = audits
            .iter()
            .filter(|a| matches!(a.download, D::Downloaded | D::Resumed))
            .count();
        self.files_skipped = audits
            .iter()
            .filter(|a| a.download == D::SkippedVerified)
            .count();
        self.files_failed = audits
            .iter()
            .filter(|a| a.download == D::Failed || a.upload == U::Failed)
            .count();
        self.files_uploaded = audits.iter().filter(|a| a.upload == U::Uploaded).count();
        self.files_upload_skipped = audits
            .iter()
            .filter(|a| matches!(a.upload, U::SkippedIdentical | U::SkippedExists))
            .count();
        self.records_total = audits.iter().filter_map(|a| a.records.records).sum();
        self.records_expected_total = audits
            .iter()
            .map(|a| a.records.records_expected)
            .sum::<Option<u64>>()
            .filter(|_| !audits.is_empty());
        self.findings = audits
            .iter()
            .flat_map(|a| {
                a.records
                    .findings()
                    .into_iter()
                    .map(|(kind, message)| Finding {
                        file: a.file.clone(),
                        kind,
                        message,
                    })
            })
            .collect();
        self.download_retries = audits
            .iter()
            .map(|a| u64::from(a.attempts.saturating_sub(1)))
            .sum();
        self.s3_retries = audits.iter().map(|a| u64::from(a.s3.retries)).sum();
    }

    /// The end state from the audits: all good, all stored but with
    /// findings, some good, none good.
    pub fn final_status(&self) -> RunStatus {
        if self.files_failed == 0 && self.findings.is_empty() {
            RunStatus::Completed
        } else if self.files_failed == 0 {
            RunStatus::CompletedWithFindings
        } else if self.files_failed < self.files_planned {
            RunStatus::Partial
        } else {
            RunStatus::Failed
        }
    }
}

/// The key of a run's documents, identical locally and in the destination.
pub fn run_dir_key(run_id: &str) -> String {
    format!("metadata/runs/run_id={run_id}")
}

/// Writes the manifest and audits into `{work_dir}/metadata/runs/run_id=…/`.
#[derive(Debug, Clone)]
pub struct ManifestWriter {
    dir: PathBuf,
}

impl ManifestWriter {
    pub fn new(work_dir: &Path, run_id: &str) -> Self {
        Self {
            dir: work_dir.join(run_dir_key(run_id)),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn save(&self, manifest: &Manifest, audits: &[FileAudit]) -> std::io::Result<()> {
        // Audits first: a manifest never points at counts its audits lack.
        write_atomic(&self.dir.join("file_audits.jsonl"), &audits_jsonl(audits))?;
        write_atomic(&self.dir.join("manifest.json"), &manifest_json(manifest))
    }
}

pub fn manifest_json(m: &Manifest) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(m).expect("manifest serialises");
    v.push(b'\n');
    v
}

pub fn audits_jsonl(audits: &[FileAudit]) -> Vec<u8> {
    let mut out = Vec::new();
    for a in audits {
        serde_json::to_writer(&mut out, a).expect("audit serialises");
        out.push(b'\n');
    }
    out
}
