//! A local lake: the same layout as the bucket, under a directory.

use std::path::{Path, PathBuf};

use super::{ObjectInfo, PutMode, PutOutcome, StoreError};
use crate::pipeline::atomic::write_atomic;
use crate::pipeline::checksum::{self, FileRecord};
use crate::pipeline::growing::GrowingFile;

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn describe(&self) -> String {
        self.root.display().to_string()
    }

    pub fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Sidecar records live in a hidden tree so the visible layout is the
    /// bucket's, byte for byte.
    fn record_path(&self, key: &str) -> PathBuf {
        self.root.join(".openpay").join(key)
    }

    fn err(op: &'static str, p: &Path, e: std::io::Error) -> StoreError {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            return StoreError::AccessDenied {
                operation: op,
                location: p.display().to_string(),
                permission: "write permission on the lake directory".into(),
            };
        }
        StoreError::Other {
            operation: op,
            location: p.display().to_string(),
            message: e.to_string(),
        }
    }

    pub fn check_writable(&self) -> Result<(), StoreError> {
        std::fs::create_dir_all(&self.root).map_err(|e| Self::err("create", &self.root, e))?;
        tempfile::tempfile_in(&self.root)
            .map(drop)
            .map_err(|e| Self::err("write a test file in", &self.root, e))
    }

    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let path = self.path_of(key);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Self::err("stat", &path, e)),
        };
        let record_at = self.record_path(key);
        let quick = checksum::read_record(&record_at).filter(|r| {
            r.bytes == meta.len() && checksum::mtime_ns(&path).ok() == Some(r.mtime_ns)
        });
        Ok(Some(ObjectInfo {
            size: meta.len(),
            crc64nvme: quick.as_ref().and_then(|r| r.crc64nvme.clone()),
            etag: None,
            sha256: quick.map(|r| r.sha256),
        }))
    }

    /// Copies the file once it is complete (a lake on the same disk gains
    /// nothing from copying a growing file), fsynced before it appears.
    pub async fn put_file(
        &self,
        key: &str,
        mut file: GrowingFile,
        mode: PutMode,
    ) -> Result<PutOutcome, StoreError> {
        let dest = self.path_of(key);
        let digests = file
            .wait_complete()
            .await
            .map_err(|reason| StoreError::Interrupted {
                location: dest.display().to_string(),
                reason,
            })?;
        let (src, key_owned, this) = (file.path().to_path_buf(), key.to_string(), self.clone());
        tokio::task::spawn_blocking(move || -> Result<PutOutcome, StoreError> {
            let dir = dest.parent().expect("keys have a directory");
            std::fs::create_dir_all(dir).map_err(|e| Self::err("create", dir, e))?;
            let mut tmp = tempfile::Builder::new()
                .prefix(".tmp-")
                .tempfile_in(dir)
                .map_err(|e| Self::err("write", dir, e))?;
            let mut input = std::fs::File::open(&src).map_err(|e| Self::err("read", &src, e))?;
            std::io::copy(&mut input, tmp.as_file_mut())
                .map_err(|e| Self::err("write", &dest, e))?;
            tmp.as_file()
                .sync_all()
                .map_err(|e| Self::err("sync", &dest, e))?;
            let written = match mode {
                PutMode::CreateOnly => match tmp.persist_noclobber(&dest) {
                    Ok(_) => PutOutcome::Written { etag: None },
                    Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Ok(PutOutcome::AlreadyExists);
                    }
                    Err(e) => return Err(Self::err("write", &dest, e.error)),
                },
                PutMode::Overwrite => {
                    tmp.persist(&dest)
                        .map_err(|e| Self::err("write", &dest, e.error))?;
                    PutOutcome::Written { etag: None }
                }
            };
            let bytes = std::fs::metadata(&dest)
                .map_err(|e| Self::err("stat", &dest, e))?
                .len();
            let rec = FileRecord {
                url: String::new(),
                bytes,
                sha256: digests.sha256,
                validator: None,
                mtime_ns: checksum::mtime_ns(&dest).map_err(|e| Self::err("stat", &dest, e))?,
                crc64nvme: Some(digests.crc64nvme),
                unsynced_boot: None,
                uploaded: Default::default(),
                records: None,
            };
            let at = this.record_path(&key_owned);
            std::fs::create_dir_all(at.parent().expect("record has a parent"))
                .map_err(|e| Self::err("create", &at, e))?;
            checksum::write_record(&at, &rec).map_err(|e| Self::err("write", &at, e))?;
            Ok(written)
        })
        .await
        .unwrap_or_else(|e| {
            Err(StoreError::Other {
                operation: "write",
                location: key.to_string(),
                message: e.to_string(),
            })
        })
    }

    pub fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let p = self.path_of(key);
        write_atomic(&p, bytes).map_err(|e| Self::err("write", &p, e))
    }
}
