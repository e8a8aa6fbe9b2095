//! `openpay iam drift`: render the repo's policy, read the live role,
//! compare, print. Exit 0 no drift, 1 drift, 2 bad input (template,
//! variables, no role), 3 the role or the credentials cannot be read.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::Globals;
use crate::aws::AwsClients;
use crate::cli::{DriftArgs, TextOrJson};
use crate::exit::{Exit, blocked, usage};
use crate::infra::policy::PolicyDocument;

use super::diff::compare;
use super::live::read_role_policies;
use super::render::Report;
use super::template::{parse_vars, render};

/// The policy terraform attaches to the runner role.
pub const DEFAULT_TEMPLATE: &str = "terraform/policies/runner.json.tftpl";

pub async fn run(g: &Globals, args: DriftArgs) -> anyhow::Result<Exit> {
    let mut vars = parse_vars(&args.vars).map_err(usage)?;
    if !vars.contains_key("bucket")
        && let Some(b) = &g.config.aws.bucket
    {
        vars.insert("bucket".into(), b.clone());
    }
    let template_path = args
        .policy
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_TEMPLATE));
    let repo_doc = desired_policy(&template_path, &vars)?;

    let role = args
        .role
        .clone()
        .or_else(|| g.config.aws.role_name.clone())
        .ok_or_else(|| {
            usage("no role to compare: pass --role NAME or set [aws] role_name in openpay.toml (terraform's outputs.json role_name also works)")
        })?;
    let bucket = vars.get("bucket").cloned().unwrap_or_default();

    let aws = AwsClients::load(&g.config.aws.settings()).await;
    let live = read_role_policies(&aws.iam(), &role)
        .await
        .map_err(|e| blocked(e.to_string()))?;

    let repo_name = format!(
        "repo:{}",
        template_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| template_path.display().to_string())
    );
    let comparison = compare(&[(repo_name, repo_doc)], &live, &[], &bucket);
    let report = Report {
        role,
        template: template_path.display().to_string(),
        variables: vars,
        live: live
            .iter()
            .map(|p| (p.name.clone(), p.kind.clone()))
            .collect(),
        comparison,
    };

    // A closed pipe (`| head`) is not an error of the comparison.
    match write_report(&report, args.format, g.verbose > 0) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(e).context("writing the drift report to stdout");
        }
        _ => {}
    }
    Ok(if report.comparison.has_drift() {
        Exit::Findings
    } else {
        Exit::Success
    })
}

fn write_report(report: &Report, format: TextOrJson, verbose: bool) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match format {
        TextOrJson::Json => report.write_json(&mut stdout),
        TextOrJson::Text => report.write_text(&mut stdout, verbose),
    }
}

/// Reads, renders and parses the repo's policy template. Every failure is
/// bad input (exit 2) naming the file and the fix.
fn desired_policy(
    path: &Path,
    vars: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<PolicyDocument> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        usage(format!(
            "cannot read policy template {shown}: {e}; run from the repository root or pass --policy FILE"
        ))
    })?;
    let rendered = render(&shown, &text, vars).map_err(|e| usage(e.to_string()))?;
    PolicyDocument::parse(&rendered).map_err(|e| {
        usage(format!(
            "policy template {shown} does not render to a valid IAM policy: {e}"
        ))
    })
}
