//! Runs checks concurrently and collects a [`Report`].
//!
//! Every check is its own tokio task under `tokio::time::timeout` of its
//! catalog timeout. A check that panics or hangs becomes a `fail` of that
//! check only; the others finish. Host-scope checks run once per reachable
//! host (all hosts in parallel); account- and repo-scope checks run once.
//! Results are sorted into catalog order so output is stable.

use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;

use super::DoctorError;
use super::catalog::{Catalog, CheckSpec, Scope};
use super::check::{CheckCtx, CheckFn, CheckOptions, Outcome};
use super::checks;
use super::report::{CheckResult, HostReport, Report};
use super::transport::{Transport, TransportError};
use crate::aws::AwsClients;
use crate::config::Config;

/// A host to check: its transport, or why it could not be reached.
pub struct HostTarget {
    pub label: String,
    pub transport: Result<Arc<dyn Transport>, TransportError>,
}

impl HostTarget {
    pub fn reachable(transport: Arc<dyn Transport>) -> Self {
        Self {
            label: transport.label(),
            transport: Ok(transport),
        }
    }
}

/// What every check of one run shares.
#[derive(Clone)]
pub struct RunEnv {
    pub config: Arc<Config>,
    pub aws: Option<AwsClients>,
    pub options: Arc<CheckOptions>,
}

/// The checks to run: the catalog minus `--skip`, restricted to `--only`
/// when given. Unknown ids are a usage error naming close ids.
pub fn select<'c>(
    catalog: &'c Catalog,
    only: &[String],
    skip: &[String],
) -> Result<Vec<&'c CheckSpec>, DoctorError> {
    for (flag, ids) in [("--only", only), ("--skip", skip)] {
        if let Some(bad) = ids.iter().find(|id| catalog.get(id).is_none()) {
            return Err(DoctorError::UnknownCheck {
                message: catalog.unknown_id_message(flag, bad),
            });
        }
    }
    Ok(catalog
        .checks()
        .iter()
        .filter(|c| only.is_empty() || only.contains(&c.id))
        .filter(|c| !skip.contains(&c.id))
        .collect())
}

/// Runs `specs` on every host (host scope) and once (account/repo scope).
pub async fn run(hosts: Vec<HostTarget>, specs: &[&CheckSpec], env: &RunEnv) -> Report {
    let host_specs: Vec<&CheckSpec> = specs
        .iter()
        .copied()
        .filter(|s| s.scope == Scope::Host)
        .collect();
    let shared_specs: Vec<&CheckSpec> = specs
        .iter()
        .copied()
        .filter(|s| s.scope != Scope::Host)
        .collect();

    let mut reports: Vec<HostReport> = Vec::new();
    // (slot: host index or usize::MAX for shared, result)
    let mut set: JoinSet<(usize, CheckResult)> = JoinSet::new();
    for (i, host) in hosts.into_iter().enumerate() {
        match host.transport {
            Ok(t) => {
                reports.push(HostReport {
                    label: host.label,
                    reachable: true,
                    error: None,
                    checks: Vec::new(),
                });
                for spec in &host_specs {
                    spawn_check(&mut set, i, (*spec).clone(), Arc::clone(&t), env);
                }
            }
            Err(e) => reports.push(HostReport {
                label: host.label,
                reachable: false,
                error: Some(e.to_string()),
                checks: Vec::new(),
            }),
        }
    }
    let mut shared = Vec::new();
    for spec in &shared_specs {
        if spec.scope == Scope::Account && env.options.offline {
            shared.push(CheckResult::from_outcome(
                spec,
                Outcome::skip("--offline: AWS checks are skipped"),
                0,
            ));
            continue;
        }
        // Shared checks still get a transport (this machine) for uniformity.
        let local: Arc<dyn Transport> = Arc::new(super::transport::local::LocalTransport::new());
        spawn_check(&mut set, usize::MAX, (*spec).clone(), local, env);
    }
    while let Some(joined) = set.join_next().await {
        // The wrapper task never panics (it catches the check's panic), so
        // a join error here means the runtime is shutting down.
        let Ok((slot, result)) = joined else { continue };
        match reports.get_mut(slot) {
            Some(h) => h.checks.push(result),
            None => shared.push(result),
        }
    }
    let catalog = Catalog::embedded();
    for h in &mut reports {
        h.checks.sort_by_key(|r| catalog.position(&r.id));
    }
    shared.sort_by_key(|r| catalog.position(&r.id));
    Report::new(reports, shared)
}

