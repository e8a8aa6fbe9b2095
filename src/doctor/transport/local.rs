//! This machine as a [`Transport`]: `sh -c` with a deadline, and plain
//! file reads.
//!
//! Test seam: a directory can be put first on the commands' `PATH` (stand-in
//! `cloud-init`, `docker`, `git` scripts) and absolute file paths can be
//! mapped under a fake root, so a test lays out a whole fake host in a
//! temp dir. Through the binary, `OPENPAY_TEST_HOST_ROOT` sets the root.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{CmdOutput, Transport, TransportError};

/// The variable the binary reads to map file paths under a fake root.
pub const HOST_ROOT_ENV: &str = "OPENPAY_TEST_HOST_ROOT";

#[derive(Debug, Clone, Default)]
pub struct LocalTransport {
    path_prepend: Option<PathBuf>,
    vars: Vec<(String, String)>,
    root: Option<PathBuf>,
}

impl LocalTransport {
    pub fn new() -> Self {
        Self::default()
    }

    /// Commands see `path_prepend` first on `PATH`, plus `vars`.
    pub fn with_env(path_prepend: impl Into<PathBuf>, vars: Vec<(String, String)>) -> Self {
        Self {
            path_prepend: Some(path_prepend.into()),
            vars,
            root: None,
        }
    }

    /// Absolute paths given to `read_file` are read under `root`.
    pub fn with_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Some(root.into());
        self
    }

    /// This machine, with the fake root from [`HOST_ROOT_ENV`] when set.
    pub fn from_process_env() -> Self {
        match std::env::var_os(HOST_ROOT_ENV).filter(|v| !v.is_empty()) {
            Some(root) => Self::new().with_root(root),
            None => Self::new(),
        }
    }

    fn host_path(&self, path: &str) -> PathBuf {
        match &self.root {
            Some(root) => root.join(path.trim_start_matches('/')),
            None => PathBuf::from(path),
        }
    }
}

impl Transport for LocalTransport {
    fn label(&self) -> String {
        "local".to_string()
    }

    fn exec(&self, command: &str, timeout: Duration) -> Result<CmdOutput, TransportError> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills the whole pipeline.
            .process_group(0);
        if let Some(dir) = &self.path_prepend {
            let old = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{old}", dir.display()));
        }
        cmd.envs(self.vars.iter().map(|(k, v)| (k, v)));
        let mut child = cmd
            .spawn()
            .map_err(|e| TransportError::Io(format!("cannot start sh for `{command}`: {e}")))?;
        let stdout = child.stdout.take().map(reader);
        let stderr = child.stderr.take().map(reader);
        let deadline = Instant::now() + timeout;
        let mut nap = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    kill_group(child.id());
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(TransportError::Timeout {
                        command: command.to_string(),
                        timeout,
                    });
                }
                Ok(None) => {
                    std::thread::sleep(nap);
                    nap = (nap * 2).min(Duration::from_millis(20));
                }
                Err(e) => return Err(TransportError::Io(format!("waiting for `{command}`: {e}"))),
            }
        };
        let collect = |h: Option<std::thread::JoinHandle<String>>| {
            h.and_then(|h| h.join().ok()).unwrap_or_default()
        };
        Ok(CmdOutput {
            status: status.code(),
            stdout: collect(stdout),
            stderr: collect(stderr),
        })
    }

    /// Local reads do not block on anything but the disk; the deadline is
    /// for remote transports.
    fn read_file(&self, path: &str, _timeout: Duration) -> Result<Option<String>, TransportError> {
        match std::fs::read(self.host_path(path)) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TransportError::Io(format!("cannot read {path}: {e}"))),
        }
    }
}

fn reader<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Kills the process group led by `pid` (std has no killpg; `kill` does).
fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_commands_with_status_and_streams() {
        let t = LocalTransport::new();
        let o = t
            .exec("echo out; echo err >&2; exit 3", Duration::from_secs(5))
            .unwrap();
        assert_eq!(o.status, Some(3));
        assert_eq!(o.stdout, "out\n");
        assert_eq!(o.stderr, "err\n");
        let o = t
            .exec("definitely-not-a-command-xyz", Duration::from_secs(5))
            .unwrap();
        assert_eq!(o.status, Some(127));
    }

    #[test]
    fn timeout_kills_the_pipeline() {
        let t = LocalTransport::new();
        let start = Instant::now();
        let e = t
            .exec("sleep 30 | cat", Duration::from_millis(200))
            .unwrap_err();
        assert!(matches!(e, TransportError::Timeout { .. }), "{e}");
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn path_prepend_vars_and_root() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let tool = bin.join("fake-tool");
        std::fs::write(&tool, "#!/bin/sh\necho \"fake $GREETING\"\n").unwrap();
        std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::create_dir_all(dir.path().join("var/log")).unwrap();
        std::fs::write(dir.path().join("var/log/x.log"), "hello").unwrap();
        let t = LocalTransport::with_env(&bin, vec![("GREETING".into(), "hi".into())])
            .with_root(dir.path());
        let o = t.exec("fake-tool", Duration::from_secs(5)).unwrap();
        assert_eq!(o.stdout, "fake hi\n");
        let to = Duration::from_secs(1);
        assert_eq!(
            t.read_file("/var/log/x.log", to).unwrap().as_deref(),
            Some("hello")
        );
        assert_eq!(t.read_file("/var/log/missing.log", to).unwrap(), None);
    }
}
