//! The tool family: `host.git`, `host.docker`, `host.compose`, `host.buildx`.
//!
//! Each parser is a pure function over what the tool printed, so it is
//! tested against real outputs of many versions; the `run` functions only
//! execute the commands and hand the output over.

use super::{command_missing, transport_failure};
use crate::doctor::check::{CheckCtx, CheckFuture, Outcome};
use crate::doctor::transport::CmdOutput;
use crate::doctor::version::{find_version, parse_minimum};

pub const GIT_CMD: &str = "git --version";
pub const DOCKER_CLIENT_CMD: &str = "docker --version";
pub const DOCKER_SERVER_CMD: &str = "docker version --format '{{.Server.Version}}'";
pub const COMPOSE_CMD: &str = "docker compose version";
pub const COMPOSE_V1_CMD: &str = "docker-compose version";
pub const BUILDX_CMD: &str = "docker buildx version";

fn first_lines(out: &CmdOutput) -> Vec<String> {
    out.stdout
        .lines()
        .chain(out.stderr.lines())
        .filter(|l| !l.trim().is_empty())
        .take(4)
        .map(|l| l.trim_end().to_string())
        .collect()
}

fn evidence(cmd: &str, out: &CmdOutput) -> Vec<String> {
    let mut e = vec![format!("$ {cmd} (exit {})", exit_text(out))];
    e.extend(first_lines(out));
    e
}

fn exit_text(out: &CmdOutput) -> String {
    out.status
        .map_or_else(|| "killed".to_string(), |c| c.to_string())
}

pub fn decide_git(out: &CmdOutput) -> Outcome {
    if command_missing(out) {
        return Outcome::fail("git is not installed").with_evidence(evidence(GIT_CMD, out));
    }
    match find_version(&out.stdout).filter(|_| out.success()) {
        Some(v) => Outcome::pass(format!("git {v}")).with_evidence(evidence(GIT_CMD, out)),
        None => Outcome::fail("`git --version` did not report a version")
            .with_evidence(evidence(GIT_CMD, out)),
    }
}

/// Why the docker daemon could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonProblem {
    /// The socket exists but this user may not open it.
    PermissionDenied,
    /// No daemon behind the socket (not started, or the socket is absent).
    NotRunning,
    Other,
}

/// Classifies docker's error text. The wording changed over releases:
/// "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is
/// the docker daemon running?" (≤ 28), "failed to connect to the docker API
/// at unix:///var/run/docker.sock; check if the path is correct and if the
/// daemon is running" (29), and "permission denied while trying to connect
/// to the Docker daemon socket" / "... to the docker API" for permissions.
pub fn classify_daemon_error(stderr: &str) -> DaemonProblem {
    let s = stderr.to_ascii_lowercase();
    if s.contains("permission denied") {
        DaemonProblem::PermissionDenied
    } else if s.contains("cannot connect to the docker daemon")
        || s.contains("is the docker daemon running")
        || s.contains("failed to connect to the docker api")
        || s.contains("daemon is running")
        || s.contains("no such file or directory")
        || s.contains("connection refused")
    {
        DaemonProblem::NotRunning
    } else {
        DaemonProblem::Other
    }
}

pub fn decide_docker(client: &CmdOutput, server: Option<&CmdOutput>) -> Outcome {
    if command_missing(client) {
        return Outcome::fail("docker is not installed")
            .with_evidence(evidence(DOCKER_CLIENT_CMD, client));
    }
    let Some(cv) = find_version(&client.stdout).filter(|_| client.success()) else {
        return Outcome::fail("`docker --version` did not report a version")
            .with_evidence(evidence(DOCKER_CLIENT_CMD, client));
    };
    let Some(server) = server else {
        return Outcome::fail(format!("docker client {cv}, daemon not checked"));
    };
    let mut ev = evidence(DOCKER_CLIENT_CMD, client);
    ev.extend(evidence(DOCKER_SERVER_CMD, server));
    if server.success() {
        if let Some(sv) = find_version(&server.stdout) {
            return Outcome::pass(format!("docker client {cv}, daemon {sv}")).with_evidence(ev);
        }
    }
    match classify_daemon_error(&format!("{}\n{}", server.stderr, server.stdout)) {
        DaemonProblem::PermissionDenied => Outcome::fail(format!(
            "docker client {cv}, but permission denied on /var/run/docker.sock"
        ))
        .with_evidence(ev)
        .with_remediation(
            "add the user to the docker group, then log out and back in:\n  sudo usermod -aG docker \"$USER\"",
        ),
        DaemonProblem::NotRunning => Outcome::fail(format!(
            "docker client {cv}, but the daemon is not running"
        ))
        .with_evidence(ev)
        .with_remediation("start the daemon and enable it at boot:\n  sudo systemctl enable --now docker"),
        DaemonProblem::Other => {
            Outcome::fail(format!("docker client {cv}, but the daemon did not answer")).with_evidence(ev)
        }
    }
}

