//! `host.cloud-init`: did cloud-init (and so the user-data) finish cleanly?
//!
//! Output differs between versions, so parsing is split from deciding:
//! - 22.4+ has `cloud-init status --long --format json`; 22.2 (Amazon
//!   Linux 2023) rejects `--format` with an argparse usage error, so we
//!   fall back to the `key: value` text of `--long`.
//! - 23.4+ adds `extended_status` (`degraded done`), `recoverable_errors`
//!   and exit code 2 for recoverable errors.
//! - `status: error` with an empty error list happens, so neither the exit
//!   code nor the errors list alone decides.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{command_missing, transport_failure};
use crate::doctor::check::{CheckCtx, CheckFuture, Outcome};
use crate::doctor::transport::{CmdOutput, Transport};

pub const JSON_CMD: &str = "cloud-init status --long --format json";
pub const LONG_CMD: &str = "cloud-init status --long";
/// The plain form: fast, the same on every version; used by `--wait`.
pub const SHORT_CMD: &str = "cloud-init status";

/// What `cloud-init status` reported, whatever the version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CloudInitStatus {
    /// `status`: not run | not started | running | done | error | disabled.
    pub status: String,
    /// `extended_status` (23.4+), e.g. `degraded done`.
    pub extended_status: Option<String>,
    /// Unrecoverable errors (`errors`, or 22.2's `detail` lines on error).
    pub errors: Vec<String>,
    /// Recoverable errors as `LEVEL: message` (23.4+).
    pub recoverable_errors: Vec<String>,
    pub detail: Option<String>,
}

impl CloudInitStatus {
    pub fn degraded(&self) -> bool {
        self.extended_status
            .as_deref()
            .is_some_and(|s| s.contains("degraded"))
            || !self.recoverable_errors.is_empty()
    }
}

/// True when the tool rejected `--format` (cloud-init before 22.4).
pub fn format_unsupported(out: &CmdOutput) -> bool {
    let err = out.stderr.to_ascii_lowercase();
    !out.success()
        && (err.contains("unrecognized arguments") || err.contains("invalid choice"))
        && err.contains("format")
}

/// Parses `cloud-init status --long --format json` (22.4+).
pub fn parse_json(stdout: &str) -> Result<CloudInitStatus, String> {
    let v: Value =
        serde_json::from_str(stdout.trim()).map_err(|e| format!("not cloud-init JSON: {e}"))?;
    let status = v
        .get("status")
        .and_then(Value::as_str)
        .ok_or("cloud-init JSON has no `status`")?
        .to_string();
    let errors = v
        .get("errors")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(value_text).collect())
        .unwrap_or_default();
    let mut recoverable = Vec::new();
    if let Some(map) = v.get("recoverable_errors").and_then(Value::as_object) {
        for (level, msgs) in map {
            for m in msgs.as_array().into_iter().flatten() {
                recoverable.push(format!("{level}: {}", value_text(m)));
            }
        }
    }
    Ok(CloudInitStatus {
        status,
        extended_status: v
            .get("extended_status")
            .and_then(Value::as_str)
            .map(str::to_string),
        errors,
        recoverable_errors: recoverable,
        detail: v.get("detail").and_then(Value::as_str).map(str::to_string),
    })
}

