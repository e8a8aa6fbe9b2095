//! The doctor's result model: what the renderers print and `openpay run`
//! records. Serialised as the `--format json` document (schema in
//! docs/doctor.md; bump [`SCHEMA_VERSION`] on any incompatible change).

use serde::Serialize;

use super::catalog::{CheckSpec, Level, Scope, Severity};
use super::check::{CheckStatus, Outcome, SourceRef};
use crate::exit::Exit;

pub const SCHEMA_VERSION: u32 = 1;

/// One check's result on one host (or once, for account/repo checks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub id: String,
    pub title: String,
    pub scope: Scope,
    pub level: Level,
    pub severity: Severity,
    pub status: CheckStatus,
    pub summary: String,
    pub evidence: Vec<String>,
    /// The finding's own fix, else the catalog's; only for warn and fail.
    pub remediation: Option<String>,
    pub duration_ms: u64,
    /// Set when the check could not evaluate at all (exit 3).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cannot_evaluate: bool,
    /// Files and lines of the repository the finding is written at.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<SourceRef>,
}

impl CheckResult {
    pub fn from_outcome(spec: &CheckSpec, outcome: Outcome, duration_ms: u64) -> Self {
        let remediation = match outcome.status {
            CheckStatus::Fail | CheckStatus::Warn => Some(
                outcome
                    .remediation
                    .unwrap_or_else(|| spec.remediation.clone()),
            ),
            CheckStatus::Pass | CheckStatus::Skip => None,
        };
        Self {
            id: spec.id.clone(),
            title: spec.title.clone(),
            scope: spec.scope,
            level: spec.level,
            severity: spec.severity,
            status: outcome.status,
            summary: outcome.summary,
            evidence: outcome.evidence,
            remediation,
            duration_ms,
            cannot_evaluate: outcome.cannot_evaluate && outcome.status == CheckStatus::Fail,
            locations: outcome.locations,
        }
    }

    /// A failure that changes the exit code.
    pub fn is_blocking(&self) -> bool {
        self.status == CheckStatus::Fail && self.level == Level::Required
    }
}

/// One target: a host, or the shared (account and repo) checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostReport {
    /// `local`, `user@host:port`, or `account` for the shared checks.
    pub label: String,
    pub reachable: bool,
    /// Why the host could not be checked (then `checks` is empty).
    pub error: Option<String>,
    pub checks: Vec<CheckResult>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub skip: usize,
    /// Failed checks whose level is `required`.
    pub required_failed: usize,
    pub unreachable_hosts: usize,
    /// Required checks that could not evaluate (no credentials).
    pub cannot_evaluate: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub openpay_version: String,
    pub hosts: Vec<HostReport>,
    /// Account- and repo-scope checks, run once per doctor run.
    pub shared: Vec<CheckResult>,
    pub summary: Summary,
    /// The exit code `openpay doctor` returns for this report.
    pub exit_code: u8,
}

impl Report {
    pub fn new(hosts: Vec<HostReport>, shared: Vec<CheckResult>) -> Self {
        let mut summary = Summary::default();
        for r in hosts.iter().flat_map(|h| &h.checks).chain(&shared) {
            match r.status {
                CheckStatus::Pass => summary.pass += 1,
                CheckStatus::Warn => summary.warn += 1,
                CheckStatus::Fail => summary.fail += 1,
                CheckStatus::Skip => summary.skip += 1,
            }
            if r.is_blocking() {
                summary.required_failed += 1;
                if r.cannot_evaluate {
                    summary.cannot_evaluate += 1;
                }
            }
        }
        summary.unreachable_hosts = hosts.iter().filter(|h| !h.reachable).count();
        let mut report = Self {
            schema_version: SCHEMA_VERSION,
            openpay_version: env!("CARGO_PKG_VERSION").to_string(),
            hosts,
            shared,
            summary,
            exit_code: 0,
        };
        report.exit_code = report.exit().code();
        report
    }

    /// 3 when a host could not be checked or a required check could not
    /// evaluate (credentials missing), else 1 when a required check failed,
    /// else 0 (warn, skip and advisory failures never change it).
    pub fn exit(&self) -> Exit {
        if self.summary.unreachable_hosts > 0 || self.summary.cannot_evaluate > 0 {
            Exit::Blocked
        } else if self.summary.required_failed > 0 {
            Exit::Findings
        } else {
            Exit::Success
        }
    }

    /// Every result, host by host, then the shared ones.
    pub fn all_results(&self) -> impl Iterator<Item = &CheckResult> {
        self.hosts
            .iter()
            .flat_map(|h| &h.checks)
            .chain(&self.shared)
    }

    /// Ids of the required checks that failed (deduplicated, report order).
    pub fn failing_required(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for r in self.all_results().filter(|r| r.is_blocking()) {
            if !ids.contains(&r.id) {
                ids.push(r.id.clone());
            }
        }
        ids
    }
}
