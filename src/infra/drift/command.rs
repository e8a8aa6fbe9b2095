//! `openpay iam drift`: render the repo's policy, read the live role,
//! compare, print. Exit 0 no drift, 1 drift, 2 bad input (template,
//! variables, no role), 3 the role or the credentials cannot be read.

use std::path::{Path, PathBuf};

use crate::Globals;
use crate::aws::AwsClients;
use crate::cli::{DriftArgs, DriftFormat};
use crate::exit::Exit;
use crate::infra::iam::read_role_policies;
use crate::infra::policy::PolicyDocument;
use crate::output;

use super::DriftError;
use super::diff::compare;
use super::render::Report;
use super::template::{parse_vars, render};

/// The policy terraform attaches to the runner role.
pub const DEFAULT_TEMPLATE: &str = "terraform/policies/runner.json.tftpl";

pub async fn run(g: &Globals, args: DriftArgs) -> anyhow::Result<Exit> {
    let mut vars = parse_vars(&args.vars).map_err(DriftError::Vars)?;
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
        .ok_or(DriftError::NoRole)?;
    let bucket = vars.get("bucket").cloned().unwrap_or_default();

    let aws = AwsClients::load(&g.config.aws.settings()).await;
    let live = read_role_policies(&aws.iam(), &role)
        .await
        .map_err(DriftError::Live)?;

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

    output::write(|out| match args.format {
        DriftFormat::Json => report.write_json(out),
        DriftFormat::Text => report.write_text(out, g.verbose > 0),
        DriftFormat::Sarif => {
            let path = Path::new(&report.template);
            let cwd = std::env::current_dir().unwrap_or_default();
            let uri = crate::sarif::repo_relative(path, &cwd);
            let text = std::fs::read_to_string(path).ok();
            super::sarif::write(&report, text.as_deref(), &uri, out)
        }
    })?;
    Ok(if report.comparison.has_drift() {
        Exit::Findings
    } else {
        Exit::Success
    })
}

/// Reads, renders and parses the repo's policy template. Every failure is
/// bad input (exit 2) naming the file and the fix.
fn desired_policy(
    path: &Path,
    vars: &std::collections::BTreeMap<String, String>,
) -> Result<PolicyDocument, DriftError> {
    let text = std::fs::read_to_string(path).map_err(|source| DriftError::ReadTemplate {
        path: path.to_path_buf(),
        source,
    })?;
    let rendered = render(&path.display().to_string(), &text, vars)?;
    PolicyDocument::parse(&rendered).map_err(|source| DriftError::InvalidPolicy {
        path: path.to_path_buf(),
        source,
    })
}
