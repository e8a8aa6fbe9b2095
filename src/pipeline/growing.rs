//! A file that may still be downloading, as its uploader sees it.
//!
//! The download publishes how far the `.part` file is written; the upload
//! sends each part as soon as its bytes are there, so one file's download
//! and upload overlap and the bytes are read from the page cache right
//! behind the writer instead of after the whole file. A file already on
//! disk is the same thing, complete from the start: the uploader has one
//! code path.

use std::path::{Path, PathBuf};

use tokio::sync::watch;

use super::checksum::Digests;

/// How much of the file is usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fill {
    /// The first `n` bytes are written and will not change.
    Partial(u64),
    /// Every byte is written; the digests cover exactly `len` bytes.
    Complete { len: u64, digests: Digests },
    /// What was announced is no longer valid (the source changed and the
    /// download restarted, or it failed): anything built on it is void.
    Broken,
}

/// Why the bytes a reader waited for will not come.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Interrupted {
    #[error("the download restarted or failed while its parts were uploading")]
    Broken,
    #[error("the download ended at {got} bytes, not the {planned} planned for its parts")]
    SizeChanged { planned: u64, got: u64 },
}

/// The download's side.
#[derive(Debug)]
pub struct FillSender(watch::Sender<Fill>);

impl FillSender {
    pub fn partial(&self, n: u64) {
        self.set(Fill::Partial(n));
    }

    pub fn complete(&self, len: u64, digests: Digests) {
        self.set(Fill::Complete { len, digests });
    }

    /// Final: a download that restarts after this announces new bytes, but
    /// parts built on the old ones must never be completed, so nothing
    /// un-breaks it (a watch keeps only the latest value: a reader that
    /// looks later would otherwise miss the break).
    pub fn broken(&self) {
        self.0.send_replace(Fill::Broken);
    }

    fn set(&self, fill: Fill) {
        self.0.send_if_modified(|f| {
            let open = !matches!(f, Fill::Broken);
            if open {
                *f = fill;
            }
            open
        });
    }
}

impl Drop for FillSender {
    /// A download that ends without saying `complete` failed.
    fn drop(&mut self) {
        self.0.send_if_modified(|f| {
            let open = !matches!(f, Fill::Complete { .. });
            if open {
                *f = Fill::Broken;
            }
            open
        });
    }
}

/// The uploader's side: the path, the planned size, and the fill level.
#[derive(Debug, Clone)]
pub struct GrowingFile {
    path: PathBuf,
    size: u64,
    fill: watch::Receiver<Fill>,
    /// Known before the first byte (a file already on disk): the upload
    /// can label the object with it up front.
    known: Option<Digests>,
}

/// A file of `size` planned bytes that is about to be written at `path`.
pub fn channel(path: &Path, size: u64) -> (FillSender, GrowingFile) {
    let (tx, rx) = watch::channel(Fill::Partial(0));
    let file = GrowingFile {
        path: path.to_path_buf(),
        size,
        fill: rx,
        known: None,
    };
    (FillSender(tx), file)
}

impl GrowingFile {
    /// A complete file on disk with known digests.
    pub fn complete(path: &Path, size: u64, digests: Digests) -> Self {
        let (_tx, rx) = watch::channel(Fill::Complete {
            len: size,
            digests: digests.clone(),
        });
        Self {
            path: path.to_path_buf(),
            size,
            fill: rx,
            known: Some(digests),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Digests known before the upload starts.
    pub fn known_digests(&self) -> Option<&Digests> {
        self.known.as_ref()
    }

    /// Whether the download voided what it announced (see [`Fill::Broken`]).
    pub fn is_broken(&self) -> bool {
        matches!(*self.fill.borrow(), Fill::Broken)
    }

    /// Waits until the first `end` bytes are written.
    pub async fn wait_for(&mut self, end: u64) -> Result<(), Interrupted> {
        let size = self.size;
        let fill = self
            .fill
            .wait_for(|f| match f {
                Fill::Partial(n) => *n >= end,
                Fill::Complete { .. } | Fill::Broken => true,
            })
            .await
            .map_err(|_| Interrupted::Broken)?;
        match &*fill {
            Fill::Partial(_) => Ok(()),
            Fill::Complete { len, .. } if *len == size => Ok(()),
            Fill::Complete { len, .. } => Err(Interrupted::SizeChanged {
                planned: size,
                got: *len,
            }),
            Fill::Broken => Err(Interrupted::Broken),
        }
    }

    /// Waits until the whole file is written; its digests.
    pub async fn wait_complete(&mut self) -> Result<Digests, Interrupted> {
        let size = self.size;
        let fill = self
            .fill
            .wait_for(|f| !matches!(f, Fill::Partial(_)))
            .await
            .map_err(|_| Interrupted::Broken)?;
        match &*fill {
            Fill::Complete { len, digests } if *len == size => Ok(digests.clone()),
            Fill::Complete { len, .. } => Err(Interrupted::SizeChanged {
                planned: size,
                got: *len,
            }),
            _ => Err(Interrupted::Broken),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digests() -> Digests {
        Digests {
            sha256: "00".into(),
            crc64nvme: "AA==".into(),
        }
    }

    #[tokio::test]
    async fn readers_wait_for_their_bytes() {
        let (tx, mut file) = channel(Path::new("f.part"), 10);
        let waiter = tokio::spawn(async move {
            file.wait_for(6).await?;
            file.wait_complete().await
        });
        tx.partial(5);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "5 of the 6 bytes are not enough");
        tx.partial(6);
        tx.complete(10, digests());
        assert_eq!(waiter.await.unwrap(), Ok(digests()));
    }

    #[tokio::test]
    async fn a_dropped_or_broken_download_voids_the_wait() {
        let (tx, mut file) = channel(Path::new("f.part"), 10);
        drop(tx);
        assert_eq!(file.wait_for(1).await, Err(Interrupted::Broken));

        let (tx, mut file) = channel(Path::new("f.part"), 10);
        tx.partial(4);
        tx.broken();
        assert_eq!(file.wait_for(2).await, Err(Interrupted::Broken));
    }

    #[tokio::test]
    async fn a_break_outlives_the_restart_that_follows_it() {
        let (tx, mut file) = channel(Path::new("f.part"), 10);
        tx.partial(6);
        tx.broken();
        // The download starts over and finishes before the reader looks.
        tx.partial(0);
        tx.partial(10);
        tx.complete(10, digests());
        assert_eq!(file.wait_for(8).await, Err(Interrupted::Broken));
        assert_eq!(file.wait_complete().await, Err(Interrupted::Broken));
    }

    #[tokio::test]
    async fn a_different_final_size_is_reported() {
        let (tx, mut file) = channel(Path::new("f.part"), 10);
        tx.complete(12, digests());
        assert_eq!(
            file.wait_complete().await,
            Err(Interrupted::SizeChanged {
                planned: 10,
                got: 12
            })
        );
    }

    #[tokio::test]
    async fn a_complete_file_never_waits() {
        let mut file = GrowingFile::complete(Path::new("f"), 3, digests());
        assert_eq!(file.wait_for(3).await, Ok(()));
        assert_eq!(file.known_digests(), Some(&digests()));
        assert_eq!(file.wait_complete().await, Ok(digests()));
    }
}
