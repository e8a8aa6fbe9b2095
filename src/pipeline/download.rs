//! Resumable, verified download of one file into the work dir.
//!
//! Bytes land in `NAME.part`; `NAME.part.json` remembers the URL, total
//! size and validator of the version being fetched. After a drop or a
//! crash the next attempt sends `Range` guarded by `If-Range`, so a file
//! republished meanwhile restarts instead of being spliced. The digests
//! are computed while the bytes stream in (on a blocking thread, overlapping
//! the network), and so are the CSV records ([`super::records`]); the final
//! length is checked, a sidecar record is written, and only then is the
//! file renamed into place. A body that ends inside a quoted field was cut
//! short whatever its length says: it is fetched again from the start and
//! never moved into place.
//!
//! A run first asks [`reuse`] for a verified final file, else [`fetch`]es
//! into the `.part` file and [`finish`]es (record, rename). The two are
//! separate so that an upload can read the `.part` file while it grows
//! ([`super::growing`]) and complete before the rename.

use std::io::{IoSlice, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::checksum::{self, Digests, FileRecord, Hasher};
use super::fetch::{self, FetchError, Validator};
use super::growing::FillSender;
use super::records::RecordScan;
use super::retry::RetryPolicy;
use super::source::{Location, Source};

/// How the bytes of a file came to be on disk in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownloadStatus {
    Downloaded,
    Resumed,
    SkippedVerified,
    Failed,
}

#[derive(Debug, Clone)]
pub struct Downloaded {
    pub path: PathBuf,
    pub bytes: u64,
    pub digests: Digests,
    pub status: DownloadStatus,
    pub attempts: u32,
    /// Bytes actually received in this run.
    pub transferred: u64,
    /// The file read as CSV.
    pub records: RecordScan,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DownloadError {
    pub message: String,
    pub attempts: u32,
    /// The work dir's filesystem is full: no other file can fare better,
    /// so the run stops (exit 3) instead of failing file after file.
    pub out_of_space: bool,
}

impl DownloadError {
    /// Writing `path` (the `.part` file or its state) failed; a full disk
    /// is named as such, with the space the `.part` file still needs,
    /// since only freeing space fixes it.
    fn write(
        path: &Path,
        part: &Path,
        e: std::io::Error,
        total: Option<u64>,
        attempts: u32,
    ) -> Self {
        if e.kind() != std::io::ErrorKind::StorageFull {
            return DownloadError {
                message: format!("writing {} failed: {e}", path.display()),
                attempts,
                out_of_space: false,
            };
        }
        let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        let need = match total {
            Some(t) => format!("{} more bytes", t.saturating_sub(have)),
            None => "more space (the size is unknown)".into(),
        };
        let free = path
            .parent()
            .and_then(|d| fs4::available_space(d).ok())
            .map(|f| format!("{f} bytes free"))
            .unwrap_or_else(|| "free space unknown".into());
        DownloadError {
            message: format!(
                "no space left writing {}: it needs {need} ({free}); free space or point --work-dir at a larger volume, then rerun: the download resumes at byte {have}",
                path.display()
            ),
            attempts,
            out_of_space: true,
        }
    }
}

/// What planning saw of the remote file; a verified local copy that
/// disagrees with it is stale (CMS republished) and is fetched again.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    pub size: Option<u64>,
    pub validator: Option<Validator>,
}

/// Progress callback: called with the number of new bytes written.
pub type OnBytes<'a> = &'a (dyn Fn(u64) + Send + Sync);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct PartState {
    url: String,
    total: Option<u64>,
    validator: Option<Validator>,
    /// The boot that wrote the (never fsynced) bytes: after a reboot they
    /// may not be what was received, so the download starts over.
    #[serde(default)]
    boot: Option<String>,
}

