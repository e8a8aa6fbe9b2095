//! A run's end state as one JSON document (`run --summary-json PATH`,
//! `run --format json`), so an orchestrator branches on fields rather than
//! on log lines.
//!
//! The manifest and the audits are embedded as they are written to the
//! destination (flattened), so every field a newer manifest grows reaches
//! callers without a change here; what the summary adds is only what the
//! manifest cannot know about itself: where it lives, whether it reached
//! the destination, and the exit code the process ends with.

use std::path::Path;

use serde::Serialize;

use super::PipelineError;
use super::atomic::write_atomic;
use super::manifest::{self, FileAudit, Manifest};
use super::run::RunReport;
use super::store::Destination;
use crate::exit::Exit;

/// Bumped when a field changes meaning or disappears (never for additions).
pub const SUMMARY_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    pub summary_version: u32,
    /// The exit code `openpay run` ends with (DESIGN.md's 0/1/2/3).
    pub exit_code: u8,
    #[serde(flatten)]
    pub manifest: &'a Manifest,
    pub manifest_location: ManifestLocation,
    /// Why the manifest could not be copied to the destination.
    pub publish_error: Option<&'a str>,
    /// One entry per finished file: its `key` (where the object is),
    /// `download` and `upload` outcomes, digests and error.
    pub files: &'a [FileAudit],
}

#[derive(Debug, Serialize)]
pub struct ManifestLocation {
    /// The manifest in the work dir (always written).
    pub work_dir: String,
    /// The copy in the destination; absent with `--no-upload`, when the
    /// run was blocked before it wrote anything, or when the copy failed.
    pub destination: Option<String>,
}

impl<'a> Summary<'a> {
    pub fn new(report: &'a RunReport, dest: &Destination, exit: Exit) -> Self {
        let m = &report.manifest;
        let published =
            m.upload && report.publish_error.is_none() && m.status != manifest::RunStatus::Blocked;
        Summary {
            summary_version: SUMMARY_VERSION,
            exit_code: exit.code(),
            manifest: m,
            manifest_location: ManifestLocation {
                work_dir: report
                    .manifest_dir
                    .join("manifest.json")
                    .display()
                    .to_string(),
                destination: published.then(|| {
                    dest.locate(&format!(
                        "{}/manifest.json",
                        manifest::run_dir_key(&m.run_id)
                    ))
                }),
            },
            publish_error: report.publish_error.as_deref(),
            files: &report.audits,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("summary serialises");
        v.push(b'\n');
        v
    }

    /// Replaces `path` atomically: a reader never sees half a summary.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        write_atomic(path, &self.to_json())
    }
}

/// Refuses a `--summary-json` path that cannot be written before the run
/// starts, rather than after hours of downloading.
pub fn check_path(path: &Path) -> Result<(), PipelineError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if path.is_dir() {
        return Err(PipelineError::Input(format!(
            "--summary-json {}: is a directory; give a file path",
            path.display()
        )));
    }
    if !dir.is_dir() {
        return Err(PipelineError::Input(format!(
            "--summary-json {}: directory {} does not exist; create it or choose another path",
            path.display(),
            dir.display()
        )));
    }
    Ok(())
}
