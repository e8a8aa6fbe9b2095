//! Resumable, verified download of one file into the work dir.
//!
//! Bytes land in `NAME.part`; `NAME.part.json` remembers the URL, total
//! size and validator of the version being fetched. After a drop or a
//! crash the next attempt sends `Range` guarded by `If-Range`, so a file
//! republished meanwhile restarts instead of being spliced. sha256 is
//! computed while the bytes stream in (on a blocking thread, overlapping
//! the network); the final length is checked, a sidecar record is written,
//! and only then is the file renamed into place.

use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::checksum::{self, FileRecord};
use super::fetch::{self, FetchError, Validator};
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
    pub sha256: String,
    pub status: DownloadStatus,
    pub attempts: u32,
    /// Bytes actually received in this run.
    pub transferred: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DownloadError {
    pub message: String,
    pub attempts: u32,
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

/// The append side of a `.part` file: writes and hashes each chunk.
struct PartWriter {
    file: BufWriter<std::fs::File>,
    hasher: Sha256,
    len: u64,
}

impl PartWriter {
    /// Opens `part`, keeping its first `keep` bytes and re-hashing them.
    fn open(part: &Path, keep: u64) -> std::io::Result<Self> {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(part)?;
        f.set_len(keep)?;
        let mut hasher = Sha256::new();
        f.seek(SeekFrom::Start(0))?;
        let hashed = checksum::hash_reader(&mut f, &mut hasher, keep)?;
        debug_assert_eq!(hashed, keep);
        f.seek(SeekFrom::Start(keep))?;
        Ok(Self {
            file: BufWriter::with_capacity(1 << 20, f),
            hasher,
            len: keep,
        })
    }

    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.file.write_all(chunk)?;
        self.hasher.update(chunk);
        self.len += chunk.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Downloads `loc` to `dest` unless a verified copy is already there.
pub async fn download(
    source: &Source,
    loc: &Location,
    url: &str,
    expected: &Expected,
    dest: &Path,
    retry: &RetryPolicy,
    on_bytes: OnBytes<'_>,
) -> Result<Downloaded, DownloadError> {
    let fail = |message: String, attempts: u32| DownloadError { message, attempts };
    if let Some(rec) = reuse_final(dest, url, expected).await {
        return Ok(Downloaded {
            path: dest.to_path_buf(),
            bytes: rec.bytes,
            sha256: rec.sha256,
            status: DownloadStatus::SkippedVerified,
            attempts: 0,
            transferred: 0,
        });
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| fail(format!("cannot create {}: {e}", parent.display()), 0))?;
    }
    let part = part_path(dest);
    let state_path = with_suffix(dest, ".part.json");
    let mut state: Option<PartState> = std::fs::read_to_string(&state_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .filter(|s: &PartState| s.url == url);

    // Resume only what we can prove is the same version: a state file for
    // this URL with a validator. Anything else starts from zero.
    let existing = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let mut keep = match &state {
        Some(s) if s.validator.is_some() && s.total.is_none_or(|t| existing <= t) => existing,
        _ => 0,
    };
    let part2 = part.clone();
    let mut writer = blocking(move || PartWriter::open(&part2, keep))
        .await
        .map_err(|e| fail(format!("cannot open {}: {e}", part.display()), 0))?;
    on_bytes(keep);
    let mut resumed = keep > 0;
    let mut attempts = 0u32;
    let mut fruitless = 0u32;
    let mut transferred = 0u64;

    loop {
        if let Some(total) = state.as_ref().and_then(|s| s.total)
            && keep == total
            && total > 0
        {
            break;
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
                    keep = 0;
                    resumed = false;
                    let p = part.clone();
                    writer = blocking(move || PartWriter::open(&p, 0))
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
                };
                if state.as_ref() != Some(&new_state) {
                    super::atomic::write_atomic(
                        &state_path,
                        &serde_json::to_vec(&new_state).expect("state serialises"),
                    )
                    .map_err(|e| {
                        fail(
                            format!("cannot write {}: {e}", state_path.display()),
                            attempts,
                        )
                    })?;
                    state = Some(new_state);
                }
                let (w, got, result) = pump(writer, body.chunks, on_bytes).await;
                writer = w.map_err(|e| {
                    fail(format!("writing {} failed: {e}", part.display()), attempts)
                })?;
                transferred += got;
                keep = writer.len;
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

    let started = Instant::now();
    let dest_owned = dest.to_path_buf();
    let url_owned = url.to_string();
    let validator = state.and_then(|s| s.validator);
    let rec = blocking(move || {
        finish(
            writer,
            &part,
            &dest_owned,
            &state_path,
            url_owned,
            validator,
        )
    })
    .await
    .map_err(|e| {
        fail(
            format!("finishing {} failed: {e}", dest.display()),
            attempts,
        )
    })?;
    tracing::debug!(file = %dest.display(), ms = started.elapsed().as_millis() as u64, "file verified and moved into place");
    Ok(Downloaded {
        path: dest.to_path_buf(),
        bytes: rec.bytes,
        sha256: rec.sha256,
        status: if resumed {
            DownloadStatus::Resumed
        } else {
            DownloadStatus::Downloaded
        },
        attempts,
        transferred,
    })
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
    if let Some(rec) = checksum::quick_verified(dest, Some(url)) {
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
        let (sha, bytes) = checksum::sha256_file(&d)?;
        if sha == rec.sha256 && bytes == rec.bytes {
            rec.mtime_ns = checksum::mtime_ns(&d)?;
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

/// Streams chunks into the writer on a blocking thread. Returns the
/// writer, the bytes written in this call and how the stream ended.
async fn pump(
    writer: PartWriter,
    mut chunks: fetch::ChunkStream,
    on_bytes: OnBytes<'_>,
) -> (std::io::Result<PartWriter>, u64, Result<(), FetchError>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    let task = tokio::task::spawn_blocking(move || {
        let mut w = writer;
        let mut n = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            w.write(&chunk)?;
            n += chunk.len() as u64;
        }
        w.flush()?;
        Ok::<_, std::io::Error>((w, n))
    });
    let mut result = Ok(());
    while let Some(item) = chunks.next().await {
        match item {
            Ok(chunk) => {
                let len = chunk.len() as u64;
                if tx.send(chunk).await.is_err() {
                    break;
                }
                on_bytes(len);
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    drop(tx);
    match task.await {
        Ok(Ok((w, n))) => (Ok(w), n, result),
        Ok(Err(e)) => (Err(e), 0, result),
        Err(e) => (Err(std::io::Error::other(e.to_string())), 0, result),
    }
}

fn finish(
    writer: PartWriter,
    part: &Path,
    dest: &Path,
    state_path: &Path,
    url: String,
    validator: Option<Validator>,
) -> std::io::Result<FileRecord> {
    let PartWriter { file, hasher, len } = writer;
    let f = file.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    drop(f);
    let on_disk = std::fs::metadata(part)?.len();
    if on_disk != len {
        return Err(std::io::Error::other(format!(
            "{} holds {on_disk} bytes, expected {len}",
            part.display()
        )));
    }
    let sha256 = hex::encode(hasher.finalize());
    // The record is written for the final name before the rename (rename
    // keeps the mtime): a crash in between leaves a complete .part that the
    // next run finishes, never a final file without a record.
    let rec = FileRecord {
        url,
        bytes: len,
        sha256,
        validator,
        mtime_ns: checksum::mtime_ns(part)?,
    };
    checksum::write_record(dest, &rec)?;
    std::fs::rename(part, dest)?;
    let _ = std::fs::remove_file(state_path);
    Ok(rec)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
}
