//! sha256 of files, and the sidecar records that let a later run trust a
//! file without reading it again.
//!
//! A final file counts as verified when its sidecar says which URL it came
//! from, its length and sha256, and the file still has the size and mtime
//! recorded when the sha256 was computed (rsync's quick check). Size alone
//! never counts. Anything else is re-hashed or re-downloaded.

use std::io::Read;
use std::path::{Path, PathBuf};

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
    /// Modification time (ns since the epoch) when the sha256 was taken.
    pub mtime_ns: i128,
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
    let len = std::fs::metadata(path).ok()?.len();
    (len == rec.bytes && mtime_ns(path).ok()? == rec.mtime_ns).then_some(rec)
}

/// Streams a file through sha256 (blocking; call from a blocking thread).
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let n = hash_reader(&mut f, &mut hasher, u64::MAX)?;
    Ok((hex::encode(hasher.finalize()), n))
}

/// Feeds up to `limit` bytes of `r` into `hasher`; returns the count.
pub fn hash_reader(r: &mut impl Read, hasher: &mut Sha256, limit: u64) -> std::io::Result<u64> {
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
        let (sha, n) = sha256_file(&p).unwrap();
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
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
        let (sha, bytes) = sha256_file(&p).unwrap();
        let rec = FileRecord {
            url: "u".into(),
            bytes,
            sha256: sha,
            validator: None,
            mtime_ns: mtime_ns(&p).unwrap(),
        };
        write_record(&p, &rec).unwrap();
        assert_eq!(quick_verified(&p, Some("u")), Some(rec));
        assert!(quick_verified(&p, Some("other")).is_none());
        std::fs::write(&p, b"HELLO!").unwrap();
        assert!(quick_verified(&p, None).is_none(), "changed size");
    }
}
