//! `openpay run`: resolve settings (flags > env > file > defaults), then
//! plan, and either print the plan (`--dry-run`) or execute it.

use std::io::IsTerminal;
use std::path::PathBuf;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use super::PipelineError;
use super::manifest::RunStatus;
use super::preflight::human;
use super::retry::RetryPolicy;
use super::run::{self, PlanRow, RunReport, RunSettings};
use super::source::{Source, check_year};
use super::store::{Destination, LocalStore, S3Store};
use super::summary::{self, Summary};
use crate::Globals;
use crate::aws::AwsClients;
use crate::cli::{Dataset, LogFormat, RunArgs, TableOrJson};
use crate::config::JOBS;
use crate::exit::Exit;
use crate::output::{self, OutputError};

/// The destination the user asked for, before any client is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestSpec {
    S3 { bucket: String, prefix: String },
    Local(PathBuf),
}

pub fn parse_dest(spec: &str) -> Result<DestSpec, PipelineError> {
    let Some(rest) = spec.strip_prefix("s3://") else {
        if spec.trim().is_empty() {
            return Err(PipelineError::Input(
                "--dest is empty; give s3://BUCKET[/PREFIX] or a directory".into(),
            ));
        }
        return Ok(DestSpec::Local(PathBuf::from(spec)));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !valid {
        return Err(PipelineError::Input(format!(
            "--dest {spec}: {} is not a valid S3 bucket name; use s3://BUCKET[/PREFIX] with a 3–63 character lowercase bucket name",
            if bucket.is_empty() {
                "an empty name".to_string()
            } else {
                format!("{bucket:?}")
            }
        )));
    }
    Ok(DestSpec::S3 {
        bucket: bucket.to_string(),
        prefix: prefix.trim_matches('/').to_string(),
    })
}

/// `--dest` as `run` resolves it: the flag, else the configured bucket,
/// else `./lake`.
pub fn dest_spec(g: &Globals, dest: Option<&str>) -> Result<DestSpec, PipelineError> {
    match (dest, &g.config.aws.bucket) {
        (Some(d), _) => parse_dest(d),
        (None, Some(b)) => parse_dest(&format!("s3://{b}")),
        (None, None) => Ok(DestSpec::Local(PathBuf::from("lake"))),
    }
}

/// The store behind a destination; S3 loads the AWS chain (no request yet).
pub async fn open_destination(g: &Globals, spec: DestSpec) -> (Destination, Option<AwsClients>) {
    match spec {
        DestSpec::Local(p) => {
            let root = std::path::absolute(&p).unwrap_or(p);
            (Destination::Local(LocalStore::new(root)), None)
        }
        DestSpec::S3 { bucket, prefix } => {
            let aws = AwsClients::load(&g.config.aws.settings()).await;
            (
                Destination::S3(S3Store::new(&aws, &bucket, &prefix)),
                Some(aws),
            )
        }
    }
}

pub fn check_run_id(id: &str) -> Result<(), PipelineError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(PipelineError::Input(format!(
            "--run-id {id:?}: use 1–64 characters of letters, digits, '-', '_' or '.' (it becomes part of a path)"
        )))
    }
}

