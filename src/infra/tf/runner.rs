//! Runs terraform non-interactively in the stack directory: `-input=false`,
//! `TF_IN_AUTOMATION=1`, `-no-color` unless stderr is a terminal. Output is
//! captured (openpay renders its own tables); failures are turned into
//! typed errors: bad variable values (exit 2), a stale saved plan, a held
//! state lock (with its lock info), anything else with terraform's error
//! lines.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::TfError;
use super::binary::Binary;

/// What every terraform invocation shares.
#[derive(Debug, Clone)]
pub struct Terraform {
    pub binary: Binary,
    /// The stack directory (terraform's working directory).
    pub dir: PathBuf,
    /// `-var`, `-var-file` arguments, already absolute.
    pub var_args: Vec<String>,
    pub lock_timeout: Option<String>,
    pub color: bool,
}

/// How `plan -detailed-exitcode` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanExit {
    NoChanges,
    Changes,
}

impl Terraform {
    pub fn new(
        binary: Binary,
        dir: PathBuf,
        vars: &[String],
        var_files: &[PathBuf],
        cwd: &Path,
        lock_timeout: Option<String>,
    ) -> Self {
        let mut var_args = Vec::new();
        for f in var_files {
            let abs = if f.is_absolute() {
                f.clone()
            } else {
                cwd.join(f)
            };
            var_args.push(format!("-var-file={}", abs.display()));
        }
        for v in vars {
            var_args.push(format!("-var={v}"));
        }
        Self {
            binary,
            dir,
            var_args,
            lock_timeout,
            color: crate::logging::color_on_stderr(),
        }
    }

    fn command(&self, sub: &str) -> Command {
        let mut cmd = Command::new(&self.binary.path);
        cmd.current_dir(&self.dir)
            .arg(sub)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .stdin(std::process::Stdio::null());
        if !self.color {
            cmd.arg("-no-color");
        }
        cmd
    }

    fn run(&self, step: &str, mut cmd: Command) -> Result<Output, TfError> {
        tracing::debug!(?cmd, "running terraform {step}");
        let out = cmd.output().map_err(|source| TfError::Spawn {
            program: self.binary.path.display().to_string(),
            source,
        })?;
        tracing::debug!(
            step,
            status = ?out.status,
            stderr = %String::from_utf8_lossy(&out.stderr),
            "terraform finished"
        );
        Ok(out)
    }

    fn lock_args(&self, cmd: &mut Command) {
        if let Some(t) = &self.lock_timeout {
            cmd.arg(format!("-lock-timeout={t}"));
        }
    }

    /// `init` when the directory has not been initialised (no
    /// `.terraform/` or no lock file).
    pub fn init_if_needed(&self) -> Result<(), TfError> {
        if self.dir.join(".terraform").is_dir() && self.dir.join(".terraform.lock.hcl").is_file() {
            return Ok(());
        }
        self.init()
    }

    pub fn init(&self) -> Result<(), TfError> {
        let mut cmd = self.command("init");
        cmd.arg("-input=false");
        let out = self.run("init", cmd)?;
        check("init", &out)
    }

    /// `plan -out=PLANFILE -detailed-exitcode` (0 no changes, 2 changes,
    /// 1 error). Re-runs `init` once when terraform asks for it.
    pub fn plan(&self, planfile: &Path, destroy: bool) -> Result<PlanExit, TfError> {
        match self.plan_once(planfile, destroy) {
            Err(TfError::Failed { message, .. }) if message.contains("terraform init") => {
                tracing::info!("terraform asks for init; running it and planning again");
                self.init()?;
                self.plan_once(planfile, destroy)
            }
            other => other,
        }
    }

    fn plan_once(&self, planfile: &Path, destroy: bool) -> Result<PlanExit, TfError> {
        let mut cmd = self.command("plan");
        cmd.arg("-input=false")
            .arg("-detailed-exitcode")
            .arg(format!("-out={}", planfile.display()));
        if destroy {
            cmd.arg("-destroy");
        }
        self.lock_args(&mut cmd);
        cmd.args(&self.var_args);
        let out = self.run("plan", cmd)?;
        match out.status.code() {
            Some(0) => Ok(PlanExit::NoChanges),
            Some(2) => Ok(PlanExit::Changes),
            _ => Err(failure("plan", &out)),
        }
    }