/// Where the bytes of `dest` accumulate until it is verified.
pub fn part_path(dest: &Path) -> PathBuf {
    with_suffix(dest, ".part")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// How often a growing `.part` file tells its uploader how far it is.
const PUBLISH_EVERY: u64 = 4 << 20;

/// The append side of a `.part` file: the file, its running digests and
/// its record scan. While a body streams in they are driven on three
/// threads ([`pump`]): hashing is the slowest step, and neither writing
/// nor scanning need wait for it.
struct PartWriter {
    sink: PartSink,
    hasher: Hasher,
    scanner: openpay_records::Scanner,
}

/// Feeds what is read to the record scanner too.
struct Tee<'a, R> {
    inner: R,
    scanner: &'a mut openpay_records::Scanner,
}

impl<R: std::io::Read> std::io::Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.scanner.feed(&buf[..n]);
        Ok(n)
    }
}

/// Writes chunks straight from the network buffers (one `writev` per
/// batch, no copy into a write buffer) and tells the uploader how far the
/// file is written.
struct PartSink {
    file: std::fs::File,
    len: u64,
    /// Bytes announced to `feed`.
    published: u64,
    feed: Option<Arc<FillSender>>,
}

impl PartWriter {
    /// Opens `part`, keeping its first `keep` bytes and re-hashing and
    /// rescanning them (one read).
    fn open(part: &Path, keep: u64, feed: Option<Arc<FillSender>>) -> std::io::Result<Self> {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(part)?;
        f.set_len(keep)?;
        let mut hasher = Hasher::default();
        let mut scanner = openpay_records::Scanner::new();
        f.seek(SeekFrom::Start(0))?;
        let mut tee = Tee {
            inner: &mut f,
            scanner: &mut scanner,
        };
        let hashed = checksum::hash_reader(&mut tee, &mut hasher, keep)?;
        debug_assert_eq!(hashed, keep);
        f.seek(SeekFrom::Start(keep))?;
        if let Some(feed) = &feed {
            feed.partial(keep);
        }
        Ok(Self {
            sink: PartSink {
                file: f,
                len: keep,
                published: keep,
                feed,
            },
            hasher,
            scanner,
        })
    }

    fn len(&self) -> u64 {
        self.sink.len
    }
}

impl PartSink {
    fn write_batch(&mut self, batch: &[Bytes]) -> std::io::Result<()> {
        let mut slices: Vec<IoSlice<'_>> = batch.iter().map(|b| IoSlice::new(b)).collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = self.file.write_vectored(rest)?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut rest, n);
        }
        self.len += batch.iter().map(|b| b.len() as u64).sum::<u64>();
        if self.len - self.published >= PUBLISH_EVERY {
            self.publish();
        }
        Ok(())
    }

    /// Announces what is written (it is in the page cache: readers see it).
    fn publish(&mut self) {
        self.published = self.len;
        if let Some(feed) = &self.feed {
            feed.partial(self.len);
        }
    }
}

/// Everything is on disk in the `.part` file; [`finish`] moves it into
/// place.
#[derive(Debug)]
pub struct Fetched {
    part: PathBuf,
    dest: PathBuf,
    state_path: PathBuf,
    url: String,
    validator: Option<Validator>,
    pub bytes: u64,
    pub digests: Digests,
    status: DownloadStatus,
    attempts: u32,
    transferred: u64,
    records: RecordScan,
}

/// The verified final file at `dest`, if there is one (else it is removed).
pub async fn reuse(dest: &Path, url: &str, expected: &Expected) -> Option<Downloaded> {
    let mut rec = reuse_final(dest, url, expected).await?;
    let records = match rec.records.clone() {
        Some(r) => r,
        // Downloaded before records were kept: scan it once and keep it.
        None => {
            let (d, mut r) = (dest.to_path_buf(), rec.clone());
            let scan = blocking(move || {
                let scan = RecordScan::of_file(&d)?;
                r.records = Some(scan.clone());
                checksum::write_record(&d, &r)?;
                Ok(scan)
            })
            .await
            .ok()?;
            rec.records = Some(scan.clone());
            scan
        }
    };
    Some(Downloaded {
        path: dest.to_path_buf(),
        bytes: rec.bytes,
        digests: rec.digests()?,
        status: DownloadStatus::SkippedVerified,
        attempts: 0,
        transferred: 0,
        records,
    })
}

