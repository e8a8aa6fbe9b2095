//! `openpay tf plan|apply|output|destroy`: the command edge that drives
//! terraform through [`Terraform`], renders the masked plan, applies the
//! risk gate, saves redacted outputs and hands over to the doctor.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use super::TfError;
use super::binary;
use super::bucket;
use super::endpoint::EndpointOverride;
use super::outputs::{self, Outputs};
use super::plan::{Action, Plan};
use super::render;
use super::risk::{self, Risk};
use super::runner::{PlanExit, Terraform};
use crate::Globals;
use crate::aws::{AwsClients, AwsSettings};
use crate::cli::{TableOrJson, TfAction, TfArgs, TfCommon};
use crate::config::OUTPUTS_FILE;
use crate::exit::Exit;
use crate::output::{self, OutputError};

/// The saved plan, relative to the directory openpay runs in.
pub const PLAN_FILE: &str = ".openpay/tfplan";

pub async fn run(g: &Globals, args: TfArgs) -> anyhow::Result<Exit> {
    let cwd = std::env::current_dir().map_err(|source| TfError::Io {
        action: "read",
        path: PathBuf::from("."),
        source,
    })?;
    let ctx = Ctx::new(&args.common, &cwd, !matches!(args.action, TfAction::Output))?;
    match args.action {
        TfAction::Plan { detailed_exitcode } => ctx.plan_cmd(detailed_exitcode),
        TfAction::Apply => ctx.apply_cmd().await,
        TfAction::Output => ctx.output_cmd(),
        TfAction::Destroy { yes, force } => ctx.destroy_cmd(g, yes, force).await,
    }
}

/// Everything one `openpay tf` invocation resolved from its flags.
struct Ctx {
    tf: Terraform,
    planfile: PathBuf,
    outputs_file: PathBuf,
    format: TableOrJson,
    allow_risky: bool,
    no_doctor: bool,
    endpoint_url: Option<String>,
    /// Kept alive for the whole command; removes the override file on drop.
    _endpoint: Option<EndpointOverride>,
}

