//! Lists and fetches the run records of a destination (a local lake or a
//! bucket), the same layout in both: `metadata/runs/run_id={id}/…`.

use std::collections::BTreeMap;

use aws_sdk_s3::error::ProvideErrorMetadata;
use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::record::{ParsedManifest, parse_manifest};
use crate::pipeline::manifest::run_dir_key;
use crate::pipeline::store::{Destination, LocalStore, S3Store, StoreError};

const RUNS: &str = "metadata/runs/";
const DIR_PREFIX: &str = "run_id=";

/// One entry under `metadata/runs/`.
#[derive(Debug, Clone)]
pub struct RunEntry {
    /// The entry's directory (or file) in the destination.
    pub location: String,
    /// When the store last changed it: orders entries without a manifest.
    pub modified: Option<DateTime<Utc>>,
    pub kind: EntryKind,
}

#[derive(Debug, Clone)]
pub enum EntryKind {
    Run(Box<ParsedManifest>),
    /// A `run_id=…/` directory whose manifest is missing, cut off or not a
    /// manifest.
    Unreadable {
        run_id: String,
        reason: String,
    },
    /// Something else: not a `run_id=…/` directory.
    Foreign {
        reason: String,
    },
}

impl RunEntry {
    /// Newest first: the manifest's start, else the store's time.
    pub fn when(&self) -> Option<DateTime<Utc>> {
        match &self.kind {
            EntryKind::Run(m) => m.view.started_at.or(self.modified),
            _ => self.modified,
        }
    }

    pub fn run_id(&self) -> Option<&str> {
        match &self.kind {
            EntryKind::Run(m) => Some(&m.view.run_id),
            EntryKind::Unreadable { run_id, .. } => Some(run_id),
            EntryKind::Foreign { .. } => None,
        }
    }
}

/// A run directory's entry from its manifest bytes (`None`: no manifest).
fn entry_of(
    run_id: &str,
    location: String,
    modified: Option<DateTime<Utc>>,
    manifest: Option<Vec<u8>>,
) -> RunEntry {
    let kind = match manifest.map(|b| parse_manifest(&b)) {
        None => EntryKind::Unreadable {
            run_id: run_id.into(),
            reason: "no manifest.json: the run was cut off before its first write, or the copy to the destination failed".into(),
        },
        Some(Err(reason)) => EntryKind::Unreadable {
            run_id: run_id.into(),
            reason,
        },
        Some(Ok(m)) if m.view.run_id != run_id => EntryKind::Unreadable {
            run_id: run_id.into(),
            reason: format!(
                "manifest.json names run {:?} but lives under {DIR_PREFIX}{run_id}",
                m.view.run_id
            ),
        },
        Some(Ok(m)) => EntryKind::Run(Box::new(m)),
    };
    RunEntry {
        location,
        modified,
        kind,
    }
}

fn foreign(location: String, modified: Option<DateTime<Utc>>, what: &str) -> RunEntry {
    RunEntry {
        location,
        modified,
        kind: EntryKind::Foreign {
            reason: format!(
                "{what} under {RUNS} that is not a run ({RUNS}{DIR_PREFIX}ID/); not written by openpay"
            ),
        },
    }
}

/// Every entry under `metadata/runs/`, newest first. Only a failure to
/// list (or fetch) at all is an error; a damaged entry is an entry.
pub async fn list(dest: &Destination) -> Result<Vec<RunEntry>, StoreError> {
    let mut entries = match dest {
        Destination::Local(l) => list_local(l).await?,
        Destination::S3(s) => list_s3(s).await?,
    };
    entries.sort_by(|a, b| {
        b.when()
            .cmp(&a.when())
            .then_with(|| b.location.cmp(&a.location))
    });
    Ok(entries)
}

/// A document of one run (`manifest.json`, `file_audits.jsonl`); `None`
/// when absent.
pub async fn document(
    dest: &Destination,
    run_id: &str,
    name: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let key = format!("{}/{name}", run_dir_key(run_id));
    match dest {
        Destination::Local(l) => read_local(&l.path_of(&key)),
        Destination::S3(s) => get_s3(s, &key).await,
    }
}

fn io_err(op: &'static str, p: &std::path::Path, e: std::io::Error) -> StoreError {
    StoreError::Other {
        operation: op,
        location: p.display().to_string(),
        message: e.to_string(),
    }
}

fn read_local(p: &std::path::Path) -> Result<Option<Vec<u8>>, StoreError> {
    match std::fs::read(p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", p, e)),
    }
}

