//! The preflight gate `openpay run` calls before it touches anything.
//!
//! It runs the catalog's `preflight = true` checks on this machine with the
//! same runner as `openpay doctor`. A check that does not apply here (no
//! cloud-init on a laptop) is `skip` and does not block; a failing
//! required check does, and its id lands in the run's manifest.

use std::sync::Arc;

use super::catalog::Catalog;
use super::check::CheckOptions;
use super::report::Report;
use super::runner::{self, HostTarget, RunEnv};
use super::transport::local::LocalTransport;
use crate::aws::AwsClients;
use crate::config::Config;

/// What the gate decided, with the full report for logs and the manifest.
#[derive(Debug, Clone)]
pub struct GateOutcome {
    /// No required preflight check failed.
    pub passed: bool,
    /// Ids of the required checks that failed.
    pub failing: Vec<String>,
    pub report: Report,
}

/// Runs the catalog's `preflight = true` checks on this machine (local
/// transport). `offline` skips the account checks with the reason.
pub async fn preflight(config: Arc<Config>, aws: Option<AwsClients>, offline: bool) -> GateOutcome {
    let host = HostTarget::reachable(Arc::new(LocalTransport::from_process_env()));
    preflight_on(host, config, aws, offline).await
}

/// [`preflight`] on a given host (tests pass a fake one).
pub(crate) async fn preflight_on(
    host: HostTarget,
    config: Arc<Config>,
    aws: Option<AwsClients>,
    offline: bool,
) -> GateOutcome {
    let specs: Vec<_> = Catalog::embedded()
        .checks()
        .iter()
        .filter(|c| c.preflight)
        .collect();
    let env = RunEnv {
        config,
        aws,
        options: Arc::new(CheckOptions {
            offline,
            ..CheckOptions::default()
        }),
    };
    let report = runner::run(vec![host], &specs, &env).await;
    let failing = report.failing_required();
    GateOutcome {
        passed: failing.is_empty() && report.summary.unreachable_hosts == 0,
        failing,
        report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::check::CheckStatus;

    /// A host whose PATH holds only `sh` and the given stand-in cloud-init.
    fn host(cloud_init: Option<&str>) -> (tempfile::TempDir, HostTarget) {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink("/bin/sh", bin.join("sh")).unwrap();
        if let Some(body) = cloud_init {
            let p = bin.join("cloud-init");
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        let path = bin.display().to_string();
        let t = LocalTransport::with_env(&bin, vec![("PATH".into(), path)]);
        (dir, HostTarget::reachable(Arc::new(t)))
    }

    #[tokio::test]
    async fn failing_required_preflight_check_blocks_with_its_id() {
        let (_d, h) = host(Some(
            "echo '{\"status\": \"error\", \"errors\": [\"(\\u0027scripts_user\\u0027, RuntimeError())\"]}'; exit 1",
        ));
        let g = preflight_on(h, Arc::new(Config::default()), None, true).await;
        assert!(!g.passed);
        assert_eq!(g.failing, ["host.cloud-init"]);
        let ids: Vec<_> = g.report.all_results().map(|r| r.id.as_str()).collect();
        assert!(ids.contains(&"host.cloud-init"));
        assert!(
            ids.iter()
                .all(|id| Catalog::embedded().get(id).unwrap().preflight),
            "{ids:?}"
        );
    }

    #[tokio::test]
    async fn not_applicable_check_is_skip_and_does_not_block() {
        let (_d, h) = host(None);
        let g = preflight_on(h, Arc::new(Config::default()), None, true).await;
        assert!(g.passed, "{:?}", g.report);
        assert!(g.failing.is_empty());
        let ci = g
            .report
            .all_results()
            .find(|r| r.id == "host.cloud-init")
            .unwrap();
        assert_eq!(ci.status, CheckStatus::Skip);
    }
}