impl Ctx {
    fn new(c: &TfCommon, cwd: &Path, needs_provider: bool) -> Result<Self, TfError> {
        let dir = if c.dir.is_absolute() {
            c.dir.clone()
        } else {
            cwd.join(&c.dir)
        };
        let has_tf = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "tf"))
            })
            .unwrap_or(false);
        if !has_tf {
            return Err(TfError::NoStack {
                path: c.dir.clone(),
            });
        }
        for v in &c.vars {
            if !v.contains('=') || v.starts_with('=') {
                return Err(TfError::Invalid {
                    input: format!("--var `{v}`"),
                    message:
                        "expected NAME=VALUE, e.g. --var 'ssh_allowed_cidrs=[\"197.210.77.0/24\"]'"
                            .into(),
                });
            }
        }
        if let Some(t) = &c.lock_timeout {
            let ok = regex::Regex::new(r"^[0-9]+(ms|s|m|h)$")
                .expect("duration regex")
                .is_match(t);
            if !ok {
                return Err(TfError::Invalid {
                    input: format!("--lock-timeout `{t}`"),
                    message: "expected a duration such as 30s, 5m or 1h".into(),
                });
            }
        }
        let binary = binary::locate_from_env()?;
        let endpoint_url = c.endpoint_url.clone().filter(|s| !s.trim().is_empty());
        let endpoint = match (&endpoint_url, needs_provider) {
            (Some(url), true) => Some(EndpointOverride::write(&dir, url)?),
            _ => None,
        };
        let tf = Terraform::new(
            binary,
            dir,
            &c.vars,
            &c.var_files,
            cwd,
            c.lock_timeout.clone(),
        );
        let state_dir = cwd.join(".openpay");
        std::fs::create_dir_all(&state_dir).map_err(|source| TfError::Io {
            action: "create",
            path: state_dir.clone(),
            source,
        })?;
        Ok(Self {
            tf,
            planfile: cwd.join(PLAN_FILE),
            outputs_file: cwd.join(OUTPUTS_FILE),
            format: c.format,
            allow_risky: c.allow_risky,
            no_doctor: c.no_doctor,
            endpoint_url,
            _endpoint: endpoint,
        })
    }

    /// init if needed, plan into the saved plan file, read it back.
    fn make_plan(&self, destroy: bool) -> Result<(PlanExit, Plan), TfError> {
        self.tf.init_if_needed()?;
        tracing::info!(dir = %self.tf.dir.display(), "terraform plan{}", if destroy { " -destroy" } else { "" });
        let exit = self.tf.plan(&self.planfile, destroy)?;
        let mut plan = Plan::parse(&self.tf.show_json(&self.planfile)?)?;
        if destroy {
            // terraform gives no action_reason in a -destroy plan
            for c in plan
                .changes
                .iter_mut()
                .filter(|c| c.action == Action::Delete)
            {
                c.reason = "destroy requested".into();
            }
        }
        Ok((exit, plan))
    }

    fn show(&self, exit: PlanExit, plan: &Plan, risks: &[Risk]) -> Result<(), OutputError> {
        match self.format {
            TableOrJson::Json => output::line(render::plan_json(plan, risks)),
            TableOrJson::Table => {
                if exit == PlanExit::NoChanges {
                    output::line("No changes. The infrastructure matches the configuration.")?;
                } else {
                    output::line(render::plan_table(plan))?;
                }
                if !risks.is_empty() {
                    output::line(format_args!("\n{}", render::risks_text(risks)))?;
                }
                Ok(())
            }
        }
    }

    fn plan_cmd(&self, detailed_exitcode: bool) -> anyhow::Result<Exit> {
        let (exit, plan) = self.make_plan(false)?;
        let risks = risk::assess(&plan);
        self.show(exit, &plan, &risks)?;
        if self.format == TableOrJson::Table && exit == PlanExit::Changes {
            output::line(format_args!(
                "Saved plan: {PLAN_FILE} (apply it with `openpay tf apply`)."
            ))?;
        }
        Ok(if detailed_exitcode && exit == PlanExit::Changes {
            Exit::Findings
        } else {
            Exit::Success
        })
    }

    async fn apply_cmd(&self) -> anyhow::Result<Exit> {
        let (exit, plan) = self.make_plan(false)?;
        let risks = risk::assess(&plan);
        self.show(exit, &plan, &risks)?;
        if !risks.is_empty() {
            if !self.allow_risky {
                let codes: Vec<String> = risks
                    .iter()
                    .map(|r| format!("{} ({})", r.code, r.address))
                    .collect();
                return Err(TfError::Refused(format!(
                    "apply refused: the plan has {} risky change(s): {}; fix the configuration, or pass --allow-risky if they are intended",
                    risks.len(),
                    codes.join(", ")
                ))
                .into());
            }
            tracing::warn!(
                count = risks.len(),
                "applying risky changes because --allow-risky was given"
            );
        }
        if exit == PlanExit::Changes {
            tracing::info!("terraform apply {PLAN_FILE}");
            self.tf.apply(&self.planfile)?;
        }
        let _ = std::fs::remove_file(&self.planfile);
        let outputs = self.save_outputs()?;
        match self.format {
            TableOrJson::Table => output::line(format_args!(
                "\nApply complete. Outputs (saved to {OUTPUTS_FILE}):\n{}",
                render::outputs_table(&outputs)
            ))?,
            TableOrJson::Json => output::line(render::outputs_json(&outputs))?,
        }
        if self.no_doctor {
            return Ok(Exit::Success);
        }
        self.run_doctor(&outputs)
    }

    fn save_outputs(&self) -> Result<Outputs, TfError> {
        let outputs = outputs::parse_redacted(&self.tf.output_json()?)?;
        outputs::write(&self.outputs_file, &outputs)?;
        Ok(outputs)
    }

    /// `openpay doctor --host ssh_user@public_ip --wait --instance-id ID`,
    /// as a child of the current executable so the doctor runs exactly as a
    /// user would run it.
    fn run_doctor(&self, outputs: &Outputs) -> anyhow::Result<Exit> {
        let (Some(user), Some(ip)) = (
            outputs::string(outputs, "ssh_user"),
            outputs::string(outputs, "public_ip"),
        ) else {
            return Err(TfError::NoDoctorTarget.into());
        };
        let spawn_error = |source| TfError::Spawn {
            program: "openpay doctor".into(),
            source,
        };
        let exe = std::env::current_exe().map_err(spawn_error)?;
        let host = format!("{user}@{ip}");
        let mut args = vec!["doctor".to_string(), "--host".into(), host, "--wait".into()];
        // The stack's own instance: net.ssh-allowlist checks its groups.
        if let Some(id) = outputs::string(outputs, "instance_id") {
            args.extend(["--instance-id".into(), id]);
        }
        tracing::info!("openpay {}", args.join(" "));
        let mut doctor = std::process::Command::new(exe);
        doctor.args(&args);
        // The doctor's AWS checks must see the AWS terraform just changed.
        if let Some(url) = &self.endpoint_url {
            doctor.env("AWS_ENDPOINT_URL", url);
        }
        let status = doctor.status().map_err(spawn_error)?;
        Ok(match status.code() {
            Some(0) => Exit::Success,
            Some(1) => Exit::Findings,
            Some(2) => Exit::Usage,
            _ => Exit::Blocked,
        })
    }

    fn output_cmd(&self) -> anyhow::Result<Exit> {
        let outputs = outputs::parse_redacted(&self.tf.output_json()?)?;
        match self.format {
            TableOrJson::Table => output::line(render::outputs_table(&outputs))?,
            TableOrJson::Json => output::line(render::outputs_json(&outputs))?,
        }
        Ok(Exit::Success)
    }

    async fn destroy_cmd(&self, g: &Globals, yes: bool, force: bool) -> anyhow::Result<Exit> {
        let (exit, plan) = self.make_plan(true)?;
        self.show(exit, &plan, &[])?;
        if exit == PlanExit::NoChanges || plan.changes.is_empty() {
            let _ = std::fs::remove_file(&self.planfile);
            return Ok(Exit::Success);
        }
        let buckets = doomed_buckets(&plan, g.config.aws.region.as_deref());
        let mut to_empty = Vec::new();
        for (name, region) in &buckets {
            let clients = AwsClients::load(&AwsSettings {
                region: region.clone(),
                endpoint_url: self.endpoint_url.clone(),
                ..g.config.aws.settings()
            })
            .await;
            let s3 = clients.s3();
            if bucket::holds_objects(&s3, name).await? {
                if !force {
                    return Err(TfError::Refused(format!(
                        "destroy refused: bucket {name} still holds objects (the raw zone); copy what you need, then rerun with --force to delete every object version and the bucket"
                    ))
                    .into());
                }
                to_empty.push((name.clone(), s3));
            }
        }
        if !yes {
            confirm(&plan)?;
        }
        for (name, s3) in &to_empty {
            let n = bucket::empty(s3, name).await?;
            tracing::warn!(bucket = %name, versions = n, "--force: deleted every object version");
        }
        tracing::info!("terraform apply (destroy) {PLAN_FILE}");
        self.tf.apply(&self.planfile)?;
        let _ = std::fs::remove_file(&self.planfile);
        let _ = std::fs::remove_file(&self.outputs_file);
        output::line(format_args!(
            "Destroy complete: {} resource(s) destroyed.",
            plan.changes.len()
        ))?;
        Ok(Exit::Success)
    }
}