fn value_text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// Parses the text of `cloud-init status --long` (every version; 22.2 prints
/// `detail:` on its own line with the value, or the errors, below it).
pub fn parse_long(stdout: &str) -> Result<CloudInitStatus, String> {
    let mut st = CloudInitStatus::default();
    let mut section = String::new();
    let mut level = String::new();
    let mut detail_lines: Vec<String> = Vec::new();
    for raw in stdout.lines() {
        if raw.trim().is_empty() || raw.trim().chars().all(|c| c == '.') {
            continue;
        }
        let line = raw.trim();
        if let Some(item) = line.strip_prefix("- ") {
            let item = item.trim().trim_matches('\'').to_string();
            match section.as_str() {
                "errors" => st.errors.push(item),
                "recoverable_errors" => st.recoverable_errors.push(format!("{level}: {item}")),
                "detail" => detail_lines.push(item),
                _ => {}
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':').filter(|(k, _)| is_key(k)) {
            if section == "recoverable_errors" && is_level(key) {
                level = key.to_string();
                continue;
            }
            let value = value.trim();
            section = key.to_string();
            match key {
                "status" => st.status = value.to_string(),
                "extended_status" => st.extended_status = Some(value.to_string()),
                "detail" if !value.is_empty() => st.detail = Some(value.to_string()),
                _ => {}
            }
            continue;
        }
        if section == "detail" {
            detail_lines.push(line.to_string());
        }
    }
    if st.status.is_empty() {
        return Err("no `status:` line in cloud-init output".to_string());
    }
    if !detail_lines.is_empty() {
        // 22.2 puts the errors under `detail:` when the status is error.
        if st.status == "error" && st.errors.is_empty() {
            st.errors = detail_lines
                .iter()
                .filter(|l| !l.starts_with("DataSource"))
                .cloned()
                .collect();
        }
        st.detail.get_or_insert_with(|| detail_lines.join(" "));
    }
    Ok(st)
}

fn is_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_level(k: &str) -> bool {
    matches!(k, "WARNING" | "DEPRECATED" | "ERROR" | "CRITICAL" | "INFO")
}

/// The cloud-init module named in an error line, normalised to the
/// dashed form (`scripts_user` and `scripts-user` are the same module).
pub fn failing_module(line: &str) -> Option<String> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            r#"(?:^\(['"]([a-z0-9_-]+)['"],|(?:Failed to run|Running) module ([a-z0-9_-]+))"#,
        )
        .unwrap()
    });
    let c = re.captures(line.trim())?;
    let m = c.get(1).or_else(|| c.get(2))?.as_str();
    Some(m.replace('_', "-"))
}

/// Decides the outcome from the parsed status and the tool's exit code.
pub fn decide(st: &CloudInitStatus, exit: Option<i32>) -> Outcome {
    let mut evidence = vec![format!(
        "status: {}{}",
        st.status,
        st.extended_status
            .as_deref()
            .filter(|e| *e != st.status)
            .map(|e| format!(" (extended_status: {e})"))
            .unwrap_or_default()
    )];
    if let Some(code) = exit {
        evidence.push(format!("exit code: {code}"));
    }
    evidence.extend(st.errors.iter().map(|e| format!("error: {e}")));
    evidence.extend(
        st.recoverable_errors
            .iter()
            .map(|e| format!("recoverable: {e}")),
    );
    let mut modules: Vec<String> = st
        .errors
        .iter()
        .chain(&st.recoverable_errors)
        .filter_map(|l| {
            failing_module(l).or_else(|| l.split_once(": ").and_then(|(_, m)| failing_module(m)))
        })
        .collect();
    modules.sort();
    modules.dedup();
    let named = if modules.is_empty() {
        String::new()
    } else {
        format!("; failing module: {}", modules.join(", "))
    };
    let outcome = match st.status.as_str() {
        "disabled" => return Outcome::skip("cloud-init is disabled on this host").with_evidence(evidence),
        "running" => Outcome::fail("cloud-init is still running")
            .with_remediation("wait for it: `openpay doctor --wait` (or `cloud-init status --wait` on the host)"),
        "not run" | "not started" | "not running" => Outcome::fail(format!(
            "cloud-init has not run ({})",
            st.status
        )),
        "error" if st.errors.is_empty() => Outcome::fail(format!(
            "cloud-init reports status: error with no error details{named}"
        ))
        .with_remediation(
            "the error list is empty, so read the logs: sudo tail -n 50 /var/log/cloud-init-output.log; sudo grep -n WARNING /var/log/cloud-init.log",
        ),
        "error" => Outcome::fail(format!(
            "cloud-init finished with {} error(s){named}",
            st.errors.len()
        )),
        "done" if !modules.is_empty() => {
            Outcome::fail(format!("cloud-init is done but a module failed{named}"))
        }
        "done" if exit == Some(1) => {
            Outcome::fail("cloud-init says done but exited 1 (unrecoverable error)")
        }
        "done" if st.degraded() || exit == Some(2) => Outcome::warn(format!(
            "cloud-init is done, degraded: {} recoverable error(s)",
            st.recoverable_errors.len()
        )),
        "done" => Outcome::pass("cloud-init is done, no errors"),
        other => Outcome::fail(format!("cloud-init reports an unknown status `{other}`")),
    };
    outcome.with_evidence(evidence)
}