async fn settings(g: &Globals, args: RunArgs) -> Result<RunSettings, PipelineError> {
    for &y in &args.years {
        check_year(y)?;
    }
    let mut years = args.years.clone();
    years.sort_unstable();
    years.dedup();
    let mut datasets = if args.datasets.is_empty() {
        vec![Dataset::GeneralPayments]
    } else {
        args.datasets.clone()
    };
    datasets.sort_unstable();
    datasets.dedup();
    // The configured value is checked where it is read (file, env).
    if let Some(jobs) = args.jobs.filter(|j| !JOBS.contains(j)) {
        return Err(PipelineError::Input(format!(
            "--jobs {jobs}: use a number from {} to {}",
            JOBS.start(),
            JOBS.end()
        )));
    }
    let jobs = args.jobs.unwrap_or(g.config.pipeline.jobs);
    if let Some(id) = &args.run_id {
        check_run_id(id)?;
    }
    let run_id = args.run_id.clone();
    let dest_spec = dest_spec(g, args.dest.as_deref())?;
    let source_url = args
        .source_url
        .clone()
        .unwrap_or_else(|| g.config.pipeline.source_url.clone());
    let source = Source::parse(&source_url)?;
    let mut config = g.config.clone();
    if let DestSpec::S3 { bucket, .. } = &dest_spec {
        // The gate checks the bucket this run writes, whatever the config says.
        config.aws.bucket = Some(bucket.clone());
    }
    let (destination, aws) = open_destination(g, dest_spec).await;
    Ok(RunSettings {
        years,
        datasets,
        source,
        destination,
        work_dir: args
            .work_dir
            .clone()
            .unwrap_or_else(|| g.config.pipeline.work_dir.clone()),
        jobs,
        overwrite: args.overwrite,
        no_upload: args.no_upload,
        skip_preflight: args.skip_preflight,
        run_id,
        progress_bars: std::io::stderr().is_terminal() && g.log_format == LogFormat::Text,
        retry: RetryPolicy::default(),
        datastore_timeout: std::time::Duration::from_secs(g.config.pipeline.datastore_timeout_secs),
        config: std::sync::Arc::new(config),
        aws,
    })
}

pub async fn run(g: &Globals, args: RunArgs) -> anyhow::Result<Exit> {
    let (dry_run, format) = (args.dry_run, args.format);
    let summary_path = args.summary_json.clone();
    if let Some(p) = &summary_path {
        summary::check_path(p)?;
    }
    let s = settings(g, args).await?;
    let rows = run::plan(&s).await?;
    if dry_run {
        match format {
            TableOrJson::Table => print_plan(&s, &rows)?,
            TableOrJson::Json => print_plan_json(&rows)?,
        }
        return Ok(Exit::Success);
    }
    tracing::info!(files = rows.len(), source = %s.source.describe(), destination = %s.destination.describe(), "run starting");
    let report = run::execute(&s, rows).await?;
    let mut exit = finish(g, &report, format)?;
    let summary = Summary::new(&report, &s.destination, exit);
    if let Some(p) = &summary_path
        && let Err(e) = summary.write(p)
    {
        eprintln!("error: cannot write --summary-json {}: {e}", p.display());
        exit = exit.max(Exit::Findings);
    }
    if format == TableOrJson::Json {
        let json = Summary {
            exit_code: exit.code(),
            ..summary
        }
        .to_json();
        output::write(|out| out.write_all(&json))?;
    }
    Ok(exit)
}

/// The plan as JSON: one object per file.
fn print_plan_json(rows: &[PlanRow]) -> Result<(), OutputError> {
    let plan: Vec<_> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "dataset": r.file.dataset,
                "year": r.file.year,
                "file": r.file.file_name,
                "refused": r.file.location.as_ref().err(),
                "size": r.size,
                "records_expected": r.expected.as_ref().ok().map(|p| p.count),
                "records_expected_reason": r.expected.as_ref().err(),
                "url": r.file.url,
                "destination": r.target,
            })
        })
        .collect();
    output::line(serde_json::to_string_pretty(&plan).expect("plan serialises"))
}

fn print_plan(s: &RunSettings, rows: &[PlanRow]) -> Result<(), OutputError> {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED).set_header([
        "dataset",
        "year",
        "file",
        "size",
        "records expected",
        "url",
        "destination",
    ]);
    for r in rows {
        t.add_row([
            r.file.dataset.to_string(),
            r.file.year.to_string(),
            match &r.file.location {
                Ok(_) => r.file.file_name.clone(),
                Err(e) => format!("REFUSED: {e}"),
            },
            r.size.map(human).unwrap_or_else(|| "unknown".into()),
            match &r.expected {
                Ok(p) => p.count.to_string(),
                Err(reason) => format!("unknown ({reason})"),
            },
            r.file.url.clone(),
            r.target.clone(),
        ]);
    }
    output::line(t)?;
    output::line(format_args!(
        "dry run: {} file(s) from {} to {}; nothing was written",
        rows.len(),
        s.source.describe(),
        s.destination.describe()
    ))
}

