//! One run: plan → lock → manifest → preflight → files (download, upload)
//! → final manifest, copied to the destination.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use futures::StreamExt;

use super::Dataset;
use super::PipelineError;
use super::checksum;
use super::download::{self, DownloadStatus};
use super::fetch;
use super::growing::{self, GrowingFile};
use super::lock::WorkLock;
use super::manifest::{
    self, FileAudit, Manifest, ManifestWriter, PreflightRecord, RunStatus, UploadStatus,
};
use super::preflight;
use super::progress::Progress;
use super::records::{RecordAudit, datastore};
use super::retry::RetryPolicy;
use super::source::{Location, PlannedFile, Source};
use super::store::{Destination, PutMode, PutOutcome, StoreError, attempts};

/// Everything a run needs, resolved from flags, env, config and defaults.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub years: Vec<i32>,
    pub datasets: Vec<Dataset>,
    pub source: Source,
    pub destination: Destination,
    pub work_dir: PathBuf,
    pub jobs: usize,
    pub overwrite: bool,
    pub no_upload: bool,
    pub skip_preflight: bool,
    /// `None`: a fresh UTC timestamp id, chosen once the work dir is locked.
    pub run_id: Option<String>,
    pub progress_bars: bool,
    pub retry: RetryPolicy,
    /// How long the publisher's datastore may take to give its count.
    pub datastore_timeout: std::time::Duration,
    /// For the doctor gate in the preflight.
    pub config: Arc<crate::config::Config>,
    /// Set when the destination is S3: the gate then checks the account.
    pub aws: Option<crate::aws::AwsClients>,
}

/// A file of the plan with what a HEAD said about it.
#[derive(Debug, Clone)]
pub struct PlanRow {
    pub file: PlannedFile,
    pub size: Option<u64>,
    /// The remote version seen while planning (ETag / Last-Modified).
    pub validator: Option<fetch::Validator>,
    pub target: String,
    /// The publisher's record count and header, or why there is none.
    pub expected: datastore::Expected,
}

/// Reads the catalog and plans the files (no writes anywhere).
pub async fn plan(s: &RunSettings) -> Result<Vec<PlanRow>, PipelineError> {
    let catalog = s.source.catalog(&s.retry).await?;
    let files = super::source::plan(&s.source, &catalog, &s.datasets, &s.years)?;
    let rows = futures::stream::iter(files)
        .map(|file| async {
            let probe = async {
                match &file.location {
                    Ok(loc) => fetch::probe(&s.source, loc).await.unwrap_or_default(),
                    Err(_) => fetch::Probe::default(),
                }
            };
            let expected = datastore::query(
                &s.source,
                file.dataset_id.as_deref(),
                file.distribution_id.as_deref(),
                s.datastore_timeout,
            );
            let (probe, expected) = tokio::join!(probe, expected);
            if let Err(reason) = &expected {
                tracing::info!(file = %file.file_name, %reason, "no record count from the publisher");
            }
            let target = s.destination.locate(&file.key);
            PlanRow {
                file,
                size: probe.size,
                validator: probe.validator,
                target,
                expected,
            }
        })
        .buffered(8)
        .collect()
        .await;
    Ok(rows)
}

/// The end of a run, for the command to print and map onto an exit code.
#[derive(Debug)]
pub struct RunReport {
    pub manifest: Manifest,
    pub audits: Vec<FileAudit>,
    pub manifest_dir: PathBuf,
    /// Set when the final documents could not be copied to the destination.
    pub publish_error: Option<String>,
}

struct Shared {
    manifest: Manifest,
    audits: Vec<FileAudit>,
    /// Why the run cannot go on (the work dir is full), first seen.
    blocker: Option<String>,
}