/// Fetches `url` into `dest`'s `.part` file, resuming what an earlier
/// attempt left, with retries. `feed` hears how far the file is written.
pub async fn fetch(
    source: &Source,
    loc: &Location,
    url: &str,
    dest: &Path,
    retry: &RetryPolicy,
    on_bytes: OnBytes<'_>,
    feed: Option<FillSender>,
) -> Result<Fetched, DownloadError> {
    let fail = |message: String, attempts: u32| DownloadError {
        message,
        attempts,
        out_of_space: false,
    };
    let feed = feed.map(Arc::new);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| fail(format!("cannot create {}: {e}", parent.display()), 0))?;
    }
    let part = part_path(dest);
    let state_path = with_suffix(dest, ".part.json");
    let boot = checksum::boot_id().map(str::to_string);
    let mut state: Option<PartState> = std::fs::read_to_string(&state_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .filter(|s: &PartState| s.url == url);

    // Resume only what we can prove is the same version, written in this
    // boot: a state file for this URL with a validator. Anything else
    // starts from zero.
    let existing = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let mut keep = match &state {
        Some(s) if s.boot != boot => {
            if existing > 0 {
                tracing::info!(file = %dest.display(), "the partial file was written before a reboot; starting over");
            }
            0
        }
        Some(s) if s.validator.is_some() && s.total.is_none_or(|t| existing <= t) => existing,
        _ => 0,
    };
    let (part2, feed2) = (part.clone(), feed.clone());
    let mut writer = blocking(move || PartWriter::open(&part2, keep, feed2))
        .await
        .map_err(|e| fail(format!("cannot open {}: {e}", part.display()), 0))?;
    on_bytes(keep);
    let mut resumed = keep > 0;
    let mut attempts = 0u32;
    let mut fruitless = 0u32;
    // Bodies that ended inside a quoted field: each made progress, so they
    // are bounded on their own, or a source serving a cut file would be
    // fetched forever.
    let mut cut_short = 0u32;
    let mut transferred = 0u64;

    loop {
        if let Some(total) = state.as_ref().and_then(|s| s.total)
            && keep == total
            && total > 0
        {
            if !writer.scanner.summary().unterminated_quote {
                break;
            }
            // A crash left a cut body that looked complete: fetch it anew.
            writer = start_over(&part, &state_path, feed.clone())
                .await
                .map_err(|e| fail(format!("cannot reset {}: {e}", part.display()), attempts))?;
            (state, keep, resumed) = (None, 0, false);
        }
        attempts += 1;
        let validator = state.as_ref().and_then(|s| s.validator.clone());
        let outcome: Result<(), FetchError> = match fetch::open(
            source,
            loc,
            keep,
            validator.as_ref().filter(|_| keep > 0),
        )
        .await
        {
            Ok(body) => {
                if body.start == 0 && keep > 0 {
                    tracing::info!(file = %dest.display(), "source changed or ignored the range; restarting from zero");
                    if let Some(f) = &feed {
                        f.broken();
                    }
                    keep = 0;
                    resumed = false;
                    let (p, f) = (part.clone(), feed.clone());
                    writer = blocking(move || PartWriter::open(&p, 0, f))
                        .await
                        .map_err(|e| {
                            fail(format!("cannot reset {}: {e}", part.display()), attempts)
                        })?;
                }
                if keep > 0 && body.start == keep {
                    resumed = true;
                }
                let new_state = PartState {
                    url: url.to_string(),
                    total: body.total,
                    validator: body.validator.clone().or(validator),
                    boot: boot.clone(),
                };
                if state.as_ref() != Some(&new_state) {
                    super::atomic::write_atomic(
                        &state_path,
                        &serde_json::to_vec(&new_state).expect("state serialises"),
                    )
                    .map_err(|e| {
                        DownloadError::write(&state_path, &part, e, new_state.total, attempts)
                    })?;
                    state = Some(new_state);
                }
                let (w, got, result) = pump(writer, body.chunks, on_bytes).await;
                let total = state.as_ref().and_then(|s| s.total);
                writer = w.map_err(|e| DownloadError::write(&part, &part, e, total, attempts))?;
                transferred += got;
                keep = writer.len();
                if got > 0 {
                    fruitless = 0;
                }
                match (result, state.as_ref().and_then(|s| s.total)) {
                    (Err(e), _) => Err(e),
                    (Ok(()), Some(total)) if keep < total => Err(FetchError::Network(format!(
                        "body ended at {keep} of {total} bytes"
                    ))),
                    (Ok(()), Some(total)) if keep > total => Err(FetchError::Fatal(format!(
                        "received {keep} bytes but the source announced {total}"
                    ))),
                    (Ok(()), _) if writer.scanner.summary().unterminated_quote => {
                        // Complete by its length, cut by its content: the
                        // next attempt starts over, the way a changed
                        // source does.
                        writer =
                            start_over(&part, &state_path, feed.clone())
                                .await
                                .map_err(|e| {
                                    fail(format!("cannot reset {}: {e}", part.display()), attempts)
                                })?;
                        state = None;
                        resumed = false;
                        let cut = keep;
                        keep = 0;
                        cut_short += 1;
                        if cut_short >= retry.max_attempts {
                            return Err(fail(
                                format!(
                                    "{url}: ends inside a quoted field after {cut} bytes on {cut_short} attempts: the source serves a cut file; nothing was stored"
                                ),
                                attempts,
                            ));
                        }
                        Err(FetchError::Network(format!(
                            "the body ends inside a quoted field after {cut} bytes: the transfer was cut short"
                        )))
                    }
                    (Ok(()), _) => break,
                }
            }
            Err(e) => Err(e),
        };
        let Err(e) = outcome else { break };
        if !e.retryable() {
            return Err(fail(format!("{url}: {e}"), attempts));
        }
        fruitless += 1;
        if fruitless >= retry.max_attempts {
            return Err(fail(
                format!("{url}: {e} (gave up after {attempts} attempts)"),
                attempts,
            ));
        }
        let delay = if matches!(e, FetchError::Network(_)) && keep > 0 {
            // A drop after progress: resume promptly, the server was fine.
            retry
                .delay(1, None)
                .min(std::time::Duration::from_millis(200))
        } else {
            retry.delay(fruitless, e.retry_after())
        };
        tracing::warn!(url, attempt = attempts, at_byte = keep, error = %e, delay_ms = delay.as_millis() as u64, "download interrupted; retrying");
        tokio::time::sleep(delay).await;
    }

    let p = part.clone();
    let (bytes, digests, records) = blocking(move || seal(writer, &p)).await.map_err(|e| {
        fail(
            format!("finishing {} failed: {e}", part.display()),
            attempts,
        )
    })?;
    if let Some(f) = &feed {
        f.complete(bytes, digests.clone());
    }
    Ok(Fetched {
        part,
        dest: dest.to_path_buf(),
        state_path,
        url: url.to_string(),
        validator: state.and_then(|s| s.validator),
        bytes,
        digests,
        status: if resumed {
            DownloadStatus::Resumed
        } else {
            DownloadStatus::Downloaded
        },
        attempts,
        transferred,
        records,
    })
}