    /// `show -json PLANFILE`.
    pub fn show_json(&self, planfile: &Path) -> Result<String, TfError> {
        let mut cmd = self.command("show");
        cmd.arg("-json").arg(planfile);
        let out = self.run("show", cmd)?;
        check("show -json", &out)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `apply PLANFILE`: applies exactly the saved plan, never a new one.
    pub fn apply(&self, planfile: &Path) -> Result<(), TfError> {
        let mut cmd = self.command("apply");
        cmd.arg("-input=false");
        self.lock_args(&mut cmd);
        cmd.arg(planfile);
        let out = self.run("apply", cmd)?;
        check("apply", &out)
    }

    /// `output -json` (clear text: redact with `outputs::parse_redacted`).
    pub fn output_json(&self) -> Result<String, TfError> {
        let mut cmd = self.command("output");
        cmd.arg("-json");
        let out = self.run("output", cmd)?;
        check("output -json", &out)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn check(step: &str, out: &Output) -> Result<(), TfError> {
    if out.status.success() {
        Ok(())
    } else {
        Err(failure(step, out))
    }
}

/// Turns a failed run into the most specific error terraform's text allows.
pub fn failure(step: &str, out: &Output) -> TfError {
    let stderr = strip_ansi(&String::from_utf8_lossy(&out.stderr));
    // terraform writes diagnostics to stderr; stdout holds the (partial)
    // plan rendering, which only helps when stderr says nothing.
    if stderr.contains("Error") {
        return classify_failure(step, &stderr);
    }
    let stdout = strip_ansi(&String::from_utf8_lossy(&out.stdout));
    classify_failure(step, &format!("{stderr}\n{stdout}"))
}

/// Pure part of [`failure`], tested on terraform's real messages.
pub fn classify_failure(step: &str, text: &str) -> TfError {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim_start_matches(['│', '╷', '╵', ' ']).trim_end())
        .collect();
    if text.contains("Saved plan is stale") {
        return TfError::StalePlan;
    }
    if text.contains("Error acquiring the state lock") {
        let info: Vec<String> = lines
            .iter()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                let k = k.trim();
                ["ID", "Path", "Operation", "Who", "Version", "Created"]
                    .contains(&k)
                    .then(|| format!("{k}: {}", v.trim()))
            })
            .collect();
        return TfError::Locked {
            lock_info: if info.is_empty() {
                "no lock info given".into()
            } else {
                info.join(", ")
            },
        };
    }
    if text.contains("Invalid value for variable")
        || text.contains("No value for required variable")
    {
        static VAR: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        let var = VAR
            .get_or_init(|| regex::Regex::new(r#"variable "([A-Za-z0-9_-]+)""#).expect("var regex"))
            .captures(text)
            .map(|c| c[1].to_string())
            .unwrap_or_default();
        let message = error_lines(&lines)
            .replace("Invalid value for variable ", "")
            .replace("No value for required variable ", "no value given; ");
        return TfError::Invalid {
            input: if var.is_empty() {
                "terraform variable".into()
            } else {
                format!("variable {var} (--var / --var-file)")
            },
            message,
        };
    }
    TfError::Failed {
        step: step.to_string(),
        message: error_lines(&lines),
    }
}

/// The "Error: ..." headlines and the explanation under each, as one line.
fn error_lines(lines: &[&str]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut in_error = false;
    for l in lines {
        if let Some(head) = l.strip_prefix("Error: ") {
            in_error = true;
            out.push(head.trim().to_string());
            continue;
        }
        if in_error {
            let t = l.trim();
            let code_line = t
                .split_once(": ")
                .is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()));
            if code_line || t.starts_with("This was checked by") {
                continue;
            }
            if t.is_empty()
                || t.starts_with("on ")
                || t.starts_with("with ")
                || t.contains(" line ")
                || t.starts_with("var.")
                || t.starts_with("├")
            {
                continue;
            }
            if t.starts_with("Error ") || t.starts_with("Warning: ") {
                in_error = false;
                continue;
            }
            out.push(t.to_string());
        }
    }
    if out.is_empty() {
        let tail: Vec<&str> = lines
            .iter()
            .rev()
            .filter(|l| !l.trim().is_empty())
            .take(3)
            .copied()
            .collect();
        return tail.into_iter().rev().collect::<Vec<_>>().join(" ");
    }
    let mut s = out.join(" ");
    if s.len() > 1200 {
        s.truncate(1200);
        s.push_str(" ...");
    }
    s
}

fn strip_ansi(s: &str) -> String {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"\x1b\[[0-9;]*m").expect("ansi regex"))
        .replace_all(s, "")
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_error_is_usage_and_names_the_variable() {
        let text = "\nError: Invalid value for variable\n\n  on variables.tf line 27:\n  27: variable \"ssh_allowed_cidrs\" {\n    ├────────────────\n    │ var.ssh_allowed_cidrs is list of string with 1 element\n\nssh_allowed_cidrs must never contain 0.0.0.0/0 or ::/0: SSH open to the\ninternet is refused.\n\nThis was checked by the validation rule at variables.tf:49,3-13.\n";
        let e = classify_failure("plan", text);
        let msg = e.to_string();
        assert!(matches!(e, TfError::Invalid { .. }), "{msg}");
        assert!(msg.contains("ssh_allowed_cidrs"), "{msg}");
        assert!(msg.contains("never contain 0.0.0.0/0"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert!(!msg.contains("27:") && !msg.contains("checked by"), "{msg}");
    }

    #[test]
    fn stale_plan_and_lock() {
        let e = classify_failure(
            "apply",
            "Error: Saved plan is stale\n\nThe given plan file can no longer be applied",
        );
        assert!(matches!(e, TfError::StalePlan));
        let lock = "Error: Error acquiring the state lock\n\nError message: resource temporarily unavailable\nLock Info:\n  ID:        4f1c\n  Path:      terraform.tfstate\n  Operation: OperationTypeApply\n  Who:       ci@runner\n  Version:   1.11.4\n  Created:   2026-11-25 20:00:00 UTC\n  Info:\n";
        let e = classify_failure("apply", lock);
        let msg = e.to_string();
        assert!(
            msg.contains("ID: 4f1c") && msg.contains("Who: ci@runner"),
            "{msg}"
        );
        assert!(msg.contains("--lock-timeout"), "{msg}");
    }

    #[test]
    fn other_errors_keep_the_headline() {
        let text = strip_ansi(
            "\x1b[31mError: \x1b[0mcreating S3 Bucket: AccessDenied\n\n  with aws_s3_bucket.lake,\n",
        );
        let e = classify_failure("plan", &text);
        let msg = failure_text(e);
        assert!(msg.contains("creating S3 Bucket: AccessDenied"), "{msg}");
    }

    fn failure_text(e: TfError) -> String {
        e.to_string()
    }
}
