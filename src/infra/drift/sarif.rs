//! `openpay iam drift --format sarif`: drift as SARIF 2.1.0 for GitHub
//! code scanning, one alert per access added or removed and per
//! undeclared managed policy (cosmetic differences are not drift).
//!
//! Every result sits in the policy template terraform attaches: a removed
//! grant at its statement there, an added grant and an undeclared managed
//! policy at the template's `Statement` list, where declaring or reverting
//! it is decided. Fingerprints hash the role, the policy and the grant
//! itself (effect, action, resource, condition), never a statement number
//! that shifts when another statement is added.

use std::io::Write;

use super::diff::{Class, Difference, Side};
use super::render::{Report, list, side_and_statement};
use crate::sarif::{Level, Location, Log, Rule, SarifResult, line_where};

const ADDED: &str = "iam.drift.added";
const REMOVED: &str = "iam.drift.removed";
const UNDECLARED: &str = "iam.drift.undeclared-managed-policy";

fn rules() -> Vec<Rule> {
    let tags = ["openpay", "iam-drift", "security"];
    vec![
        Rule::new(
            ADDED,
            "the live role grants access the repository's policy does not",
            "Access added outside terraform (console, CLI, another stack) is invisible in review and outlives the reason it was added; the impact lines say which of openpay's needed or sensitive requests it changes.",
            "Remove the grant from the live role (`openpay tf apply` restores the repository's policy), or declare it in terraform/policies/ if it is intended.",
            Level::Error,
            &tags,
        ),
        Rule::new(
            REMOVED,
            "the repository's policy grants access the live role lacks",
            "The pipeline was written against the repository's policy: a grant missing on the live role fails the run where it is needed (AccessDenied after a long download).",
            "Apply the repository's policy with `openpay tf apply`, or remove the grant from terraform/policies/ if it is no longer needed.",
            Level::Error,
            &tags,
        ),
        Rule::new(
            UNDECLARED,
            "a managed policy is attached to the role outside the repository",
            "An attached managed policy (AdministratorAccess, a team's shared policy) can grant anything and changes without a commit here.",
            "Detach it (`aws iam detach-role-policy --role-name ROLE --policy-arn ARN`) or declare the attachment in terraform/iam.tf.",
            Level::Error,
            &tags,
        ),
    ]
}

/// Writes the SARIF log of `report`; `template_text` is the policy
/// template as read (for line numbers), `template_uri` its path relative to
/// the repository root.
pub fn write(
    report: &Report,
    template_text: Option<&str>,
    template_uri: &str,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    log(report, template_text, template_uri).write(out)
}

pub fn log(report: &Report, template_text: Option<&str>, template_uri: &str) -> Log {
    let mut log = Log {
        rules: rules(),
        results: Vec::new(),
        notifications: Vec::new(),
        execution_successful: true,
        automation_id: "openpay/iam-drift/".to_string(),
    };
    let statements_line =
        template_text.and_then(|t| line_where(t, |l| l.contains("\"Statement\"")));
    let role = report.role.as_str();
    for d in &report.comparison.differences {
        let rule = match d.class {
            Class::Added => ADDED,
            Class::Removed => REMOVED,
            Class::Cosmetic => continue,
        };
        let line = match d.side {
            Side::Repo => template_text
                .and_then(|t| statement_line(t, d))
                .or(statements_line),
            Side::Live => statements_line,
        };
        let condition = d
            .condition
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default();
        let index = log.rule_index(rule).expect("drift rules are fixed");
        log.results.push(SarifResult::new(
            (rule, index),
            Level::Error,
            message(role, d),
            Location::file(template_uri, line),
            &[
                rule,
                role,
                d.policy.as_str(),
                d.effect.as_str(),
                d.action.to_string().as_str(),
                d.resource.to_string().as_str(),
                condition.as_str(),
            ],
        ));
    }
    for arn in &report.comparison.undeclared_managed_policies {
        let index = log.rule_index(UNDECLARED).expect("drift rules are fixed");
        log.results.push(SarifResult::new(
            (UNDECLARED, index),
            Level::Error,
            format!("role {role}: attached managed policy {arn} is not declared in the repository"),
            Location::file(template_uri, statements_line),
            &[UNDECLARED, role, arn.as_str()],
        ));
    }
    log
}

/// The line of a repo-side statement: its `Sid` when it has one, else the
/// statement's `Effect` key (every statement has exactly one).
fn statement_line(text: &str, d: &Difference) -> Option<u32> {
    if let Some(sid) = &d.sid {
        let quoted = format!("\"{sid}\"");
        if let Some(line) = line_where(text, |l| l.contains("\"Sid\"") && l.contains(&quoted)) {
            return Some(line);
        }
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains("\"Effect\""))
        .nth(d.statement)
        .and_then(|(i, _)| u32::try_from(i + 1).ok())
}

fn message(role: &str, d: &Difference) -> String {
    let (side, stmt) = side_and_statement(d);
    let mut text = format!(
        "role {role}, {side} {} {stmt}: {} {} on {}",
        d.policy,
        d.effect.as_str(),
        list(&d.action),
        list(&d.resource)
    );
    if let Some(c) = &d.condition {
        text.push_str(&format!(" if {c}"));
    }
    text.push_str(&format!(" ({})", d.reason));
    for i in &d.impact {
        text.push_str(&format!(
            "\n  changes {} on {}: {} -> {}",
            i.probe.action, i.probe.resource, i.without, i.with
        ));
    }
    text
}
