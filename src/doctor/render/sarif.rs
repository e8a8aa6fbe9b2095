//! `--format sarif`: the report as SARIF 2.1.0 for GitHub code scanning.
//!
//! The rules are the catalog (id, title, why, remediation as help). Each
//! `fail` or `warn` is a result, at the terraform file and line it names
//! (one result per offending place), else at the config file the fix goes
//! in. Passing and skipped checks are not results. An unreachable host is
//! a tool notification and makes the run unsuccessful: nothing was
//! evaluated there, so it cannot be an alert that later "fixes" itself.

use std::io;

use crate::doctor::catalog::{Catalog, Level as CheckLevel};
use crate::doctor::check::CheckStatus;
use crate::doctor::report::{CheckResult, Report};
use crate::sarif::{Level, Location, Log, Notification, Rule, SarifResult, Text, line_where};

/// The account and repo checks' target in fingerprints and messages.
const SHARED_TARGET: &str = "account";

/// The config file findings without a file of their own are placed in.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    /// Relative to the repository root (`openpay.toml`, or `--config`).
    pub uri: String,
    /// Its text when it exists, to point at the section the fix goes in.
    pub text: Option<String>,
}

impl ConfigFile {
    /// The line of the section holding the settings of check `id`
    /// (`[aws]` for `aws.*`, `[doctor]` otherwise), else line 1.
    fn line_for(&self, id: &str) -> u32 {
        let section = if id.starts_with("aws.") {
            "[aws]"
        } else {
            "[doctor]"
        };
        self.text
            .as_deref()
            .and_then(|t| line_where(t, |l| l.trim() == section))
            .unwrap_or(1)
    }
}

pub fn render(report: &Report, config: &ConfigFile, out: &mut dyn io::Write) -> io::Result<()> {
    log(report, Catalog::embedded(), config).write(out)
}

/// The SARIF log of `report`, with `catalog`'s checks as rules.
pub fn log(report: &Report, catalog: &Catalog, config: &ConfigFile) -> Log {
    let rules = catalog
        .checks()
        .iter()
        .map(|c| {
            let level = match c.level {
                CheckLevel::Required => Level::Error,
                CheckLevel::Advisory => Level::Warning,
            };
            let tags = ["openpay", "doctor", c.scope.as_str()];
            Rule::new(&c.id, &c.title, &c.why, &c.remediation, level, &tags)
        })
        .collect();
    let mut log = Log {
        rules,
        results: Vec::new(),
        notifications: Vec::new(),
        execution_successful: report.exit() != crate::exit::Exit::Blocked,
        automation_id: "openpay/doctor/".to_string(),
    };
    let per_host = report
        .hosts
        .iter()
        .flat_map(|h| h.checks.iter().map(move |r| (h.label.as_str(), r)));
    let shared = report.shared.iter().map(|r| (SHARED_TARGET, r));
    for (target, r) in per_host.chain(shared) {
        let Some(index) = log.rule_index(&r.id) else {
            continue;
        };
        let Some(level) = level(r) else { continue };
        let message = message(target, r);
        if r.locations.is_empty() {
            log.results.push(SarifResult::new(
                (r.id.as_str(), index),
                level,
                message,
                Location::file(&config.uri, Some(config.line_for(&r.id))),
                &[r.id.as_str(), target],
            ));
            continue;
        }
        for place in &r.locations {
            let line = place.line.map(|l| l.to_string()).unwrap_or_default();
            log.results.push(SarifResult::new(
                (r.id.as_str(), index),
                level,
                message.clone(),
                Location::file(&place.file, place.line),
                &[r.id.as_str(), target, place.file.as_str(), line.as_str()],
            ));
        }
    }
    for h in report.hosts.iter().filter(|h| !h.reachable) {
        log.notifications.push(Notification {
            level: Level::Error,
            message: Text::new(format!(
                "{}: unreachable, no check ran there: {}",
                h.label,
                h.error.as_deref().unwrap_or("unknown error")
            )),
        });
    }
    log
}

