//! `openpay doctor`: pick the checks, reach the hosts, run, render, exit.
//!
//! Exit codes (DESIGN.md): 0 every required check passed (warn/skip are
//! fine), 1 a required check failed, 2 bad input (unknown check id), 3 a
//! host could not be reached or its key was refused.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use super::DoctorError;
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
use crate::exit::Exit;
use crate::output;

/// How often `--wait` asks cloud-init for its state.
const WAIT_POLL: Duration = Duration::from_secs(2);

pub async fn run(g: &Globals, args: DoctorArgs) -> anyhow::Result<Exit> {
    let catalog = Catalog::embedded();
    let min_buildx = &g.config.doctor.min_buildx;
    if super::version::parse_minimum(min_buildx).is_none() {
        return Err(DoctorError::MinBuildx {
            value: min_buildx.clone(),
        }
        .into());
    }
    if args.list_checks {
        output::write(|out| list_checks(catalog, args.format, out))?;
        return Ok(Exit::Success);
    }
    if let Some(id) = &args.explain {
        let Some(spec) = catalog.get(id) else {
            return Err(DoctorError::UnknownCheck {
                message: catalog.unknown_id_message("--explain", id),
            }
            .into());
        };
        output::write(|out| explain(spec, out))?;
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
            hosts: args
                .hosts
                .iter()
                .filter_map(|h| SshTarget::parse(h).ok().map(|t| t.host))
                .collect(),
            repo_dir: None,
        }),
    };
    let report = runner::run(targets, &specs, &env).await;
    let cwd = std::env::current_dir().unwrap_or_default();
    let config = render::sarif::ConfigFile {
        uri: crate::sarif::repo_relative(&g.config_file, &cwd),
        text: std::fs::read_to_string(&g.config_file).ok(),
    };
    let format = match args.format {
        ReportFormat::Table => render::Format::Table,
        ReportFormat::Json => render::Format::Json,
        ReportFormat::Junit => render::Format::Junit,
        ReportFormat::Sarif => render::Format::Sarif,
    };
    output::write(|out| render::render(&report, format, g.verbose > 0, &config, out))?;
    Ok(report.exit())
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
fn validate_ssh_args(args: &DoctorArgs) -> Result<(), DoctorError> {
    for host in &args.hosts {
        SshTarget::parse(host)?;
    }
    if let Some(key) = args
        .identity_file
        .as_ref()
        .filter(|_| !args.hosts.is_empty())
        && !key.is_file()
    {
        return Err(DoctorError::IdentityFile { path: key.clone() });
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