/// Reports the end of a run (stderr for problems; stdout for the table
/// unless the summary goes there) and returns the exit code.
fn finish(g: &Globals, r: &RunReport, format: TableOrJson) -> Result<Exit, OutputError> {
    let m = &r.manifest;
    if m.status == RunStatus::Blocked {
        for reason in &m.preflight.reasons {
            eprintln!("preflight: {reason}");
        }
        eprintln!(
            "run {} blocked by preflight; manifest: {}",
            m.run_id,
            r.manifest_dir.join("manifest.json").display()
        );
        return Ok(Exit::Blocked);
    }
    if let Some(e) = &r.publish_error {
        eprintln!("error: the run's manifest could not be copied to the destination: {e}");
    }
    let exit = if r.publish_error.is_none() && m.status == RunStatus::Completed {
        Exit::Success
    } else {
        Exit::Findings
    };
    if format == TableOrJson::Json {
        return Ok(exit);
    }
    if g.log_format == LogFormat::Text {
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED).set_header([
            "file", "download", "upload", "bytes", "records", "sha256", "seconds", "note",
        ]);
        for a in &r.audits {
            t.add_row([
                a.file.clone(),
                run::label(&a.download),
                run::label(&a.upload),
                a.bytes.map(human).unwrap_or_default(),
                records_cell(a),
                a.sha256
                    .as_deref()
                    .map(|s| s[..12.min(s.len())].to_string())
                    .unwrap_or_default(),
                format!("{:.1}", a.duration_ms as f64 / 1000.0),
                a.error.clone().unwrap_or_default(),
            ]);
        }
        output::line(t)?;
    }
    output::line(format_args!(
        "run {} {}: {} planned, {} downloaded, {} verified locally, {} uploaded, {} already there, {} failed, {} records{}; manifest {}",
        m.run_id,
        run::label(&m.status),
        m.files_planned,
        m.files_downloaded,
        m.files_skipped,
        m.files_uploaded,
        m.files_upload_skipped,
        m.files_failed,
        m.records_total,
        match m.records_expected_total {
            Some(n) => format!(" (publisher: {n})"),
            None => String::new(),
        },
        r.manifest_dir.join("manifest.json").display()
    ))?;
    for f in &m.findings {
        eprintln!(
            "finding: {}: {}: {}",
            f.file,
            run::label(&f.kind),
            f.message
        );
    }
    Ok(exit)
}

/// `1234` or `1234 of 1235` when the publisher's count differs.
fn records_cell(a: &super::manifest::FileAudit) -> String {
    match (a.records.records, a.records.records_expected) {
        (Some(got), Some(want)) if got != want => format!("{got} of {want}"),
        (Some(got), _) => got.to_string(),
        (None, _) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dest_specs() {
        assert_eq!(
            parse_dest("s3://my-bucket/pre/fix/").unwrap(),
            DestSpec::S3 {
                bucket: "my-bucket".into(),
                prefix: "pre/fix".into()
            }
        );
        assert_eq!(
            parse_dest("./lake").unwrap(),
            DestSpec::Local(PathBuf::from("./lake"))
        );
        for bad in ["s3://", "s3:///x", "s3://UPPER", "s3://a", "s3://-bad"] {
            assert!(parse_dest(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn run_ids() {
        assert!(check_run_id("2026-11-25T10-00-00Z").is_ok());
        assert!(check_run_id("../x").is_err());
        assert!(check_run_id("").is_err());
    }
}