/// Required failures are errors; advisory failures and warnings are
/// warnings; pass and skip are not results.
fn level(r: &CheckResult) -> Option<Level> {
    match (r.status, r.level) {
        (CheckStatus::Fail, CheckLevel::Required) => Some(Level::Error),
        (CheckStatus::Fail, CheckLevel::Advisory) | (CheckStatus::Warn, _) => Some(Level::Warning),
        (CheckStatus::Pass | CheckStatus::Skip, _) => None,
    }
}

/// The summary, the evidence that decided it, and the finding's own fix.
fn message(target: &str, r: &CheckResult) -> String {
    let mut text = format!("{target}: {}", r.summary);
    for line in &r.evidence {
        text.push_str("\n  ");
        text.push_str(line);
    }
    if let Some(fix) = &r.remediation {
        text.push_str("\nfix: ");
        text.push_str(fix);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::check::{Outcome, SourceRef};
    use crate::doctor::report::HostReport;

    fn result(id: &str, outcome: Outcome) -> CheckResult {
        CheckResult::from_outcome(Catalog::embedded().get(id).unwrap(), outcome, 5)
    }

    fn report(n_world_rules: usize, ms: u64) -> Report {
        let places = (0..n_world_rules).map(|i| SourceRef {
            file: "terraform/network.tf".into(),
            line: Some(10 + i as u32),
        });
        let mut tf = result(
            "tf.ssh-allowlist",
            Outcome::fail(format!("{n_world_rules} SSH source range(s) outside"))
                .with_locations(places),
        );
        tf.duration_ms = ms;
        let host = HostReport {
            label: "ec2-user@203.0.113.7:22".into(),
            reachable: true,
            error: None,
            checks: vec![
                result("host.git", Outcome::pass("git 2.40")),
                result(
                    "host.buildx",
                    Outcome::fail(format!("buildx 0.12.{ms} < 0.17.0")),
                ),
            ],
        };
        let dead = HostReport {
            label: "ec2-user@198.51.100.9:22".into(),
            reachable: false,
            error: Some("connection refused".into()),
            checks: Vec::new(),
        };
        Report::new(vec![host, dead], vec![tf])
    }

    #[test]
    fn results_locations_and_stable_fingerprints() {
        let config = ConfigFile {
            uri: "openpay.toml".into(),
            text: Some("[aws]\nbucket = \"b\"\n\n[doctor]\nmin_buildx = \"0.17.0\"\n".into()),
        };
        let a = log(&report(2, 1), Catalog::embedded(), &config);
        assert_eq!(a.rules.len(), Catalog::embedded().checks().len());
        assert!(!a.execution_successful, "an unreachable host is exit 3");
        assert_eq!(a.notifications.len(), 1);
        // pass is not a result; buildx at the config file; two tf places
        let ids: Vec<_> = a.results.iter().map(|r| r.rule_id.as_str()).collect();
        assert_eq!(ids, ["host.buildx", "tf.ssh-allowlist", "tf.ssh-allowlist"]);
        assert_eq!(a.results[0].locations[0].uri(), "openpay.toml");
        let region = |i: usize| a.results[i].locations[0].physical_location.region.clone();
        assert_eq!(region(0).unwrap().start_line, 4, "host.buildx: [doctor]");
        assert_eq!(a.results[1].locations[0].uri(), "terraform/network.tf");
        let fp = |l: &Log, i: usize| l.results[i].partial_fingerprints.clone();
        assert_ne!(fp(&a, 1), fp(&a, 2), "two places, two alerts");
        // a rerun with other wording and durations keeps every fingerprint
        let b = log(&report(2, 7), Catalog::embedded(), &config);
        for i in 0..3 {
            assert_eq!(fp(&a, i), fp(&b, i), "result {i}");
        }
        let idx = a.results[1].rule_index;
        assert_eq!(a.rules[idx].id, "tf.ssh-allowlist");
        assert!(a.rules[idx].help.text.contains("ssh_allowed_cidrs"));
    }
}