async fn list_local(l: &LocalStore) -> Result<Vec<RunEntry>, StoreError> {
    let dir = l.path_of(RUNS);
    let read = match std::fs::read_dir(&dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", &dir, e)),
    };
    let mut out = Vec::new();
    for item in read {
        let item = item.map_err(|e| io_err("list", &dir, e))?;
        let name = item.file_name().to_string_lossy().to_string();
        // Hidden names are the temp files of atomic writes (and editors').
        if name.starts_with('.') {
            continue;
        }
        let path = item.path();
        let meta = item.metadata().map_err(|e| io_err("stat", &path, e))?;
        let modified = meta.modified().ok().map(DateTime::<Utc>::from);
        let location = path.display().to_string();
        match name.strip_prefix(DIR_PREFIX) {
            Some(id) if meta.is_dir() => {
                let manifest = read_local(&path.join("manifest.json"))?;
                out.push(entry_of(id, location, modified, manifest));
            }
            _ => out.push(foreign(
                location,
                modified,
                if meta.is_dir() {
                    "a directory"
                } else {
                    "a file"
                },
            )),
        }
    }
    Ok(out)
}

fn s3_err<E: ProvideErrorMetadata>(
    s: &S3Store,
    op: &'static str,
    key: &str,
    status: Option<u16>,
    e: &E,
) -> StoreError {
    let location = format!("s3://{}/{}", s.bucket(), s.full_key(key));
    if status == Some(403) || e.code() == Some("AccessDenied") {
        let (action, resource) = if op == "ListObjectsV2" {
            ("s3:ListBucket", format!("arn:aws:s3:::{}", s.bucket()))
        } else {
            (
                "s3:GetObject",
                format!("arn:aws:s3:::{}/{}*", s.bucket(), s.full_key(RUNS)),
            )
        };
        return StoreError::AccessDenied {
            operation: op,
            location,
            permission: format!("{action} on {resource}"),
        };
    }
    StoreError::Other {
        operation: op,
        location,
        message: match (e.code(), e.message()) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.to_string(),
            _ => format!(
                "HTTP {}",
                status.map(|s| s.to_string()).unwrap_or("error".into())
            ),
        },
    }
}

async fn get_s3(s: &S3Store, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let (client, _) = s.parts();
    match client
        .get_object()
        .bucket(s.bucket())
        .key(s.full_key(key))
        .send()
        .await
    {
        Ok(out) => out
            .body
            .collect()
            .await
            .map(|b| Some(b.into_bytes().to_vec()))
            .map_err(|e| StoreError::Other {
                operation: "GetObject",
                location: format!("s3://{}/{}", s.bucket(), s.full_key(key)),
                message: e.to_string(),
            }),
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            if status == Some(404) || e.code() == Some("NoSuchKey") {
                return Ok(None);
            }
            Err(s3_err(s, "GetObject", key, status, &e))
        }
    }
}

/// What a listing found under one `run_id=…/` directory.
#[derive(Default)]
struct Listed {
    has_manifest: bool,
    modified: Option<DateTime<Utc>>,
}

async fn list_s3(s: &S3Store) -> Result<Vec<RunEntry>, StoreError> {
    let (client, prefix) = s.parts();
    let base = format!("{prefix}{RUNS}");
    let mut runs: BTreeMap<String, Listed> = BTreeMap::new();
    let mut out = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(s.bucket())
        .prefix(&base)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            let status = e.raw_response().map(|r| r.status().as_u16());
            s3_err(s, "ListObjectsV2", RUNS, status, &e)
        })?;
        for obj in page.contents() {
            let Some(rest) = obj.key().and_then(|k| k.strip_prefix(&base)) else {
                continue;
            };
            let modified = obj
                .last_modified()
                .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()));
            let location = format!("s3://{}/{base}{rest}", s.bucket());
            match rest.split_once('/') {
                Some((dir, file)) if dir.starts_with(DIR_PREFIX) => {
                    let l = runs.entry(dir.to_string()).or_default();
                    l.has_manifest |= file == "manifest.json";
                    l.modified = l.modified.max(modified);
                }
                _ => out.push(foreign(location, modified, "an object")),
            }
        }
    }
    let base = &base;
    let fetched: Vec<Result<RunEntry, StoreError>> = futures::stream::iter(runs)
        .map(|(dir, listed)| async move {
            let id = dir.strip_prefix(DIR_PREFIX).unwrap_or(&dir).to_string();
            let manifest = if listed.has_manifest {
                get_s3(s, &format!("{RUNS}{dir}/manifest.json")).await?
            } else {
                None
            };
            let location = format!("s3://{}/{base}{dir}/", s.bucket());
            Ok(entry_of(&id, location, listed.modified, manifest))
        })
        .buffered(8)
        .collect()
        .await;
    for e in fetched {
        out.push(e?);
    }
    Ok(out)
}
