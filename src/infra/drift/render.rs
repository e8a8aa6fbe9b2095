//! The two views of a drift result: a readable diff and a versioned JSON
//! document for CI artifacts. Both are built from the same [`Report`].
//!
//! JSON schema (`schema_version` 1; fields are only ever added):
//! ```text
//! {
//!   "schema_version": 1,
//!   "role": "openpay-runner",
//!   "drift": true,                      // exit code 1 when true
//!   "summary": {"added": 1, "removed": 0, "cosmetic": 0, "undeclared_managed_policies": 0},
//!   "repo": {"template": "terraform/policies/runner.json.tftpl", "variables": {"bucket": "..."}},
//!   "live": [{"name": "inline:runner", "kind": "inline", "policy_name": "runner"},
//!            {"name": "managed:arn:...", "kind": "managed", "policy_arn": "arn:...", "default_version": "v1"}],
//!   "differences": [{
//!     "class": "added|removed|cosmetic", "side": "live|repo",
//!     "policy": "inline:runner", "sid": "S1" | null, "statement": 0,
//!     "effect": "Allow|Deny",
//!     "action": {"Action": ["s3:DeleteObject"]} | {"NotAction": [...]},
//!     "resource": {"Resource": ["arn:..."]} | {"NotResource": [...]},
//!     "condition": {...} | null,
//!     "reason": "the live role grants this and the repo does not",
//!     "impact": [{"kind": "needed|sensitive", "action": "s3:DeleteObject", "resource": "arn:...",
//!                 "without": "implicitDeny", "with": "allowed"}]
//!   }],
//!   "undeclared_managed_policies": ["arn:aws:iam::aws:policy/AdministratorAccess"],
//!   "probes": [{"kind": "needed", "action": "s3:PutObject", "resource": "arn:...",
//!               "repo": "allowed", "live": "implicitDeny"}]
//! }
//! ```

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;
use serde_json::Value;

use super::diff::{Class, Comparison, Difference, ProbeResult, Side};
use crate::infra::iam::LiveKind;

/// The version of the JSON document above.
pub const SCHEMA_VERSION: u32 = 1;

/// A finished drift comparison and what it was made from.
#[derive(Debug, Clone)]
pub struct Report {
    pub role: String,
    pub template: String,
    pub variables: BTreeMap<String, String>,
    pub live: Vec<(String, LiveKind)>,
    pub comparison: Comparison,
}

/// The JSON document, with fields in the documented order (a struct, not a
/// `serde_json::Value`, whose map would sort them).
#[derive(Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    role: &'a str,
    drift: bool,
    summary: JsonSummary,
    repo: JsonRepo<'a>,
    live: Vec<JsonLive<'a>>,
    differences: &'a [Difference],
    undeclared_managed_policies: &'a [String],
    probes: &'a [ProbeResult],
}

#[derive(Serialize)]
struct JsonSummary {
    added: usize,
    removed: usize,
    cosmetic: usize,
    undeclared_managed_policies: usize,
}

#[derive(Serialize)]
struct JsonRepo<'a> {
    template: &'a str,
    variables: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct JsonLive<'a> {
    name: &'a str,
    #[serde(flatten)]
    kind: &'a LiveKind,
}