/// Empties the `.part` file and forgets its version, so the next request
/// fetches the whole file; streamed parts built on the old bytes are void.
async fn start_over(
    part: &Path,
    state_path: &Path,
    feed: Option<Arc<FillSender>>,
) -> std::io::Result<PartWriter> {
    if let Some(f) = &feed {
        f.broken();
    }
    let _ = std::fs::remove_file(state_path);
    let p = part.to_path_buf();
    blocking(move || PartWriter::open(&p, 0, feed)).await
}

/// Flushes the writer and checks the file holds what was hashed.
fn seal(writer: PartWriter, part: &Path) -> std::io::Result<(u64, Digests, RecordScan)> {
    let PartWriter {
        sink,
        hasher,
        scanner,
    } = writer;
    let (f, len) = (sink.file, sink.len);
    // Without a boot id there is no way to tell a reboot later: pay for
    // durability now.
    if checksum::boot_id().is_none() {
        f.sync_all()?;
    }
    drop(f);
    let on_disk = std::fs::metadata(part)?.len();
    if on_disk != len {
        return Err(std::io::Error::other(format!(
            "{} holds {on_disk} bytes, expected {len}",
            part.display()
        )));
    }
    Ok((
        len,
        hasher.finish(),
        RecordScan::from_summary(&scanner.summary()),
    ))
}