/// `plugin` is `docker compose version`; `legacy` is `docker-compose
/// version`, consulted only when the plugin is missing.
pub fn decide_compose(plugin: &CmdOutput, legacy: Option<&CmdOutput>) -> Outcome {
    if plugin.success() {
        if let Some(v) = find_version(&plugin.stdout) {
            let ev = evidence(COMPOSE_CMD, plugin);
            return if v.major >= 2 {
                Outcome::pass(format!("docker compose {v}")).with_evidence(ev)
            } else {
                Outcome::fail(format!(
                    "docker compose reports version {v}, need v2 or later"
                ))
                .with_evidence(ev)
            };
        }
    }
    let mut ev = evidence(COMPOSE_CMD, plugin);
    if let Some(legacy) = legacy.filter(|l| l.success() && !command_missing(l)) {
        ev.extend(evidence(COMPOSE_V1_CMD, legacy));
        let v = find_version(&legacy.stdout).map_or("unknown".to_string(), |v| v.to_string());
        return Outcome::fail(format!(
            "only the standalone docker-compose {v} is installed; the `docker compose` plugin is missing"
        ))
        .with_evidence(ev);
    }
    Outcome::fail("docker compose is not installed").with_evidence(ev)
}

pub fn decide_buildx(out: &CmdOutput, minimum: &str) -> Outcome {
    let Some(min) = parse_minimum(minimum) else {
        return Outcome::fail(format!(
            "invalid [doctor] min_buildx `{minimum}` in the configuration"
        ))
        .with_remediation("set min_buildx to a version such as \"0.17.0\"");
    };
    let ev = evidence(BUILDX_CMD, out);
    match find_version(&out.stdout).filter(|_| out.success()) {
        Some(v) if v >= min => Outcome::pass(format!("buildx {v} (>= {min})")).with_evidence(ev),
        Some(v) => Outcome::fail(format!("buildx {v} is older than {min}")).with_evidence(ev),
        None => Outcome::fail("docker buildx is not installed").with_evidence(ev),
    }
}

pub fn run_git(ctx: CheckCtx) -> CheckFuture {
    Box::pin(async move {
        match ctx.exec(GIT_CMD).await {
            Ok(out) => decide_git(&out),
            Err(e) => transport_failure(GIT_CMD, e),
        }
    })
}

pub fn run_docker(ctx: CheckCtx) -> CheckFuture {
    Box::pin(async move {
        let client = match ctx.exec(DOCKER_CLIENT_CMD).await {
            Ok(o) => o,
            Err(e) => return transport_failure(DOCKER_CLIENT_CMD, e),
        };
        if !client.success() {
            return decide_docker(&client, None);
        }
        match ctx.exec(DOCKER_SERVER_CMD).await {
            Ok(server) => decide_docker(&client, Some(&server)),
            Err(e) => transport_failure(DOCKER_SERVER_CMD, e),
        }
    })
}

pub fn run_compose(ctx: CheckCtx) -> CheckFuture {
    Box::pin(async move {
        let plugin = match ctx.exec(COMPOSE_CMD).await {
            Ok(o) => o,
            Err(e) => return transport_failure(COMPOSE_CMD, e),
        };
        if plugin.success() {
            return decide_compose(&plugin, None);
        }
        match ctx.exec(COMPOSE_V1_CMD).await {
            Ok(legacy) => decide_compose(&plugin, Some(&legacy)),
            Err(e) => transport_failure(COMPOSE_V1_CMD, e),
        }
    })
}