/// Runs the check on one host.
pub fn run(ctx: CheckCtx) -> CheckFuture {
    Box::pin(async move {
        let out = match ctx.exec(JSON_CMD).await {
            Ok(o) => o,
            Err(e) => return transport_failure(JSON_CMD, e),
        };
        if command_missing(&out) {
            return Outcome::skip("no cloud-init on this host (command not found)");
        }
        let (cmd, out, parsed) = if format_unsupported(&out) {
            // cloud-init < 22.4 (Amazon Linux 2023 ships 22.2).
            let long = match ctx.exec(LONG_CMD).await {
                Ok(o) => o,
                Err(e) => return transport_failure(LONG_CMD, e),
            };
            let parsed = parse_long(&long.stdout);
            (LONG_CMD, long, parsed)
        } else {
            let parsed = parse_json(&out.stdout).or_else(|_| parse_long(&out.stdout));
            (JSON_CMD, out, parsed)
        };
        match parsed {
            Ok(st) => {
                let mut o = decide(&st, out.status);
                o.evidence.insert(0, format!("$ {cmd}"));
                o
            }
            Err(why) => Outcome::fail(format!("cannot read `{cmd}`: {why}")).with_evidence(
                std::iter::once(format!("$ {cmd} (exit {:?})", out.status)).chain(
                    out.stdout
                        .lines()
                        .chain(out.stderr.lines())
                        .take(10)
                        .map(str::to_string),
                ),
            ),
        }
    })
}

/// One poll of the plain `cloud-init status`: `Some(state)` or `None` when
/// cloud-init is absent or unreadable (nothing to wait for).
pub fn poll_state(transport: &dyn Transport, timeout: Duration) -> Option<String> {
    let out = transport.exec(SHORT_CMD, timeout).ok()?;
    if command_missing(&out) {
        return None;
    }
    parse_long(&out.stdout).ok().map(|s| s.status)
}

