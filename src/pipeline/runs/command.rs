//! `openpay runs list|show` and `openpay verify`: resolve the destination
//! as `run` does, read, render, and map onto the exit codes.

use super::error::RunsError;
use super::reader::{self, EntryKind, RunEntry};
use super::record::{parse_audits, parse_manifest};
use super::render;
use super::verify::{self, VerifyReport};
use crate::Globals;
use crate::cli::{
    RecordsDest, RunsAction, RunsArgs, RunsListArgs, RunsShowArgs, TableOrJson, VerifyArgs,
};
use crate::exit::Exit;
use crate::output::{self, OutputError};
use crate::pipeline::command::{check_run_id, dest_spec, open_destination};
use crate::pipeline::manifest::run_dir_key;
use crate::pipeline::store::Destination;

async fn destination(g: &Globals, d: &RecordsDest) -> anyhow::Result<Destination> {
    let spec = dest_spec(g, d.dest.as_deref())?;
    Ok(open_destination(g, spec).await.0)
}

fn out(text: &str) -> Result<(), OutputError> {
    output::line(text)
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).expect("serialises")
}

pub async fn runs(g: &Globals, args: RunsArgs) -> anyhow::Result<Exit> {
    match args.action {
        RunsAction::List(a) => list(g, a).await,
        RunsAction::Show(a) => show(g, a).await,
    }
}

fn keep(e: &RunEntry, a: &RunsListArgs) -> bool {
    if let Some(s) = a.status
        && render::entry_status(e) != s.label()
    {
        return false;
    }
    match &e.kind {
        EntryKind::Run(m) => {
            a.year.is_none_or(|y| m.view.years.contains(&y))
                && a.dataset
                    .is_none_or(|d| m.view.datasets.iter().any(|x| x == d.as_str()))
        }
        // Its years and datasets are unknown: a damaged entry is shown
        // under every year/dataset filter rather than hidden by one.
        EntryKind::Unreadable { .. } => true,
        EntryKind::Foreign { .. } => a.year.is_none() && a.dataset.is_none(),
    }
}

async fn list(g: &Globals, a: RunsListArgs) -> anyhow::Result<Exit> {
    let dest = destination(g, &a.dest).await?;
    let mut entries: Vec<RunEntry> = reader::list(&dest)
        .await?
        .into_iter()
        .filter(|e| keep(e, &a))
        .collect();
    if let Some(n) = a.limit {
        entries.truncate(n);
    }
    match a.dest.format {
        TableOrJson::Json => out(&json(&render::list_json(&entries)))?,
        TableOrJson::Table => out(&render::list_table(&entries, &dest.describe()))?,
    }
    Ok(Exit::Success)
}

fn not_found(run_id: &str, dest: &Destination) -> anyhow::Error {
    RunsError::NotFound {
        run_id: run_id.to_string(),
        dest: dest.describe(),
    }
    .into()
}

async fn show(g: &Globals, a: RunsShowArgs) -> anyhow::Result<Exit> {
    check_run_id(&a.run_id)?;
    let dest = destination(g, &a.dest).await?;
    let location = dest.locate(&format!("{}/", run_dir_key(&a.run_id)));
    let manifest = reader::document(&dest, &a.run_id, "manifest.json").await?;
    let audits = reader::document(&dest, &a.run_id, "file_audits.jsonl").await?;
    let Some(manifest) = manifest else {
        if audits.is_some() {
            return Err(RunsError::ManifestMissing {
                run_id: a.run_id,
                location,
            }
            .into());
        }
        return Err(not_found(&a.run_id, &dest));
    };
    let manifest = parse_manifest(&manifest).map_err(|reason| RunsError::ManifestUnreadable {
        run_id: a.run_id.clone(),
        reason,
    })?;
    let (mut lines, mut errors) = (Vec::new(), Vec::new());
    for l in parse_audits(&audits.unwrap_or_default()) {
        match l {
            Ok((_, raw)) => lines.push(raw),
            Err(e) => errors.push(e),
        }
    }
    match a.dest.format {
        TableOrJson::Json => out(&json(&render::show_json(
            &location, &manifest, &lines, &errors,
        )))?,
        TableOrJson::Table => out(&render::show_table(&location, &manifest, &lines, &errors))?,
    }
    Ok(if errors.is_empty() {
        Exit::Success
    } else {
        Exit::Findings
    })
}

pub async fn verify(g: &Globals, a: VerifyArgs) -> anyhow::Result<Exit> {
    if let Some(id) = &a.run_id {
        check_run_id(id)?;
    }
    let dest = destination(g, &a.dest).await?;
    let run_id = match a.run_id {
        Some(id) => id,
        None => reader::list(&dest)
            .await?
            .into_iter()
            .find_map(|e| match e.kind {
                EntryKind::Run(m) => Some(m.view.run_id),
                _ => None,
            })
            .ok_or_else(|| RunsError::NoReadableRun {
                dest: dest.describe(),
            })?,
    };
    let Some(manifest) = reader::document(&dest, &run_id, "manifest.json").await? else {
        return Err(not_found(&run_id, &dest));
    };
    let manifest = parse_manifest(&manifest).map_err(|reason| RunsError::ManifestUnreadable {
        run_id: run_id.clone(),
        reason,
    })?;
    let audits = match (
        reader::document(&dest, &run_id, "file_audits.jsonl").await?,
        manifest.view.files_planned,
    ) {
        (Some(bytes), _) => bytes,
        (None, 0) => Vec::new(),
        (None, planned) => {
            return Err(RunsError::AuditsMissing {
                run_id,
                planned,
                dest: dest.describe(),
            }
            .into());
        }
    };
    let (mut views, mut errors) = (Vec::new(), Vec::new());
    for l in parse_audits(&audits) {
        match l {
            Ok((v, _)) => views.push(v),
            Err(e) => errors.push(e),
        }
    }
    let checks = verify::check_all(&dest, &views).await?;
    let report = VerifyReport::new(run_id, dest.describe(), checks, errors);
    match a.dest.format {
        TableOrJson::Json => out(&json(&report))?,
        TableOrJson::Table => out(&render::verify_table(&report))?,
    }
    Ok(if report.holds {
        Exit::Success
    } else {
        Exit::Findings
    })
}
