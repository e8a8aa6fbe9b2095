//! Tables for people, JSON for machines, over the same entries.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use super::reader::{EntryKind, RunEntry};
use super::record::ParsedManifest;
use super::verify::VerifyReport;
use crate::pipeline::preflight::human;

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// The entry's label: the run's status, or `unreadable` / `foreign`.
pub fn entry_status(e: &RunEntry) -> String {
    match &e.kind {
        EntryKind::Run(m) => m.view.status.label(),
        EntryKind::Unreadable { .. } => "unreadable".into(),
        EntryKind::Foreign { .. } => "foreign".into(),
    }
}

pub fn list_json(entries: &[RunEntry]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|e| match &e.kind {
                EntryKind::Run(m) => json!({
                    "entry": "run",
                    "run_id": m.view.run_id,
                    "status": m.view.status.label(),
                    "location": e.location,
                    "manifest": m.raw,
                }),
                EntryKind::Unreadable { run_id, reason } => json!({
                    "entry": "unreadable",
                    "run_id": run_id,
                    "status": "unreadable",
                    "location": e.location,
                    "error": reason,
                }),
                EntryKind::Foreign { reason } => json!({
                    "entry": "foreign",
                    "status": "foreign",
                    "location": e.location,
                    "error": reason,
                }),
            })
            .collect(),
    )
}

pub fn list_table(entries: &[RunEntry], dest: &str) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED).set_header([
        "run id", "status", "datasets", "years", "files", "uploaded", "failed", "bytes", "started",
        "finished",
    ]);
    let mut damaged = Vec::new();
    for e in entries {
        match &e.kind {
            EntryKind::Run(m) => {
                let v = &m.view;
                t.add_row([
                    v.run_id.clone(),
                    v.status.label(),
                    v.datasets.join(","),
                    v.years
                        .iter()
                        .map(i32::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                    v.files_planned.to_string(),
                    v.files_uploaded.to_string(),
                    v.files_failed.to_string(),
                    human(v.bytes_downloaded),
                    time(v.started_at),
                    time(v.finished_at),
                ]);
            }
            EntryKind::Unreadable { run_id, reason } => {
                t.add_row([run_id.clone(), "UNREADABLE".into()]);
                damaged.push(format!("{}: {reason}", e.location));
            }
            EntryKind::Foreign { reason } => {
                damaged.push(format!("{}: {reason}", e.location));
            }
        }
    }
    let runs = entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Run(_)))
        .count();
    let mut out = format!("{t}\n{runs} run(s) in {dest}");
    if !damaged.is_empty() {
        out.push_str(&format!(
            "; {} entr{} could not be read as runs:",
            damaged.len(),
            if damaged.len() == 1 { "y" } else { "ies" }
        ));
        for d in damaged {
            out.push_str(&format!("\n  {d}"));
        }
    }
    out
}

pub fn show_json(
    location: &str,
    manifest: &ParsedManifest,
    audits: &[Value],
    audit_errors: &[String],
) -> Value {
    json!({
        "run_id": manifest.view.run_id,
        "location": location,
        "manifest": manifest.raw,
        "audits": audits,
        "audit_errors": audit_errors,
    })
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub fn show_table(
    location: &str,
    manifest: &ParsedManifest,
    audits: &[Value],
    audit_errors: &[String],
) -> String {
    let mut head = Table::new();
    head.load_style(UTF8_FULL_CONDENSED);
    head.add_row(["location".to_string(), location.to_string()]);
    if let Value::Object(fields) = &manifest.raw {
        for (k, v) in fields {
            head.add_row([k.clone(), scalar(v)]);
        }
    }
    let mut files = Table::new();
    files.load_style(UTF8_FULL_CONDENSED).set_header([
        "file", "year", "download", "upload", "bytes", "sha256", "note",
    ]);
    for a in audits {
        files.add_row([
            scalar(&a["file"]),
            scalar(&a["year"]),
            scalar(&a["download"]),
            scalar(&a["upload"]),
            a["bytes"].as_u64().map(human).unwrap_or_default(),
            scalar(&a["sha256"]).chars().take(12).collect(),
            scalar(&a["error"]),
        ]);
    }
    let mut out = format!("{head}\n{files}");
    for e in audit_errors {
        out.push_str(&format!("\nunreadable audit: {e}"));
    }
    out
}

pub fn verify_table(r: &VerifyReport) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_header(["file", "outcome", "expected", "found", "detail"]);
    for o in &r.objects {
        t.add_row([
            o.file.clone(),
            crate::pipeline::run::label(&o.outcome),
            o.expected_bytes.map(|b| b.to_string()).unwrap_or_default(),
            o.found_bytes.map(|b| b.to_string()).unwrap_or_default(),
            o.detail.clone().unwrap_or_default(),
        ]);
    }
    let mut out = format!("{t}");
    for e in &r.audit_errors {
        out.push_str(&format!("\nunreadable audit: {e}"));
    }
    out.push_str(&format!(
        "\nrun {} in {}: {} object(s) checked, {}",
        r.run_id,
        r.destination,
        r.objects_checked,
        if r.holds {
            "all hold (exit 0)".to_string()
        } else {
            format!("{} diverge (exit 1)", r.divergences)
        }
    ));
    out
}