/// Records the fetched file and renames it into place.
pub async fn finish(f: Fetched) -> Result<Downloaded, DownloadError> {
    let started = Instant::now();
    let attempts = f.attempts;
    let dest = f.dest.clone();
    let out = Downloaded {
        path: f.dest.clone(),
        bytes: f.bytes,
        digests: f.digests.clone(),
        status: f.status,
        attempts: f.attempts,
        transferred: f.transferred,
        records: f.records.clone(),
    };
    blocking(move || {
        // The record is written for the final name before the rename
        // (rename keeps the mtime): a crash in between leaves a complete
        // .part that the next run finishes, never a final file without a
        // record.
        let rec = FileRecord {
            url: f.url,
            bytes: f.bytes,
            sha256: f.digests.sha256,
            validator: f.validator,
            mtime_ns: checksum::mtime_ns(&f.part)?,
            crc64nvme: Some(f.digests.crc64nvme),
            unsynced_boot: checksum::boot_id().map(str::to_string),
            uploaded: Default::default(),
            records: Some(f.records),
        };
        checksum::write_record(&f.dest, &rec)?;
        std::fs::rename(&f.part, &f.dest)?;
        let _ = std::fs::remove_file(&f.state_path);
        Ok(())
    })
    .await
    .map_err(|e| DownloadError {
        message: format!("finishing {} failed: {e}", dest.display()),
        attempts,
        out_of_space: e.kind() == std::io::ErrorKind::StorageFull,
    })?;
    tracing::debug!(file = %dest.display(), ms = started.elapsed().as_millis() as u64, "file verified and moved into place");
    Ok(out)
}

/// Removes a final file that may not be reused, with its record.
fn discard_final(dest: &Path) {
    let _ = std::fs::remove_file(dest);
    let _ = std::fs::remove_file(checksum::sidecar_of(dest));
}

/// A complete file is reused only when verified: quick check first, else a
/// full re-hash against its record. An unverifiable file is removed.
async fn reuse_final(dest: &Path, url: &str, expected: &Expected) -> Option<FileRecord> {
    if !dest.exists() {
        return None;
    }
    let exp = expected.clone();
    let stale = move |rec: &FileRecord| {
        exp.size.is_some_and(|s| s != rec.bytes)
            || matches!((&exp.validator, &rec.validator), (Some(now), Some(then)) if now != then)
    };
    // Records from before the CRC was kept take the slow path once.
    if let Some(rec) = checksum::quick_verified(dest, Some(url)).filter(|r| r.crc64nvme.is_some()) {
        if !stale(&rec) {
            return Some(rec);
        }
        tracing::info!(file = %dest.display(), "the source changed since this file was downloaded; fetching it again");
        discard_final(dest);
        return None;
    }
    let d = dest.to_path_buf();
    let url = url.to_string();
    let verdict = blocking(move || -> std::io::Result<Option<FileRecord>> {
        let Some(mut rec) = checksum::read_record(&d).filter(|r| r.url == url && !stale(r)) else {
            return Ok(None);
        };
        let (digests, bytes) = checksum::digest_file(&d)?;
        if digests.sha256 == rec.sha256 && bytes == rec.bytes {
            // Read back and matching: whatever boot wrote it, it is on
            // disk now, and older records gain the CRC.
            rec.mtime_ns = checksum::mtime_ns(&d)?;
            rec.crc64nvme = Some(digests.crc64nvme);
            rec.unsynced_boot = None;
            checksum::write_record(&d, &rec)?;
            Ok(Some(rec))
        } else {
            Ok(None)
        }
    })
    .await;
    match verdict {
        Ok(Some(rec)) => Some(rec),
        _ => {
            tracing::warn!(file = %dest.display(), "existing file is not verified against its record; downloading it again");
            discard_final(dest);
            None
        }
    }
}

