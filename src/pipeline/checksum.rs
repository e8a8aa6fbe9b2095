//! Digests of files, and the sidecar records that let a later run trust a
//! file without reading it again.
//!
//! A final file counts as verified when its sidecar says which URL it came
//! from, its length and digests, and the file still has the size and mtime
//! recorded when the digests were computed (rsync's quick check). Size
//! alone never counts. Anything else is re-hashed or re-downloaded.
//!
//! Files are not fsynced before they count as complete (that alone cost
//! half the download time: the disk absorbs less than the network
//! delivers). A process crash cannot lose page-cache data, so the record
//! trusts such a file only within the boot that wrote it; after a reboot
//! (power loss, kernel crash) it is re-hashed before it is used.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::atomic::write_atomic;
use super::fetch::Validator;

/// What openpay knows about a complete file it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub url: String,
    pub bytes: u64,
    pub sha256: String,
    pub validator: Option<Validator>,
    /// Modification time (ns since the epoch) when the digests were taken.
    pub mtime_ns: i128,
    /// S3's CRC64/NVME of the file (base64), absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64nvme: Option<String>,
    /// The boot that wrote the file without fsync; after another boot the
    /// quick check no longer vouches for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsynced_boot: Option<String>,
    /// Objects uploaded from this file: location → ETag. Lets a later run
    /// recognise its own upload in a store that keeps no checksum.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub uploaded: BTreeMap<String, String>,
    /// The file read as CSV; absent in records older than the scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<super::records::RecordScan>,
}

/// The two digests openpay keeps of a file: sha256 for audits and people;
/// CRC64/NVME because S3 carries and verifies it as a full-object checksum
/// of a multipart object, which a sha256 can only be when known before the
/// first part (it is not while the file is still downloading).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Lower-case hex.
    pub sha256: String,
    /// Base64 of the big-endian CRC, as S3 sends `x-amz-checksum-crc64nvme`.
    pub crc64nvme: String,
}

/// Computes both digests in one pass over the bytes.
pub struct Hasher {
    sha: Sha256,
    crc: crc_fast::Digest,
}

impl Default for Hasher {
    fn default() -> Self {
        Self {
            sha: Sha256::new(),
            crc: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme),
        }
    }
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.crc.update(bytes);
    }

    pub fn finish(self) -> Digests {
        Digests {
            sha256: hex::encode(self.sha.finalize()),
            crc64nvme: base64::engine::general_purpose::STANDARD
                .encode(self.crc.finalize().to_be_bytes()),
        }
    }
}

/// This boot's id (Linux); `None` elsewhere, where files are fsynced.
pub fn boot_id() -> Option<&'static str> {
    static ID: OnceLock<Option<String>> = OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
    .as_deref()
}

impl FileRecord {
    /// Whether the bytes are known to be on stable storage, or were
    /// written in this boot (so the page cache still holds them).
    pub fn trusted_after_crash(&self) -> bool {
        self.unsynced_boot
            .as_deref()
            .is_none_or(|b| Some(b) == boot_id())
    }

    pub fn digests(&self) -> Option<Digests> {
        Some(Digests {
            sha256: self.sha256.clone(),
            crc64nvme: self.crc64nvme.clone()?,
        })
    }
}

pub fn sidecar_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".openpay.json");
    PathBuf::from(s)
}

pub fn mtime_ns(path: &Path) -> std::io::Result<i128> {
    let m = std::fs::metadata(path)?.modified()?;
    Ok(match m.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    })
}

pub fn read_record(path: &Path) -> Option<FileRecord> {
    let text = std::fs::read_to_string(sidecar_of(path)).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn write_record(path: &Path, rec: &FileRecord) -> std::io::Result<()> {
    write_atomic(
        &sidecar_of(path),
        &serde_json::to_vec_pretty(rec).expect("record serialises"),
    )
}

/// The record of `path` when the quick check holds (and `url`, if given,
/// matches); `None` means "not verified".
pub fn quick_verified(path: &Path, url: Option<&str>) -> Option<FileRecord> {
    let rec = read_record(path)?;
    if url.is_some_and(|u| u != rec.url) {
        return None;
    }
    if !rec.trusted_after_crash() {
        return None;
    }
    let len = std::fs::metadata(path).ok()?.len();
    (len == rec.bytes && mtime_ns(path).ok()? == rec.mtime_ns).then_some(rec)
}

/// Remembers that `location` now holds `path`'s bytes as the object
/// tagged `etag` (no record, nothing to remember it in).
pub fn note_upload(path: &Path, location: &str, etag: &str) -> std::io::Result<()> {
    let Some(mut rec) = read_record(path) else {
        return Ok(());
    };
    rec.uploaded.insert(location.to_string(), etag.to_string());
    write_record(path, &rec)
}

/// The ETag of the object this file was uploaded as to `location`.
pub fn uploaded_etag(path: &Path, location: &str) -> Option<String> {
    read_record(path)?.uploaded.remove(location)
}

/// Streams a file through both digests (blocking; call from a blocking
/// thread).
pub fn digest_file(path: &Path) -> std::io::Result<(Digests, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Hasher::default();
    let n = hash_reader(&mut f, &mut hasher, u64::MAX)?;
    Ok((hasher.finish(), n))
}

/// Feeds up to `limit` bytes of `r` into `hasher`; returns the count.
pub fn hash_reader(r: &mut impl Read, hasher: &mut Hasher, limit: u64) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    while total < limit {
        let want = (limit - total).min(buf.len() as u64) as usize;
        let n = r.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let (d, n) = digest_file(&p).unwrap();
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // CRC-64/NVME check value of "123456789" (the catalogue's), as S3
        // would send it: base64 of the big-endian 8 bytes.
        std::fs::write(&p, b"123456789").unwrap();
        let (nine, _) = digest_file(&p).unwrap();
        assert_eq!(
            nine.crc64nvme,
            base64::engine::general_purpose::STANDARD.encode(0xae8b14860a799888u64.to_be_bytes())
        );
        assert_eq!(n, 3);
    }

    #[test]
    fn quick_check_needs_record_size_and_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.csv");
        std::fs::write(&p, b"hello").unwrap();
        assert!(
            quick_verified(&p, None).is_none(),
            "a file without a record is never verified"
        );
        let (d, bytes) = digest_file(&p).unwrap();
        let mut rec = FileRecord {
            url: "u".into(),
            bytes,
            sha256: d.sha256,
            validator: None,
            mtime_ns: mtime_ns(&p).unwrap(),
            crc64nvme: Some(d.crc64nvme),
            unsynced_boot: boot_id().map(str::to_string),
            uploaded: BTreeMap::new(),
            records: None,
        };
        write_record(&p, &rec).unwrap();
        assert_eq!(quick_verified(&p, Some("u")), Some(rec.clone()));
        assert!(quick_verified(&p, Some("other")).is_none());
        if boot_id().is_some() {
            rec.unsynced_boot = Some("an-earlier-boot".into());
            write_record(&p, &rec).unwrap();
            assert!(
                quick_verified(&p, None).is_none(),
                "unsynced bytes from another boot are re-hashed, not trusted"
            );
        }
        std::fs::write(&p, b"HELLO!").unwrap();
        assert!(quick_verified(&p, None).is_none(), "changed size");
    }
}