/// Buckets the destroy plan deletes, with the region each lives in.
fn doomed_buckets(plan: &Plan, config_region: Option<&str>) -> Vec<(String, Option<String>)> {
    plan.changes
        .iter()
        .filter(|c| {
            c.resource_type == "aws_s3_bucket"
                && matches!(c.action, Action::Delete | Action::Replace)
        })
        .filter_map(|c| {
            let name = c
                .before
                .get("bucket")
                .or_else(|| c.before.get("id"))?
                .as_str()?
                .to_string();
            let region = c
                .before
                .get("region")
                .and_then(|r| r.as_str())
                .map(str::to_string)
                .or(config_region.map(str::to_string));
            Some((name, region))
        })
        .collect()
}

/// A typed confirmation on a terminal; off a terminal `--yes` is required.
fn confirm(plan: &Plan) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(TfError::NeedsYes.into());
    }
    output::write(|out| {
        write!(
            out,
            "Destroy the {} resource(s) above? Type `destroy` to confirm: ",
            plan.changes.len()
        )
    })?;
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|source| TfError::Io {
            action: "read the confirmation from",
            path: PathBuf::from("stdin"),
            source,
        })?;
    if line.trim() != "destroy" {
        return Err(TfError::Cancelled.into());
    }
    Ok(())
}