/// Executes a planned run. Only planning/locking problems are errors;
/// per-file failures are in the report.
pub async fn execute(s: &RunSettings, rows: Vec<PlanRow>) -> Result<RunReport, PipelineError> {
    let _lock = WorkLock::acquire(&s.work_dir)?;
    let run_id = match &s.run_id {
        Some(id) => id.clone(),
        None => fresh_run_id(&s.work_dir).await,
    };
    _lock.record_holder(&run_id);
    let writer = ManifestWriter::new(&s.work_dir, &run_id);
    let mut m = Manifest {
        run_id,
        datasets: s.datasets.clone(),
        years: s.years.clone(),
        status: RunStatus::Running,
        files_planned: rows.len(),
        files_downloaded: 0,
        files_skipped: 0,
        files_failed: 0,
        files_uploaded: 0,
        files_upload_skipped: 0,
        bytes_downloaded: 0,
        started_at: Utc::now(),
        finished_at: None,
        source: s.source.describe(),
        destination: s.destination.describe(),
        upload: !s.no_upload,
        preflight: PreflightRecord {
            skipped: s.skip_preflight,
            ..Default::default()
        },
        openpay_version: env!("CARGO_PKG_VERSION").to_string(),
        records_total: 0,
        records_expected_total: None,
        findings: Vec::new(),
        download_retries: 0,
        s3_retries: 0,
    };
    let save_err = |e: std::io::Error| {
        PipelineError::Blocked(format!(
            "cannot write the manifest under {}: {e}",
            writer.dir().display()
        ))
    };
    writer.save(&m, &[]).map_err(save_err)?;

    if !s.skip_preflight {
        let needed: u64 = rows.iter().map(|r| remaining_bytes(&s.work_dir, r)).sum();
        let dest = (!s.no_upload).then_some(&s.destination);
        let gate = preflight::Gate {
            config: Arc::clone(&s.config),
            aws: s.aws.clone(),
        };
        m.preflight = preflight::preflight(dest, &s.work_dir, needed, Some(gate)).await;
        if !m.preflight.passed {
            m.status = RunStatus::Blocked;
            m.finished_at = Some(Utc::now());
            writer.save(&m, &[]).map_err(save_err)?;
            return Ok(RunReport {
                manifest: m,
                audits: Vec::new(),
                manifest_dir: writer.dir().to_path_buf(),
                publish_error: None,
            });
        }
        writer.save(&m, &[]).map_err(save_err)?;
    }

    let shared = Arc::new(Mutex::new(Shared {
        manifest: m,
        audits: Vec::new(),
        blocker: None,
    }));
    let progress = Progress::new(s.progress_bars);
    futures::stream::iter(rows)
        .for_each_concurrent(s.jobs, |row| {
            let (shared, writer, progress) = (Arc::clone(&shared), writer.clone(), &progress);
            async move {
                let ((mut audit, transferred, blocker), s3) =
                    attempts::observed(process_file(s, &row, progress)).await;
                audit.s3 = s3;
                let mut g = shared.lock().expect("no panics while holding the lock");
                g.manifest.bytes_downloaded += transferred;
                g.audits.push(audit);
                if g.blocker.is_none() {
                    g.blocker = blocker;
                }
                let Shared {
                    manifest, audits, ..
                } = &mut *g;
                manifest.tally(audits);
                if let Err(e) = writer.save(manifest, audits) {
                    tracing::error!(error = %e, "cannot update the manifest");
                }
            }
        })
        .await;

    let Shared {
        manifest: mut m,
        audits,
        blocker,
    } = Arc::try_unwrap(shared)
        .ok()
        .expect("all file tasks are done")
        .into_inner()
        .expect("no poisoned lock");
    m.tally(&audits);
    m.status = m.final_status();
    m.finished_at = Some(Utc::now());
    if let Some(why) = blocker {
        m.status = RunStatus::Blocked;
        // Nothing is published; the manifest may not fit on the full disk
        // either (the last one written stays, whole).
        if let Err(e) = writer.save(&m, &audits) {
            tracing::warn!(error = %e, "cannot update the manifest");
        }
        return Err(PipelineError::Blocked(why));
    }
    writer.save(&m, &audits).map_err(save_err)?;
    let publish_error = if s.no_upload {
        None
    } else {
        publish(&s.destination, &m, &audits).await.err()
    };
    Ok(RunReport {
        manifest: m,
        audits,
        manifest_dir: writer.dir().to_path_buf(),
        publish_error,
    })
}

