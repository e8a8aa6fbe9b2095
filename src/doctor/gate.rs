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
    let host = HostTarget::reachable(Arc::new(LocalTransport::from_process_env()));
    let report = runner::run(vec![host], &specs, &env).await;
    let failing = report.failing_required();
    GateOutcome {
        passed: failing.is_empty() && report.summary.unreachable_hosts == 0,
        failing,
        report,
    }
}