/// Streams chunks into the writer: the file on one blocking thread, the
/// digests on another. Returns the writer, the bytes written in this call
/// and how the stream ended.
async fn pump(
    writer: PartWriter,
    chunks: fetch::ChunkStream,
    on_bytes: OnBytes<'_>,
) -> (std::io::Result<PartWriter>, u64, Result<(), FetchError>) {
    let PartWriter {
        mut sink,
        mut hasher,
        mut scanner,
    } = writer;
    let start = sink.len;
    // Chunks travel in batches of whatever arrived together: one channel
    // hop (and thread wake-up) per socket read of 16 KiB cost more than
    // the hashing itself.
    let (wtx, mut wrx) = tokio::sync::mpsc::channel::<Arc<Vec<Bytes>>>(8);
    let (htx, mut hrx) = tokio::sync::mpsc::channel::<Arc<Vec<Bytes>>>(8);
    let (stx, mut srx) = tokio::sync::mpsc::channel::<Arc<Vec<Bytes>>>(8);
    let writing = tokio::task::spawn_blocking(move || {
        let mut outcome = Ok(());
        while let Some(batch) = wrx.blocking_recv() {
            if let Err(e) = sink.write_batch(&batch) {
                outcome = Err(e);
                break;
            }
        }
        sink.publish();
        (sink, outcome)
    });
    let hashing = tokio::task::spawn_blocking(move || {
        while let Some(batch) = hrx.blocking_recv() {
            for chunk in batch.iter() {
                hasher.update(chunk);
            }
        }
        hasher
    });
    let scanning = tokio::task::spawn_blocking(move || {
        while let Some(batch) = srx.blocking_recv() {
            for chunk in batch.iter() {
                scanner.feed(chunk);
            }
        }
        scanner
    });
    let mut result = Ok(());
    let mut batches = chunks.ready_chunks(64);
    while let Some(items) = batches.next().await {
        let mut batch = Vec::with_capacity(items.len());
        let mut failed = None;
        for item in items {
            match item {
                Ok(chunk) => batch.push(chunk),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let len: u64 = batch.iter().map(|c| c.len() as u64).sum();
        if !batch.is_empty() {
            let batch = Arc::new(batch);
            // All three stay in step: a batch is hashed and scanned
            // exactly when it is written. A closed channel means the
            // writer failed.
            if wtx.send(Arc::clone(&batch)).await.is_err()
                || htx.send(Arc::clone(&batch)).await.is_err()
                || stx.send(batch).await.is_err()
            {
                break;
            }
            on_bytes(len);
        }
        if let Some(e) = failed {
            result = Err(e);
            break;
        }
    }
    drop((wtx, htx, stx));
    let joined = tokio::join!(writing, hashing, scanning);
    match joined {
        (Ok((sink, Ok(()))), Ok(hasher), Ok(scanner)) => {
            let n = sink.len - start;
            (
                Ok(PartWriter {
                    sink,
                    hasher,
                    scanner,
                }),
                n,
                result,
            )
        }
        (Ok((_, Err(e))), _, _) => (Err(e), 0, result),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            (Err(std::io::Error::other(e.to_string())), 0, result)
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
}
