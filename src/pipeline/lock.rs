//! One run per work dir.
//!
//! An OS file lock (flock) on `{work_dir}/.openpay.lock`: the kernel drops
//! it when the process dies, even by `kill -9`, so there is never a stale
//! lock to clean up by hand. The file's content only says who holds it.

use std::fs::File;
use std::io::{Read, Seek, Write};

use std::path::Path;

use super::PipelineError;

pub struct WorkLock {
    file: File,
}

impl WorkLock {
    pub fn acquire(work_dir: &Path) -> Result<Self, PipelineError> {
        std::fs::create_dir_all(work_dir).map_err(|e| {
            PipelineError::Blocked(format!(
                "cannot create work dir {}: {e}; fix --work-dir or its permissions",
                work_dir.display()
            ))
        })?;
        let path = work_dir.join(".openpay.lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| PipelineError::Blocked(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(PipelineError::Blocked(format!(
                    "another openpay run holds the lock on work dir {} ({}); wait for it to finish or use another --work-dir",
                    work_dir.display(),
                    if holder.is_empty() {
                        "holder unknown"
                    } else {
                        holder
                    }
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(PipelineError::Blocked(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )));
            }
        }
        let lock = Self { file };
        lock.record_holder("starting");
        Ok(lock)
    }

    /// Says who holds the lock, for the message a second run prints.
    pub fn record_holder(&self, run_id: &str) {
        let mut f = &self.file;
        let _ = self.file.set_len(0);
        let _ = f.rewind();
        let _ = write!(f, "pid {} run_id {run_id}", std::process::id());
        let _ = f.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_with_holder() {
        let dir = tempfile::tempdir().unwrap();
        let a = WorkLock::acquire(dir.path()).unwrap();
        a.record_holder("run-a");
        let e = WorkLock::acquire(dir.path()).err().unwrap().to_string();
        assert!(
            e.contains("run-a") && e.contains("another openpay run"),
            "{e}"
        );
    }

    #[test]
    fn lock_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        drop(WorkLock::acquire(dir.path()).unwrap());
        assert!(WorkLock::acquire(dir.path()).is_ok());
    }
}