impl Report {
    /// Writes the JSON document (schema above) and a final newline.
    pub fn write_json(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let c = &self.comparison;
        let doc = JsonReport {
            schema_version: SCHEMA_VERSION,
            role: &self.role,
            drift: c.has_drift(),
            summary: JsonSummary {
                added: c.count(Class::Added),
                removed: c.count(Class::Removed),
                cosmetic: c.count(Class::Cosmetic),
                undeclared_managed_policies: c.undeclared_managed_policies.len(),
            },
            repo: JsonRepo {
                template: &self.template,
                variables: &self.variables,
            },
            live: self
                .live
                .iter()
                .map(|(name, kind)| JsonLive { name, kind })
                .collect(),
            differences: &c.differences,
            undeclared_managed_policies: &c.undeclared_managed_policies,
            probes: &c.probes,
        };
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)
    }

    /// The readable diff. `verbose` adds cosmetic differences and the
    /// probe table.
    pub fn write_text(&self, out: &mut dyn Write, verbose: bool) -> std::io::Result<()> {
        let c = &self.comparison;
        let cosmetic = c.count(Class::Cosmetic);
        if c.has_drift() {
            writeln!(
                out,
                "IAM drift for role {}: DRIFT ({} added, {} removed, {} undeclared managed policies)",
                self.role,
                c.count(Class::Added),
                c.count(Class::Removed),
                c.undeclared_managed_policies.len()
            )?;
        } else if cosmetic > 0 && !verbose {
            writeln!(
                out,
                "IAM drift for role {}: no drift ({cosmetic} cosmetic differences; -v lists them)",
                self.role
            )?;
        } else {
            writeln!(out, "IAM drift for role {}: no drift", self.role)?;
        }
        let vars: Vec<String> = self
            .variables
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(out, "repo: {} ({})", self.template, vars.join(", "))?;
        let live: Vec<&str> = self.live.iter().map(|(n, _)| n.as_str()).collect();
        writeln!(
            out,
            "live: {}",
            if live.is_empty() {
                "(no policies)".to_string()
            } else {
                live.join(", ")
            }
        )?;
        for arn in &c.undeclared_managed_policies {
            writeln!(
                out,
                "! attached managed policy {arn} is not declared in the repo"
            )?;
        }
        for d in &c.differences {
            if d.class == Class::Cosmetic && !verbose {
                continue;
            }
            write_difference(out, d)?;
        }
        if verbose {
            writeln!(out, "probes (repo -> live):")?;
            for p in &c.probes {
                let mark = if p.repo == p.live { " " } else { "*" };
                writeln!(
                    out,
                    " {mark} {:<9} {} on {}: {} -> {}",
                    format!("{:?}", p.probe.kind).to_lowercase(),
                    p.probe.action,
                    p.probe.resource,
                    p.repo,
                    p.live
                )?;
            }
        }
        Ok(())
    }
}

/// An `Action`/`Resource` value as a readable list (`everything except
/// [...]` for the `Not` forms).
pub(super) fn list(v: &Value) -> String {
    let Some((key, val)) = v.as_object().and_then(|o| o.iter().next()) else {
        return String::new();
    };
    let items: Vec<String> = match val {
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().unwrap_or_default().to_string())
            .collect(),
        other => vec![other.as_str().unwrap_or_default().to_string()],
    };
    let joined = items.join(", ");
    if key.starts_with("Not") {
        format!("everything except [{joined}]")
    } else {
        joined
    }
}

/// `live` or `repo`, and `statement #N (Sid)`: where a difference is
/// written, as the text and SARIF reports name it.
pub(super) fn side_and_statement(d: &Difference) -> (&'static str, String) {
    let side = match d.side {
        Side::Live => "live",
        Side::Repo => "repo",
    };
    let stmt = match &d.sid {
        Some(sid) => format!("statement #{} ({sid})", d.statement),
        None => format!("statement #{}", d.statement),
    };
    (side, stmt)
}

fn write_difference(out: &mut dyn Write, d: &Difference) -> std::io::Result<()> {
    let mark = match d.class {
        Class::Added => "+ added   ",
        Class::Removed => "- removed ",
        Class::Cosmetic => "~ cosmetic",
    };
    let (side, stmt) = side_and_statement(d);
    if d.action.is_null() {
        writeln!(out, "{mark} {side} {}: {}", d.policy, d.reason)?;
        return Ok(());
    }
    write!(
        out,
        "{mark} {side} {} {stmt}: {} {} on {}",
        d.policy,
        d.effect,
        list(&d.action),
        list(&d.resource)
    )?;
    if let Some(c) = &d.condition {
        write!(out, " if {c}")?;
    }
    writeln!(out)?;
    writeln!(out, "             {}", d.reason)?;
    for i in &d.impact {
        writeln!(
            out,
            "             changes {} {} on {}: {} -> {}",
            format!("{:?}", i.probe.kind).to_lowercase(),
            i.probe.action,
            i.probe.resource,
            i.without,
            i.with
        )?;
    }
    Ok(())
}