fn spawn_check(
    set: &mut JoinSet<(usize, CheckResult)>,
    slot: usize,
    spec: CheckSpec,
    transport: Arc<dyn Transport>,
    env: &RunEnv,
) {
    let ctx = CheckCtx {
        transport,
        config: Arc::clone(&env.config),
        aws: env.aws.clone(),
        options: Arc::clone(&env.options),
        timeout: spec.timeout(),
    };
    set.spawn(async move {
        let started = Instant::now();
        let outcome = match checks::lookup(&spec.id) {
            Some(f) => guarded(&spec, f, ctx).await,
            None => Outcome::fail(format!("no check function is registered for `{}`", spec.id)),
        };
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        (slot, CheckResult::from_outcome(&spec, outcome, ms))
    });
}

/// Runs one check in its own task so a panic is contained, under its
/// catalog timeout so a hang is contained.
async fn guarded(spec: &CheckSpec, f: CheckFn, ctx: CheckCtx) -> Outcome {
    let handle = tokio::spawn(f(ctx));
    let abort = handle.abort_handle();
    match tokio::time::timeout(spec.timeout(), handle).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) if e.is_panic() => {
            Outcome::fail(format!("check panicked: {}", panic_text(e.into_panic())))
        }
        Ok(Err(e)) => Outcome::fail(format!("check task failed: {e}")),
        Err(_) => {
            abort.abort();
            Outcome::fail(format!(
                "timed out after {}s (catalog timeout_secs)",
                spec.timeout_secs
            ))
        }
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::check::{CheckFuture, CheckStatus};
    use crate::doctor::transport::local::LocalTransport;

    fn ctx() -> CheckCtx {
        CheckCtx {
            transport: Arc::new(LocalTransport::new()),
            config: Arc::new(Config::default()),
            aws: None,
            options: Arc::new(CheckOptions::default()),
            timeout: std::time::Duration::from_secs(1),
        }
    }

    fn spec() -> CheckSpec {
        let mut s = Catalog::embedded().get("host.git").unwrap().clone();
        s.timeout_secs = 1;
        s
    }

    fn panics(_: CheckCtx) -> CheckFuture {
        Box::pin(async { panic!("boom in check") })
    }

    fn hangs(_: CheckCtx) -> CheckFuture {
        Box::pin(async {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            Outcome::pass("never")
        })
    }

    #[tokio::test]
    async fn panic_and_hang_fail_only_that_check() {
        let o = guarded(&spec(), panics, ctx()).await;
        assert_eq!(o.status, CheckStatus::Fail);
        assert!(o.summary.contains("boom in check"), "{}", o.summary);
        let started = Instant::now();
        let o = guarded(&spec(), hangs, ctx()).await;
        assert_eq!(o.status, CheckStatus::Fail);
        assert!(o.summary.contains("timed out after 1s"), "{}", o.summary);
        // bounded by the 1 s timeout, not the 3600 s sleep
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
    }

    #[test]
    fn select_only_skip_and_unknown() {
        let c = Catalog::embedded();
        let all = select(c, &[], &[]).unwrap();
        assert_eq!(all.len(), c.checks().len());
        let only = select(c, &["host.git".into()], &[]).unwrap();
        assert_eq!(
            only.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["host.git"]
        );
        let skipped = select(c, &[], &["host.git".into()]).unwrap();
        assert!(skipped.iter().all(|s| s.id != "host.git"));
        assert_eq!(skipped.len(), all.len() - 1);
        let e = select(c, &["host.gitt".into()], &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--only host.gitt") && e.contains("host.git"),
            "{e}"
        );
        let e = select(c, &[], &["nope".into()]).unwrap_err().to_string();
        assert!(e.contains("--skip nope"), "{e}");
    }
}