pub fn run_buildx(ctx: CheckCtx) -> CheckFuture {
    Box::pin(async move {
        match ctx.exec(BUILDX_CMD).await {
            Ok(out) => decide_buildx(&out, &ctx.config.doctor.min_buildx),
            Err(e) => transport_failure(BUILDX_CMD, e),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::check::CheckStatus;

    /// Reads `tests/fixtures/doctor/tools/<name>`; `#` lines cite the source.
    fn fx(name: &str) -> String {
        let p = format!(
            "{}/tests/fixtures/doctor/tools/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let t = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
        let mut s = t
            .lines()
            .skip_while(|l| l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        s.push('\n');
        s
    }

    fn ok(stdout: String) -> CmdOutput {
        CmdOutput {
            status: Some(0),
            stdout,
            stderr: String::new(),
        }
    }

    fn err(code: i32, stderr: String) -> CmdOutput {
        CmdOutput {
            status: Some(code),
            stdout: String::new(),
            stderr,
        }
    }

    #[test]
    fn git_versions() {
        let o = decide_git(&ok(fx("git-2.40.1.txt")));
        assert_eq!(o.status, CheckStatus::Pass);
        assert_eq!(o.summary, "git 2.40.1");
        let o = decide_git(&err(127, "sh: 1: git: not found\n".into()));
        assert_eq!(o.status, CheckStatus::Fail);
        assert!(o.summary.contains("not installed"));
    }

    #[test]
    fn docker_client_versions_are_lenient() {
        for (f, want) in [
            ("docker-25.0.8-version.txt", "25.0.8"),
            ("docker-24.0.7-ubuntu-version.txt", "24.0.7"),
            ("docker-29-version.txt", "29.1.1"),
        ] {
            let o = decide_docker(&ok(fx(f)), Some(&ok("27.3.1\n".into())));
            assert_eq!(o.status, CheckStatus::Pass, "{f}");
            assert!(
                o.summary.starts_with(&format!("docker client {want},")),
                "{f}: {}",
                o.summary
            );
        }
    }

    #[test]
    fn daemon_down_vs_permission_denied_across_versions() {
        let client = ok(fx("docker-25.0.8-version.txt"));
        for (f, want) in [
            ("docker-25-daemon-down.stderr", DaemonProblem::NotRunning),
            ("docker-29-daemon-down.stderr", DaemonProblem::NotRunning),
            (
                "docker-25-permission-denied.stderr",
                DaemonProblem::PermissionDenied,
            ),
            (
                "docker-29-permission-denied.stderr",
                DaemonProblem::PermissionDenied,
            ),
        ] {
            assert_eq!(classify_daemon_error(&fx(f)), want, "{f}");
            let o = decide_docker(&client, Some(&err(1, fx(f))));
            assert_eq!(o.status, CheckStatus::Fail, "{f}");
            let fix = o.remediation.unwrap_or_default();
            match want {
                DaemonProblem::PermissionDenied => {
                    assert!(fix.contains("usermod -aG docker"), "{f}")
                }
                _ => assert!(fix.contains("systemctl enable --now docker"), "{f}"),
            }
        }
    }

    #[test]
    fn compose_v2_and_v5_pass_v1_only_fails() {
        for f in [
            "compose-v2.24.5-desktop.txt",
            "compose-v2.29.7.txt",
            "compose-v5.txt",
        ] {
            let o = decide_compose(&ok(fx(f)), None);
            assert_eq!(o.status, CheckStatus::Pass, "{f}: {}", o.summary);
        }
        let missing = err(1, fx("docker-compose-not-a-command.stderr"));
        let o = decide_compose(&missing, Some(&ok(fx("compose-v1.29.2.txt"))));
        assert_eq!(o.status, CheckStatus::Fail);
        assert!(o.summary.contains("docker-compose 1.29.2"), "{}", o.summary);
        let o = decide_compose(
            &missing,
            Some(&err(127, "docker-compose: command not found".into())),
        );
        assert_eq!(o.summary, "docker compose is not installed");
        let unknown = err(1, fx("docker-29-unknown-command.stderr"));
        assert_eq!(decide_compose(&unknown, None).status, CheckStatus::Fail);
    }

    #[test]
    fn buildx_minimum() {
        let o = decide_buildx(&ok(fx("buildx-v0.17.1.txt")), "0.17.0");
        assert_eq!(o.status, CheckStatus::Pass, "{}", o.summary);
        let o = decide_buildx(&ok(fx("buildx-v0.12.0.txt")), "0.17.0");
        assert_eq!(o.status, CheckStatus::Fail);
        assert!(o.summary.contains("older than 0.17.0"), "{}", o.summary);
        let o = decide_buildx(&ok(fx("buildx-v0.12.0.txt")), "0.12");
        assert_eq!(o.status, CheckStatus::Pass);
        assert_eq!(
            decide_buildx(&ok("x".into()), "soon").status,
            CheckStatus::Fail
        );
        let o = decide_buildx(&err(1, fx("docker-buildx-not-a-command.stderr")), "0.17.0");
        assert!(o.summary.contains("not installed"));
    }
}