/// A UTC timestamp id (`YYYY-MM-DDTHH-MM-SSZ`) not yet used in this work
/// dir: two runs in the same second wait for the next one rather than
/// share (and overwrite) a manifest.
async fn fresh_run_id(work_dir: &Path) -> String {
    loop {
        let id = Utc::now().format("%Y-%m-%dT%H-%M-%SZ").to_string();
        if !work_dir.join(manifest::run_dir_key(&id)).exists() {
            return id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Copies the final manifest and audits to the destination.
async fn publish(dest: &Destination, m: &Manifest, audits: &[FileAudit]) -> Result<(), String> {
    let dir = manifest::run_dir_key(&m.run_id);
    dest.put_bytes(
        &format!("{dir}/file_audits.jsonl"),
        manifest::audits_jsonl(audits),
        "application/x-ndjson",
    )
    .await
    .map_err(|e| e.to_string())?;
    dest.put_bytes(
        &format!("{dir}/manifest.json"),
        manifest::manifest_json(m),
        "application/json",
    )
    .await
    .map_err(|e| e.to_string())
}

/// Where a planned file lives in the work dir (same layout as the lake).
pub fn work_path(work_dir: &Path, file: &PlannedFile) -> PathBuf {
    work_dir.join(&file.key)
}

/// Bytes still to fetch for a file, for the disk-space preflight.
fn remaining_bytes(work_dir: &Path, row: &PlanRow) -> u64 {
    let path = work_path(work_dir, &row.file);
    if path.exists() {
        return 0;
    }
    let have = std::fs::metadata(download::part_path(&path))
        .map(|m| m.len())
        .unwrap_or(0);
    row.size.unwrap_or(0).saturating_sub(have)
}

/// Download then upload one file; never fails the run, only the file,
/// except when the work dir is full: then the third value says why the
/// run must stop.
async fn process_file(
    s: &RunSettings,
    row: &PlanRow,
    progress: &Progress,
) -> (FileAudit, u64, Option<String>) {
    let started = Instant::now();
    let file = &row.file;
    let mut audit = FileAudit {
        file: file.file_name.clone(),
        dataset: file.dataset,
        year: file.year,
        url: file.url.clone(),
        bytes: None,
        sha256: None,
        crc64nvme: None,
        download: DownloadStatus::Failed,
        upload: UploadStatus::NotAttempted,
        key: row.target.clone(),
        attempts: 0,
        duration_ms: 0,
        error: None,
        records: RecordAudit::expecting(&row.expected),
        s3: Default::default(),
    };
    let loc: &Location = match &file.location {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(file = %file.file_name, error = %e, "file failed");
            audit.error = Some(e.clone());
            return (audit, 0, None);
        }
    };
    let bar = progress.file(&file.file_name, row.size);
    let dest = work_path(&s.work_dir, file);
    let on_bytes = |n: u64| bar.inc(n);
    let expected = download::Expected {
        size: row.size,
        validator: row.validator.clone(),
    };
    let (got, streamed) = match download::reuse(&dest, &file.url, &expected).await {
        Some(d) => (Ok(d), None),
        None => {
            let fetch =
                |feed| download::fetch(&s.source, loc, &file.url, &dest, &s.retry, &on_bytes, feed);
            let (fetched, streamed) = match streamable(s, row).await {
                Some(size) => {
                    let (feed, growing) = growing::channel(&download::part_path(&dest), size);
                    let fetching = async {
                        let fetched = fetch(Some(feed)).await;
                        if fetched.is_ok() {
                            bar.stage("downloaded; uploading the last parts");
                        }
                        fetched
                    };
                    let (fetched, put) = tokio::join!(
                        fetching,
                        s.destination
                            .put_file(&file.key, growing, PutMode::CreateOnly)
                    );
                    (fetched, Some(put))
                }
                None => (fetch(None).await, None),
            };
            let got = match fetched {
                Ok(f) => download::finish(f).await,
                Err(e) => Err(e),
            };
            (got, streamed)
        }
    };
    let d = match got {
        Ok(d) => d,
        Err(e) => {
            bar.finish("download failed");
            tracing::error!(file = %file.file_name, error = %e.message, "download failed");
            audit.attempts = e.attempts;
            let blocker = e.out_of_space.then(|| e.message.clone());
            audit.error = Some(e.message);
            audit.duration_ms = started.elapsed().as_millis() as u64;
            return (audit, 0, blocker);
        }
    };
    audit.download = d.status;
    audit.attempts = d.attempts;
    audit.bytes = Some(d.bytes);
    audit.sha256 = Some(d.digests.sha256.clone());
    audit.records = RecordAudit::check(&d.records, file.dataset, &row.expected);
    for (kind, message) in audit.records.findings() {
        tracing::warn!(file = %file.file_name, kind = %label(&kind), "{message}");
    }
    audit.crc64nvme = Some(d.digests.crc64nvme.clone());
    if !s.no_upload {
        let (status, note) = match streamed {
            // The source changed under the streamed parts: send the file
            // as it is now, the ordinary way.
            Some(Err(StoreError::Interrupted { reason, .. })) => {
                tracing::info!(file = %file.file_name, %reason, "uploading the finished file instead");
                upload(s, file, &d).await
            }
            Some(put) => after_put(s, file, &d, put).await,
            None => upload(s, file, &d).await,
        };
        audit.upload = status;
        audit.error = note;
    }
    bar.finish(&label(&audit.upload));
    audit.duration_ms = started.elapsed().as_millis() as u64;
    tracing::info!(file = %file.file_name, download = ?audit.download, upload = ?audit.upload, bytes = d.bytes, ms = audit.duration_ms, "file done");
    (audit, d.transferred, None)
}

/// The planned size when this file's upload can stream while it
/// downloads: an S3 multipart upload of an object that does not exist
/// yet. Anything else (an existing object to compare, a local lake, an
/// unknown size) downloads first, and `upload` HEADs again once the file
/// is complete: minutes may have passed, and the comparison must see the
/// object as it is then.
async fn streamable(s: &RunSettings, row: &PlanRow) -> Option<u64> {
    let size = row.size?;
    if s.no_upload
        || !matches!(s.destination, Destination::S3(_))
        || size <= super::store::MULTIPART_THRESHOLD
    {
        return None;
    }
    matches!(s.destination.head(&row.file.key).await, Ok(None)).then_some(size)
}

/// The wire name of a status (`skipped_identical`), for people too.
pub fn label<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Idempotent upload: HEAD first; identical → skip; different → keep
/// unless `--overwrite`; absent → create-only write.
async fn upload(
    s: &RunSettings,
    file: &PlannedFile,
    d: &download::Downloaded,
) -> (UploadStatus, Option<String>) {
    let dest = &s.destination;
    let ours = checksum::uploaded_etag(&d.path, &dest.locate(&file.key));
    let existing = match dest.head(&file.key).await {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(file = %file.file_name, error = %e, "upload failed");
            return (UploadStatus::Failed, Some(e.to_string()));
        }
    };
    let mode = match &existing {
        Some(info) if info.holds(d.bytes, &d.digests, ours.as_deref()) => {
            return (UploadStatus::SkippedIdentical, None);
        }
        Some(info) if !s.overwrite => {
            let note = format!(
                "{} already exists with different content ({} bytes, {}); kept it — rerun with --overwrite to replace it",
                dest.locate(&file.key),
                info.size,
                info.describe_digest()
            );
            tracing::warn!(file = %file.file_name, "{note}");
            return (UploadStatus::SkippedExists, Some(note));
        }
        Some(_) => PutMode::Overwrite,
        None => PutMode::CreateOnly,
    };
    let growing = GrowingFile::complete(&d.path, d.bytes, d.digests.clone());
    let put = dest.put_file(&file.key, growing, mode).await;
    after_put(s, file, d, put).await
}

/// What a write's outcome means for the audit; a lost create race is
/// re-checked against what the other writer stored.
async fn after_put(
    s: &RunSettings,
    file: &PlannedFile,
    d: &download::Downloaded,
    put: Result<PutOutcome, StoreError>,
) -> (UploadStatus, Option<String>) {
    let location = s.destination.locate(&file.key);
    match put {
        Ok(PutOutcome::Written { etag }) => {
            if let Some(etag) = etag
                && let Err(e) = checksum::note_upload(&d.path, &location, &etag)
            {
                tracing::warn!(file = %file.file_name, error = %e, "cannot record the upload next to the file; a later run may not recognise it");
            }
            (UploadStatus::Uploaded, None)
        }
        Ok(PutOutcome::AlreadyExists) => match s.destination.head(&file.key).await {
            Ok(Some(info)) if info.holds(d.bytes, &d.digests, None) => (
                UploadStatus::SkippedIdentical,
                Some("another writer uploaded the same content first".into()),
            ),
            Ok(_) => (
                UploadStatus::SkippedExists,
                Some(
                    "another writer created this object first with different content; kept it"
                        .into(),
                ),
            ),
            Err(e) => (UploadStatus::Failed, Some(e.to_string())),
        },
        Err(e) => {
            tracing::error!(file = %file.file_name, error = %e, "upload failed");
            (UploadStatus::Failed, Some(e.to_string()))
        }
    }
}