/// `--wait`: polls until cloud-init leaves `running` (or `not started`), or
/// `limit` passes. `progress` gets one line per poll for the stderr line.
/// Returns the last state seen.
pub fn wait_until_settled(
    transport: &dyn Transport,
    limit: Duration,
    interval: Duration,
    mut progress: impl FnMut(&str, Duration),
) -> Option<String> {
    let start = Instant::now();
    loop {
        let state = poll_state(transport, Duration::from_secs(15));
        let waiting = matches!(
            state.as_deref(),
            Some("running" | "not started" | "not run")
        );
        if !waiting || start.elapsed() >= limit {
            return state;
        }
        progress(state.as_deref().unwrap_or("unknown"), start.elapsed());
        std::thread::sleep(interval.min(limit.saturating_sub(start.elapsed())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::check::CheckStatus;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/doctor/cloud-init/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // Fixture files start with `#` comment lines citing their source.
        text.lines()
            .skip_while(|l| l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn v22_2_rejects_format_flag() {
        let out = CmdOutput {
            status: Some(2),
            stdout: String::new(),
            stderr: fixture("22.2-format-json.stderr"),
        };
        assert!(format_unsupported(&out));
        let ok = CmdOutput {
            status: Some(0),
            ..out.clone()
        };
        assert!(!format_unsupported(&ok));
    }

    #[test]
    fn v22_2_long_done() {
        let st = parse_long(&fixture("22.2-long-done.txt")).unwrap();
        assert_eq!(st.status, "done");
        assert!(st.errors.is_empty());
        assert_eq!(decide(&st, Some(0)).status, CheckStatus::Pass);
    }

    #[test]
    fn v22_2_long_error_names_scripts_user() {
        let st = parse_long(&fixture("22.2-long-error.txt")).unwrap();
        assert_eq!(st.status, "error");
        let o = decide(&st, Some(1));
        assert_eq!(o.status, CheckStatus::Fail);
        assert!(o.summary.contains("scripts-user"), "{}", o.summary);
    }

    #[test]
    fn v22_4_json_done() {
        let st = parse_json(&fixture("22.4-json-done.json")).unwrap();
        assert_eq!(st.status, "done");
        assert_eq!(decide(&st, Some(0)).status, CheckStatus::Pass);
    }

    #[test]
    fn v23_4_degraded_is_warn_with_exit_2() {
        let st = parse_json(&fixture("23.4-json-degraded.json")).unwrap();
        assert!(st.degraded());
        assert_eq!(st.recoverable_errors.len(), 4);
        let o = decide(&st, Some(2));
        assert_eq!(o.status, CheckStatus::Warn);
        assert!(o.evidence.iter().any(|e| e.contains("No template found")));
    }

    #[test]
    fn v23_4_scripts_user_failure_fails_and_is_named() {
        let st = parse_json(&fixture("23.4-json-error-scripts-user.json")).unwrap();
        let o = decide(&st, Some(1));
        assert_eq!(o.status, CheckStatus::Fail);
        assert!(o.summary.contains("scripts-user"), "{}", o.summary);
    }

    #[test]
    fn error_with_empty_errors_still_fails() {
        let st = parse_long(&fixture("24.1-long-error-empty.txt")).unwrap();
        assert_eq!(st.status, "error");
        assert!(st.errors.is_empty());
        let o = decide(&st, Some(0));
        assert_eq!(
            o.status,
            CheckStatus::Fail,
            "exit 0 must not hide status: error"
        );
        assert!(o.summary.contains("no error details"));
    }

    #[test]
    fn v24_1_long_and_json_done_and_running() {
        let st = parse_long(&fixture("24.1-long-done.txt")).unwrap();
        assert_eq!(st.status, "done");
        assert_eq!(st.extended_status.as_deref(), Some("done"));
        assert_eq!(decide(&st, Some(0)).status, CheckStatus::Pass);
        let st = parse_json(&fixture("24.1-json-done.json")).unwrap();
        assert_eq!(decide(&st, Some(0)).status, CheckStatus::Pass);
        let st = parse_long(&fixture("24.1-long-running.txt")).unwrap();
        assert_eq!(st.status, "running");
        assert_eq!(decide(&st, Some(0)).status, CheckStatus::Fail);
    }

    #[test]
    fn disabled_is_skip_and_garbage_is_error() {
        let st = parse_long("status: disabled\n").unwrap();
        assert_eq!(decide(&st, Some(0)).status, CheckStatus::Skip);
        assert!(parse_long("Traceback (most recent call last):\n").is_err());
        assert!(parse_json("{\"nostatus\": 1}").is_err());
    }

    #[test]
    fn module_names_normalised() {
        assert_eq!(
            failing_module("('scripts_user', RuntimeError('Runparts: 1 failures (runcmd) in /var/lib/cloud/instance/scripts'))").as_deref(),
            Some("scripts-user")
        );
        assert_eq!(
            failing_module(
                "Failed to run module scripts-user (scripts in /var/lib/cloud/instance/scripts)"
            )
            .as_deref(),
            Some("scripts-user")
        );
        assert_eq!(failing_module("No template found"), None);
    }
}
