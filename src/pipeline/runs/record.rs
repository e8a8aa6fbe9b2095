//! Tolerant views of the run documents: what `runs` and `verify` need,
//! read without rejecting fields or statuses this version does not know.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::pipeline::manifest::{RunStatus, UploadStatus};

/// A value as a document states it: one this version knows, or one an
/// other openpay version wrote (kept verbatim, never an error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stated<T> {
    Known(T),
    Other(String),
}

impl<T: Serialize> Stated<T> {
    /// The wire name (`completed`, `skipped_identical`, or the unknown text).
    pub fn label(&self) -> String {
        match self {
            Stated::Known(v) => crate::pipeline::run::label(v),
            Stated::Other(s) => s.clone(),
        }
    }
}

/// The manifest fields the listing shows. Only `run_id` and `status` are
/// required: without them a document is not a run manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestView {
    pub run_id: String,
    pub status: Stated<RunStatus>,
    #[serde(default)]
    pub datasets: Vec<String>,
    #[serde(default)]
    pub years: Vec<i32>,
    #[serde(default)]
    pub files_planned: u64,
    #[serde(default)]
    pub files_failed: u64,
    #[serde(default)]
    pub files_uploaded: u64,
    #[serde(default)]
    pub files_upload_skipped: u64,
    #[serde(default)]
    pub bytes_downloaded: u64,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub destination: Option<String>,
}

/// One line of `file_audits.jsonl`, as `verify` needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct AuditView {
    pub file: String,
    pub dataset: String,
    pub year: i32,
    /// Where the run wrote the object (a location, not a bare key).
    pub key: String,
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    #[serde(default)]
    pub crc64nvme: Option<String>,
    pub upload: Stated<UploadStatus>,
}

impl AuditView {
    /// The object's key relative to the destination, as the source planned
    /// it (`raw/dataset=…/year=…/FILE`); the destination adds its prefix.
    pub fn object_key(&self) -> String {
        format!(
            "raw/dataset={}/year={}/{}",
            self.dataset, self.year, self.file
        )
    }
}

/// A manifest parsed twice: the view for decisions, the raw value for
/// output (every field, including ones this version does not know).
#[derive(Debug, Clone)]
pub struct ParsedManifest {
    pub view: ManifestView,
    pub raw: serde_json::Value,
}

/// Why a document could not be read as what it should be.
pub fn parse_manifest(bytes: &[u8]) -> Result<ParsedManifest, String> {
    let raw: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_eof() {
            format!("manifest.json is cut off ({e}): half-written or truncated")
        } else {
            format!("manifest.json is not valid JSON ({e}): corrupt")
        }
    })?;
    let view = ManifestView::deserialize(&raw)
        .map_err(|e| format!("manifest.json is JSON but not a run manifest: {e}"))?;
    Ok(ParsedManifest { view, raw })
}

/// Each non-empty line of `file_audits.jsonl`: the audit, or why the line
/// is unreadable (with its 1-based line number).
pub fn parse_audits(bytes: &[u8]) -> Vec<Result<(AuditView, serde_json::Value), String>> {
    String::from_utf8_lossy(bytes)
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let raw: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| format!("file_audits.jsonl line {}: not valid JSON ({e})", i + 1))?;
            let view = AuditView::deserialize(&raw)
                .map_err(|e| format!("file_audits.jsonl line {}: not a file audit ({e})", i + 1))?;
            Ok((view, raw))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_status_and_extra_fields_are_carried_not_rejected() {
        let m = parse_manifest(
            br#"{"run_id":"r1","status":"completed_with_findings","records_total":7,"years":[2024]}"#,
        )
        .unwrap();
        assert_eq!(m.view.status.label(), "completed_with_findings");
        assert_eq!(m.raw["records_total"], 7);
        let m = parse_manifest(br#"{"run_id":"r2","status":"partial"}"#).unwrap();
        assert_eq!(m.view.status, Stated::Known(RunStatus::Partial));
    }

    #[test]
    fn cut_off_and_foreign_documents_say_why() {
        let e = parse_manifest(br#"{"run_id":"r1","sta"#).unwrap_err();
        assert!(e.contains("half-written"), "{e}");
        let e = parse_manifest(b"not json").unwrap_err();
        assert!(e.contains("corrupt"), "{e}");
        let e = parse_manifest(br#"{"hello":1}"#).unwrap_err();
        assert!(e.contains("not a run manifest"), "{e}");
    }

    #[test]
    fn audit_lines_parse_one_by_one() {
        let lines = parse_audits(
            b"{\"file\":\"a.csv\",\"dataset\":\"general-payments\",\"year\":2023,\"key\":\"/l/raw/a.csv\",\"bytes\":3,\"sha256\":\"ab\",\"upload\":\"uploaded\"}\n\n{broken\n",
        );
        assert_eq!(lines.len(), 2);
        let (a, _) = lines[0].as_ref().unwrap();
        assert_eq!(
            a.object_key(),
            "raw/dataset=general-payments/year=2023/a.csv"
        );
        assert_eq!(a.crc64nvme, None, "older audits have no CRC");
        assert!(lines[1].as_ref().unwrap_err().contains("line 3"));
    }
}
