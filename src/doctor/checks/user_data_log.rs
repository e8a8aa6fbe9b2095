//! `host.user-data-log`: failure signatures in the bootstrap's logs.
//!
//! User-data failures are silent: a `dnf install` of a package that is not
//! in the repos or a `command not found` leaves the host "up". We read
//! `/var/log/user-data.log` (our bootstrap tees into it; missing = warn)
//! and `/var/log/cloud-init-output.log`, and quote every matching line
//! with its number.

use std::sync::OnceLock;

use regex::Regex;

use super::transport_failure;
use crate::doctor::check::{CheckCtx, CheckFuture, Outcome};

pub const USER_DATA_LOG: &str = "/var/log/user-data.log";
pub const CLOUD_INIT_OUTPUT_LOG: &str = "/var/log/cloud-init-output.log";

/// Evidence is capped so a log full of errors stays readable.
const MAX_QUOTED: usize = 20;

/// One matching log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    pub text: String,
    /// Which signature matched (for the summary).
    pub kind: &'static str,
}

impl Finding {
    pub fn quote(&self) -> String {
        format!("{}:{}: {}", self.file, self.line, self.text)
    }
}

fn signatures() -> &'static [(&'static str, Regex)] {
    static SIGS: OnceLock<Vec<(&'static str, Regex)>> = OnceLock::new();
    SIGS.get_or_init(|| {
        [
            ("module failed", r"Failed to run module \S+"),
            ("command not found", r"(?i)command not found|: not found$"),
            (
                "package not found",
                r"No match for argument|Unable to find a match|No package \S+ available|Unable to locate package",
            ),
            (
                "non-zero exit",
                r"(?i)exit(?:ed with)? (?:status|code)[: ]+[1-9]\d*|returned non-zero exit status|non-zero exit",
            ),
        ]
        .into_iter()
        .map(|(k, re)| (k, Regex::new(re).unwrap()))
        .collect()
    })
}

/// Every line of `text` that carries a failure signature.
pub fn scan(file: &str, text: &str) -> Vec<Finding> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let (kind, _) = signatures().iter().find(|(_, re)| re.is_match(l))?;
            Some(Finding {
                file: file.to_string(),
                line: i + 1,
                text: l.trim_end().to_string(),
                kind,
            })
        })
        .collect()
}

/// Decides from the two logs' contents (`None` = file missing).
pub fn decide(user_data: Option<&str>, cloud_init_output: Option<&str>) -> Outcome {
    if user_data.is_none() && cloud_init_output.is_none() {
        return Outcome::skip(format!(
            "neither {USER_DATA_LOG} nor {CLOUD_INIT_OUTPUT_LOG} exists: not a cloud-init provisioned host"
        ));
    }
    let mut findings = Vec::new();
    let mut read = Vec::new();
    for (path, text) in [
        (USER_DATA_LOG, user_data),
        (CLOUD_INIT_OUTPUT_LOG, cloud_init_output),
    ] {
        if let Some(t) = text {
            read.push(format!("{path}: {} lines", t.lines().count()));
            findings.extend(scan(path, t));
        }
    }
    if !findings.is_empty() {
        let mut kinds: Vec<&str> = findings.iter().map(|f| f.kind).collect();
        kinds.sort();
        kinds.dedup();
        let mut evidence: Vec<String> = findings
            .iter()
            .take(MAX_QUOTED)
            .map(Finding::quote)
            .collect();
        if findings.len() > MAX_QUOTED {
            evidence.push(format!("… and {} more", findings.len() - MAX_QUOTED));
        }
        return Outcome::fail(format!(
            "{} failure line(s) in the user-data logs ({})",
            findings.len(),
            kinds.join(", ")
        ))
        .with_evidence(evidence);
    }
    if user_data.is_none() {
        return Outcome::warn(format!(
            "{USER_DATA_LOG} is missing (the bootstrap should write it); {CLOUD_INIT_OUTPUT_LOG} is clean"
        ))
        .with_evidence(read)
        .with_remediation(
            "make the user-data script log itself: exec > >(tee -a /var/log/user-data.log) 2>&1",
        );
    }
    Outcome::pass("no failure signatures in the user-data logs").with_evidence(read)
}

pub fn run(ctx: CheckCtx) -> CheckFuture {
    Box::pin(async move {
        let user_data = match ctx.read_file(USER_DATA_LOG).await {
            Ok(t) => t,
            Err(e) => return transport_failure(&format!("read {USER_DATA_LOG}"), e),
        };
        let output = match ctx.read_file(CLOUD_INIT_OUTPUT_LOG).await {
            Ok(t) => t,
            Err(e) => return transport_failure(&format!("read {CLOUD_INIT_OUTPUT_LOG}"), e),
        };
        decide(user_data.as_deref(), output.as_deref())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::check::CheckStatus;

    fn fixture(name: &str) -> String {
        let p = format!(
            "{}/tests/fixtures/doctor/logs/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let t = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
        t.lines()
            .skip_while(|l| l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn real_cloud_init_output_with_command_not_found() {
        let log = fixture("cloud-init-output-23.2-scripts-user.log");
        let f = scan(CLOUD_INIT_OUTPUT_LOG, &log);
        assert!(
            f.iter()
                .any(|x| x.kind == "command not found" && x.line == 2),
            "{f:?}"
        );
        assert!(f.iter().any(|x| x.kind == "module failed"), "{f:?}");
        let o = decide(Some("ok\n"), Some(&log));
        assert_eq!(o.status, CheckStatus::Fail);
        assert!(
            o.evidence[0].starts_with("/var/log/cloud-init-output.log:2: "),
            "{:?}",
            o.evidence
        );
    }

    #[test]
    fn dnf_no_match_is_found() {
        let log = fixture("user-data-dnf-no-match.log");
        let f = scan(USER_DATA_LOG, &log);
        assert!(f.iter().any(|x| x.kind == "package not found"), "{f:?}");
        assert_eq!(decide(Some(&log), None).status, CheckStatus::Fail);
    }

    #[test]
    fn clean_logs_pass_missing_user_data_warns_none_skips() {
        let clean = "Cloud-init v. 22.2.2 finished at Tue, 12 Dec 2023 14:41:00 +0000. Datasource DataSourceEc2.  Up 30.1 seconds\n";
        assert_eq!(
            decide(Some("installing git\ndone\n"), Some(clean)).status,
            CheckStatus::Pass
        );
        assert_eq!(decide(None, Some(clean)).status, CheckStatus::Warn);
        assert_eq!(decide(None, None).status, CheckStatus::Skip);
    }

    #[test]
    fn exits_and_sh_not_found() {
        let f = scan(
            "x",
            "+ compose up\nsh: 1: docker-compose: not found\nscript exited with code 3\nexit code: 0\n",
        );
        assert_eq!(f.iter().map(|x| x.line).collect::<Vec<_>>(), vec![2, 3]);
    }
}
