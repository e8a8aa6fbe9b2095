//! `openpay doctor` through the real binary, against a fake host laid out
//! in a temp dir: stand-in `cloud-init`, `docker`, `git` scripts first on
//! PATH (and nothing else of the machine's tools), log files under a fake
//! root (`OPENPAY_TEST_HOST_ROOT`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::openpay;

const CLOUD_INIT_DONE_JSON: &str = r#"{
  "boot_status_code": "enabled-by-generator",
  "datasource": "ec2",
  "detail": "DataSourceEc2Local",
  "errors": [],
  "extended_status": "done",
  "last_update": "Wed, 13 Mar 2024 18:46:26 +0000",
  "recoverable_errors": {},
  "stage": null,
  "status": "done"
}"#;

struct FakeHost {
    dir: tempfile::TempDir,
}

impl FakeHost {
    /// Only `sh` and a few coreutils from the machine, so the real
    /// docker/git of the test machine can never leak into a result.
    fn empty() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in ["bin", "sys", "root/var/log"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        for tool in ["sh", "sleep", "cat", "kill"] {
            let real = ["/bin", "/usr/bin"]
                .iter()
                .map(|d| Path::new(d).join(tool))
                .find(|p| p.exists())
                .unwrap_or_else(|| panic!("{tool} not found in /bin or /usr/bin"));
            std::os::unix::fs::symlink(real, dir.path().join("sys").join(tool)).unwrap();
        }
        Self { dir }
    }

    /// Every check passes: cloud-init done, clean logs, git, docker with a
    /// running daemon, compose v2, buildx 0.17.1.
    fn healthy() -> Self {
        let h = Self::empty();
        h.tool(
            "cloud-init",
            &format!(
                "case \"$*\" in\n  \"status --long --format json\") cat <<'J'\n{CLOUD_INIT_DONE_JSON}\nJ\n  ;;\n  status) echo 'status: done' ;;\n  *) echo \"unexpected: $*\" >&2; exit 64 ;;\nesac"
            ),
        );
        h.tool("git", "echo 'git version 2.40.1'");
        h.docker(&[]);
        h.file(
            "/var/log/user-data.log",
            "+ dnf install -y git docker\nComplete!\n",
        );
        h.file(
            "/var/log/cloud-init-output.log",
            "Cloud-init v. 22.2.2 finished at Wed, 25 Nov 2026 10:00:00 +0000. Datasource DataSourceEc2.  Up 31.20 seconds\n",
        );
        h
    }

    /// A stand-in `docker`; `overrides` replace the answer for a `"$1 $2"` key.
    fn docker(&self, overrides: &[(&str, &str)]) {
        let mut arms: Vec<(String, String)> = vec![
            (
                "--version ".into(),
                "echo 'Docker version 27.3.1, build ce12230'".into(),
            ),
            ("version --format".into(), "echo '27.3.1'".into()),
            (
                "compose version".into(),
                "echo 'Docker Compose version v2.29.7'".into(),
            ),
            (
                "buildx version".into(),
                "echo 'github.com/docker/buildx v0.17.1 257815a'".into(),
            ),
        ];
        for (k, v) in overrides {
            arms.retain(|(key, _)| key != k);
            arms.insert(0, (k.to_string(), v.to_string()));
        }
        let body: String = arms
            .iter()
            .map(|(k, v)| format!("  \"{k}\") {v} ;;\n"))
            .collect();
        self.tool(
            "docker",
            &format!("case \"$1 $2\" in\n{body}  *) echo \"unexpected: $*\" >&2; exit 64 ;;\nesac"),
        );
    }

    fn tool(&self, name: &str, body: &str) {
        let path = self.dir.path().join("bin").join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }

    fn remove_tool(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join("bin").join(name)).unwrap();
    }

    fn file(&self, path: &str, text: &str) {
        let p = self.root().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn doctor(&self, args: &[&str]) -> Command {
        let mut cmd = openpay();
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            self.dir.path().join("sys").display()
        );
        // The fake host has no AWS account: account checks are `skip`
        // (`--offline`); tests/it/awschecks.rs covers them against moto.
        cmd.arg("doctor")
            .arg("--offline")
            .args(args)
            .env("PATH", path)
            .env("OPENPAY_TEST_HOST_ROOT", self.root())
            .current_dir(self.dir.path());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.doctor(args).output().unwrap()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    report["hosts"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn doctor_healthy_fake_host_passes_with_its_checks_running_at_once() {
    let host = FakeHost::healthy();
    // git, compose and buildx each wait at a barrier until all three have
    // started: run one after another, the first would wait out its check
    // timeout and fail. No clock is read, so a busy machine cannot flake it.
    let dir = host.dir.path().display().to_string();
    let barrier = |me: &str| {
        format!(
            "echo > '{dir}/at-{me}'; i=0; while [ ! -e '{dir}/at-git' ] || [ ! -e '{dir}/at-compose' ] || [ ! -e '{dir}/at-buildx' ]; do i=$((i+1)); [ $i -gt 80 ] && exit 99; sleep 0.1; done;"
        )
    };
    host.tool(
        "git",
        &format!("{} echo 'git version 2.40.1'", barrier("git")),
    );
    let compose = format!(
        "{} echo 'Docker Compose version v2.29.7'",
        barrier("compose")
    );
    let buildx = format!(
        "{} echo 'github.com/docker/buildx v0.17.1 257815a'",
        barrier("buildx")
    );
    host.docker(&[("compose version", &compose), ("buildx version", &buildx)]);
    let out = host.run(&[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    for id in [
        "host.cloud-init",
        "host.user-data-log",
        "host.git",
        "host.docker",
        "host.compose",
        "host.buildx",
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("✓ {id} "))),
            "{id} not passing:\n{text}"
        );
    }
    assert!(text.contains("6 passed, 0 warning(s), 0 failed"), "{text}");
    assert!(text.contains("ready (exit 0)"), "{text}");
}

#[test]
fn doctor_json_report_follows_schema_and_catalog_order() {
    let host = FakeHost::healthy();
    let out = host.run(&["--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["exit_code"], 0);
    assert_eq!(r["hosts"][0]["label"], "local");
    assert_eq!(r["hosts"][0]["reachable"], true);
    let ids: Vec<String> = statuses(&r).into_iter().map(|(i, _)| i).collect();
    assert_eq!(
        ids,
        [
            "host.cloud-init",
            "host.user-data-log",
            "host.git",
            "host.docker",
            "host.compose",
            "host.buildx"
        ]
    );
    let git = &r["hosts"][0]["checks"][2];
    assert_eq!(git["summary"], "git 2.40.1");
    assert_eq!(git["level"], "required");
    assert!(git["duration_ms"].is_u64());
    assert!(git["remediation"].is_null(), "no fix on a pass");
    assert_eq!(r["summary"]["pass"], 6);
}

#[test]
fn doctor_failing_host_exits_1_with_evidence_and_fixes() {
    let host = FakeHost::healthy();
    host.remove_tool("git");
    host.docker(&[(
        "version --format",
        "echo 'permission denied while trying to connect to the docker API at unix:///var/run/docker.sock' >&2; exit 1",
    )]);
    let out = host.run(&[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(text.contains("✗ host.git"), "{text}");
    assert!(text.contains("git is not installed"), "{text}");
    assert!(
        text.contains("sudo dnf install -y git"),
        "catalog fix shown:\n{text}"
    );
    assert!(
        text.contains("permission denied on /var/run/docker.sock"),
        "{text}"
    );
    assert!(text.contains("usermod -aG docker"), "{text}");
    assert!(
        text.contains("│ permission denied while trying"),
        "evidence:\n{text}"
    );
    assert!(text.contains("NOT ready (exit 1)"), "{text}");
}

#[test]
fn doctor_cloud_init_22_2_fallback_and_failed_user_data() {
    let host = FakeHost::healthy();
    // cloud-init 22.2: no --format; the error is under `detail:`.
    host.tool(
        "cloud-init",
        "case \"$*\" in\n  *--format*) echo 'usage: /usr/bin/cloud-init [-h] [--version] [--file FILES] [--debug] [--force]' >&2\n    echo '/usr/bin/cloud-init: error: unrecognized arguments: --format json' >&2; exit 2 ;;\n  \"status --long\") printf 'status: error\\ntime: Thu, 01 Jan 1970 00:02:05 +0000\\ndetail:\\n%s\\n' \"('scripts-user', RuntimeError('Runparts: 1 failures (part-001) in 1 attempted commands'))\"; exit 1 ;;\n  status) echo 'status: error'; exit 1 ;;\nesac",
    );
    host.file(
        "/var/log/user-data.log",
        "+ dnf install -y git docker docker-compose-plugin\nNo match for argument: docker-compose-plugin\nError: Unable to find a match: docker-compose-plugin\n",
    );
    let out = host.run(&["--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let r = json(&out);
    let ci = &r["hosts"][0]["checks"][0];
    assert_eq!(ci["status"], "fail");
    assert!(
        ci["summary"].as_str().unwrap().contains("scripts-user"),
        "{ci}"
    );
    assert!(
        ci["evidence"][0]
            .as_str()
            .unwrap()
            .contains("cloud-init status --long"),
        "fallback command named: {ci}"
    );
    let log = &r["hosts"][0]["checks"][1];
    assert_eq!(log["status"], "fail");
    let ev: Vec<&str> = log["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        ev.contains(&"/var/log/user-data.log:2: No match for argument: docker-compose-plugin"),
        "{ev:?}"
    );
    assert_eq!(r["summary"]["required_failed"], 2);
}

#[test]
fn doctor_junit_has_a_suite_per_host_and_failures() {
    let host = FakeHost::healthy();
    host.docker(&[(
        "buildx version",
        "echo 'github.com/docker/buildx v0.12.0 542e5d810e4a1a155684f5f3c5bd7e797632a12f'",
    )]);
    std::fs::remove_file(host.root().join("var/log/user-data.log")).unwrap();
    let out = host.run(&["--format", "junit"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let xml = stdout(&out);
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(
        xml.contains("<testsuite name=\"local\" tests=\"6\""),
        "{xml}"
    );
    // 6 host checks, plus the 4 account/repo checks, skipped offline.
    assert_eq!(xml.matches("<testcase ").count(), 10, "{xml}");
    assert!(xml.contains("tests=\"10\" skipped=\"4\""), "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
    assert!(xml.contains("buildx 0.12.0 is older than 0.17.0"), "{xml}");
    // user-data.log missing is a warning: passes in JUnit, noted in system-out.
    assert!(
        xml.contains("warning: /var/log/user-data.log is missing"),
        "{xml}"
    );
}

#[test]
fn doctor_compose_v1_only_fails_with_the_plugin_fix() {
    let host = FakeHost::healthy();
    host.docker(&[(
        "compose version",
        "echo \"docker: 'compose' is not a docker command.\" >&2; echo \"See 'docker --help'\" >&2; exit 1",
    )]);
    host.tool(
        "docker-compose",
        "echo 'docker-compose version 1.29.2, build 5becea4c'",
    );
    let out = host.run(&["--only", "host.compose"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("only the standalone docker-compose 1.29.2"),
        "{text}"
    );
    assert!(text.contains("/usr/local/lib/docker/cli-plugins"), "{text}");
    assert!(!text.contains("host.git"), "--only limits the run:\n{text}");
}

#[test]
fn doctor_hung_tool_fails_that_check_only() {
    let host = FakeHost::healthy();
    host.docker(&[("buildx version", "exec sleep 600")]);
    let started = Instant::now();
    let out = host.run(&["--format", "json"]);
    let elapsed = started.elapsed();
    let r = json(&out);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let buildx = &r["hosts"][0]["checks"][5];
    assert_eq!(buildx["id"], "host.buildx");
    assert_eq!(buildx["status"], "fail");
    assert!(
        buildx["summary"].as_str().unwrap().contains("timed out")
            || buildx["summary"]
                .as_str()
                .unwrap()
                .contains("did not finish"),
        "{buildx}"
    );
    for (id, status) in statuses(&r) {
        if id != "host.buildx" {
            assert_eq!(status, "pass", "{id} should not be affected");
        }
    }
    // bounded by the 10 s catalog timeout, not by the 600 s tool
    assert!(
        elapsed < Duration::from_secs(120),
        "bounded by the catalog timeout, took {elapsed:?}"
    );
}

#[test]
fn doctor_skip_and_unknown_ids() {
    let host = FakeHost::healthy();
    host.remove_tool("git");
    let out = host.run(&["--skip", "host.git"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(!stdout(&out).contains("host.git"));
    let out = host.run(&["--skip", "host.gti"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("--skip host.gti") && err.contains("host.git"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
}

#[test]
fn doctor_list_checks_and_explain() {
    let host = FakeHost::empty();
    let out = host.run(&["--list-checks"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.contains("host.cloud-init") && text.contains("PREFLIGHT"),
        "{text}"
    );
    // -v shows the evidence of passing checks too; without it, none.
    let host = FakeHost::healthy();
    let quiet = stdout(&host.run(&["--only", "host.git"]));
    assert!(!quiet.contains("│ git version 2.40.1"), "{quiet}");
    let verbose = stdout(&host.run(&["--only", "host.git", "-v"]));
    assert!(verbose.contains("│ git version 2.40.1"), "{verbose}");
    let out = host.run(&["--explain", "host.compose"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("docker compose version"), "{text}");
    assert!(text.contains("/usr/local/lib/docker/cli-plugins"), "{text}");
    let out = host.run(&["--explain", "compose"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("did you mean host.compose"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn doctor_unreachable_host_is_one_result_exit_3() {
    let host = FakeHost::healthy();
    // Port 1 on loopback: nothing listens there.
    let out = host.run(&["--host", "nobody@127.0.0.1:1", "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let r = json(&out);
    let h = &r["hosts"][0];
    assert_eq!(h["reachable"], false);
    assert!(h["error"].as_str().unwrap().contains("127.0.0.1"), "{h}");
    assert_eq!(
        h["checks"].as_array().unwrap().len(),
        0,
        "no wall of failures"
    );
    assert_eq!(r["summary"]["unreachable_hosts"], 1);
    let out = host.run(&["--host", "nobody@127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(3));
    let text = stdout(&out);
    assert!(text.contains("✗ unreachable:"), "{text}");
    assert!(text.contains("1 host(s) unreachable"), "{text}");
    let out = host.run(&["--host", "nobody@127.0.0.1:1", "--format", "junit"]);
    let xml = stdout(&out);
    assert!(xml.contains("type=\"unreachable\""), "{xml}");
}

#[test]
fn doctor_wait_polls_until_cloud_init_is_done() {
    let host = FakeHost::healthy();
    let counter = host.dir.path().join("polls");
    host.tool(
        "cloud-init",
        &format!(
            "case \"$*\" in\n  status) n=0; [ -f '{c}' ] && read n < '{c}'; n=$((n+1)); echo $n > '{c}'\n    if [ $n -le 2 ]; then echo 'status: running'; else echo 'status: done'; fi ;;\n  \"status --long --format json\") n=0; [ -f '{c}' ] && read n < '{c}'\n    if [ $n -le 2 ]; then s=running; else s=done; fi\n    printf '{{\"status\": \"%s\", \"errors\": [], \"recoverable_errors\": {{}}}}\\n' $s ;;\nesac",
            c = counter.display()
        ),
    );
    let out = host.run(&["--wait=30", "--only", "host.cloud-init"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{}\n{err}", stdout(&out));
    assert!(
        err.contains("waiting for cloud-init on local: running"),
        "{err}"
    );
    assert!(err.contains("cloud-init on local: done"), "{err}");
    let polls: u32 = std::fs::read_to_string(&counter)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(polls, 3, "polled until it left running");
    // Bounded: with cloud-init stuck in running, --wait=1 gives up and the
    // check fails.
    std::fs::write(&counter, "-100\n").unwrap();
    let started = Instant::now();
    let out = host.run(&["--wait=1", "--only", "host.cloud-init"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("cloud-init is still running"));
    // bounded (stuck in running, an unbounded wait never returns)
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn doctor_bad_min_buildx_config_is_exit_2() {
    let host = FakeHost::healthy();
    let out = host
        .doctor(&[])
        .env("OPENPAY_DOCTOR_MIN_BUILDX", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("min_buildx `soon`"), "{err}");
    let out = host
        .doctor(&["--only", "host.buildx"])
        .env("OPENPAY_DOCTOR_MIN_BUILDX", "0.18")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "0.17.1 < 0.18: {}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("older than 0.18.0"),
        "{}",
        stdout(&out)
    );
}

/// House rules of the doctor's module boundaries, read from the source:
/// only the command edge knows the command line, and IAM is read through
/// the shared `infra::iam` reader, never through the drift command's code.
#[test]
fn doctor_code_imports_neither_the_cli_nor_drift() {
    let root = crate::common::repo_root().join("src/doctor");
    let mut files = vec![root.clone()];
    let mut offenders = Vec::new();
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let rel = p.strip_prefix(&root).unwrap().display().to_string();
        let text = std::fs::read_to_string(&p).unwrap();
        for (n, line) in text.lines().enumerate() {
            let cli = line.contains("crate::cli") && rel != "command.rs";
            if cli || line.contains("infra::drift") {
                offenders.push(format!("src/doctor/{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}
