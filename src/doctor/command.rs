//! `openpay doctor`: pick the checks, reach the hosts, run, render, exit.
//!
//! Exit codes (DESIGN.md): 0 every required check passed (warn/skip are
//! fine), 1 a required check failed, 2 bad input (unknown check id), 3 a
//! host could not be reached or its key was refused.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use super::catalog::{Catalog, CheckSpec, Scope};
use super::check::CheckOptions;
use super::checks::cloud_init;
use super::render;
use super::runner::{self, HostTarget, RunEnv};
use super::transport::local::LocalTransport;
use super::transport::ssh::{SshOptions, SshTarget, SshTransport};
use super::transport::{Transport, TransportError};
use crate::Globals;
use crate::aws::AwsClients;
use crate::cli::{DoctorArgs, ReportFormat};
use crate::exit::{Exit, UsageError, usage};

/// How often `--wait` asks cloud-init for its state.
const WAIT_POLL: Duration = Duration::from_secs(2);

pub async fn run(g: &Globals, args: DoctorArgs) -> anyhow::Result<Exit> {
    let catalog = Catalog::embedded();
    let min_buildx = &g.config.doctor.min_buildx;
    if super::version::parse_minimum(min_buildx).is_none() {
        return Err(usage(format!(
            "invalid [doctor] min_buildx `{min_buildx}`: expected a version such as \"0.17.0\" (openpay.toml or OPENPAY_DOCTOR_MIN_BUILDX)"
        )));
    }
    if args.list_checks {
        write_stdout(|out| list_checks(catalog, args.format, out))?;
        return Ok(Exit::Success);
    }
    if let Some(id) = &args.explain {
        let Some(spec) = catalog.get(id) else {
            return Err(usage(catalog.unknown_id_message("--explain", id)));
        };
        write_stdout(|out| explain(spec, out))?;
        return Ok(Exit::Success);
    }
    let specs = runner::select(catalog, &args.only, &args.skip)?;
    validate_ssh_args(&args)?;

    let targets = connect_all(&args).await;
    if let Some(secs) = args.wait {
        wait_for_cloud_init(&targets, Duration::from_secs(secs)).await;
    }
    let needs_aws = specs.iter().any(|s| s.scope == Scope::Account);
    let aws = if needs_aws && !args.offline {
        Some(AwsClients::load(&g.config.aws.settings()).await)
    } else {
        None
    };
    let env = RunEnv {
        config: Arc::new(g.config.clone()),
        aws,
        options: Arc::new(CheckOptions {
            offline: args.offline,
            probe: args.probe,
            instance_id: args.instance_id.clone(),
            repo_dir: None,
        }),
    };
    let report = runner::run(targets, &specs, &env).await;
    write_stdout(|out| render::render(&report, args.format, g.verbose > 0, out))?;
    Ok(report.exit())
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn write_stdout(f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    match f(&mut lock).and_then(|_| lock.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// No `--host`: this machine. Otherwise every host is connected in
/// parallel; a failure becomes that host's single "unreachable" result.
async fn connect_all(args: &DoctorArgs) -> Vec<HostTarget> {
    if args.hosts.is_empty() {
        return vec![HostTarget::reachable(Arc::new(
            LocalTransport::from_process_env(),
        ))];
    }
    let tasks: Vec<_> = args
        .hosts
        .iter()
        .map(|host| {
            let host = host.clone();
            let args = args.clone();
            tokio::task::spawn_blocking(move || {
                let transport = connect_ssh(&host, &args);
                HostTarget {
                    label: transport.as_ref().map_or(host, |t| t.label()),
                    transport,
                }
            })
        })
        .collect();
    let mut targets = Vec::new();
    for (task, host) in tasks.into_iter().zip(&args.hosts) {
        targets.push(task.await.unwrap_or_else(|e| HostTarget {
            label: host.clone(),
            transport: Err(TransportError::Io(format!("connect task failed: {e}"))),
        }));
    }
    targets
}

/// Rejects bad `--host` values and a missing `--identity-file` before any
/// connection is tried: bad input is exit 2, not an unreachable host.
fn validate_ssh_args(args: &DoctorArgs) -> Result<(), UsageError> {
    for host in &args.hosts {
        SshTarget::parse(host)?;
    }
    if let Some(key) = args
        .identity_file
        .as_ref()
        .filter(|_| !args.hosts.is_empty())
        && !key.is_file()
    {
        return Err(UsageError(format!(
            "--identity-file {}: no such file; pass the path of the private key (e.g. ~/.ssh/ingest.pem)",
            key.display()
        )));
    }
    Ok(())
}

/// Opens an SSH session to `host` (`USER@ADDR[:PORT]`, already validated
/// by [`validate_ssh_args`]). Blocking; called from `spawn_blocking`, one
/// task per host, so hosts connect in parallel.
fn connect_ssh(host: &str, args: &DoctorArgs) -> Result<Arc<dyn Transport>, TransportError> {
    let target = SshTarget::parse(host).map_err(|e| TransportError::Io(e.to_string()))?;
    let opts = SshOptions {
        identity_file: args.identity_file.clone(),
        accept_new_host_key: args.accept_new_host_key,
        ..SshOptions::default()
    };
    Ok(Arc::new(SshTransport::connect(&target, &opts)?))
}

/// `--wait`: every reachable host in parallel, each bounded by `limit`,
/// with a progress line on stderr at each poll.
async fn wait_for_cloud_init(targets: &[HostTarget], limit: Duration) {
    let waits: Vec<_> = targets
        .iter()
        .filter_map(|t| {
            t.transport
                .as_ref()
                .ok()
                .map(|tr| (t.label.clone(), Arc::clone(tr)))
        })
        .map(|(label, transport)| {
            tokio::task::spawn_blocking(move || {
                let last = cloud_init::wait_until_settled(
                    transport.as_ref(),
                    limit,
                    WAIT_POLL,
                    |state, elapsed| {
                        eprintln!(
                            "waiting for cloud-init on {label}: {state} ({}s of {}s)",
                            elapsed.as_secs(),
                            limit.as_secs()
                        );
                    },
                );
                if let Some(state) = last {
                    eprintln!("cloud-init on {label}: {state}");
                }
            })
        })
        .collect();
    for w in waits {
        let _ = w.await;
    }
}

fn list_checks(
    catalog: &Catalog,
    format: ReportFormat,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if format == ReportFormat::Json {
        serde_json::to_writer_pretty(&mut *out, catalog.checks())?;
        return writeln!(out);
    }
    let w = catalog
        .checks()
        .iter()
        .map(|c| c.id.len())
        .max()
        .unwrap_or(2);
    writeln!(
        out,
        "{:<w$}  {:<7}  {:<8}  {:<8}  {:<9}  TITLE",
        "ID", "SCOPE", "LEVEL", "SEVERITY", "PREFLIGHT"
    )?;
    for c in catalog.checks() {
        writeln!(
            out,
            "{:<w$}  {:<7}  {:<8}  {:<8}  {:<9}  {}",
            c.id,
            c.scope.as_str(),
            c.level.as_str(),
            c.severity.as_str(),
            if c.preflight { "yes" } else { "no" },
            c.title
        )?;
    }
    Ok(())
}

fn explain(spec: &CheckSpec, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "{} — {}", spec.id, spec.title)?;
    writeln!(
        out,
        "scope: {}  level: {}  severity: {}  preflight: {}  timeout: {}s",
        spec.scope,
        spec.level,
        spec.severity,
        if spec.preflight { "yes" } else { "no" },
        spec.timeout_secs
    )?;
    writeln!(out, "\nruns:")?;
    for r in &spec.runs {
        writeln!(out, "  {r}")?;
    }
    writeln!(out, "\nwhy:")?;
    for l in spec.why.lines() {
        writeln!(out, "  {l}")?;
    }
    writeln!(out, "\nfix:")?;
    for l in spec.remediation.lines() {
        writeln!(out, "  {l}")?;
    }
    Ok(())
}
