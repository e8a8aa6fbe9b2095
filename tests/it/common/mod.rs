//! Shared test kit: real servers on loopback, each owned by one test and
//! stopped on drop. A server that cannot start fails the test loudly.

#![allow(dead_code)]

pub mod cms;
pub mod ec2;
pub mod iam;
pub mod moto;
pub mod proxy;
pub mod sarif;
pub mod sshd;

use std::path::PathBuf;

/// Reads a variable that `scripts/test.sh` exports; panics with the fix
/// when it is missing, so a test never silently passes without its server.
pub fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: run the suite through scripts/test.sh, which installs and exports it"
        ),
    }
}

/// Runs a loopback server on a thread and runtime of its own (a test's
/// runtime may block or end first): binds 127.0.0.1:0, hands the listener
/// and the stop signal to `serve`, and returns the address once bound and
/// the sender that stops it when dropped. Connections still open when it
/// stops (stalled ones, on purpose) die with the runtime.
pub fn spawn_server<F, Fut>(
    what: &'static str,
    serve: F,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>)
where
    F: FnOnce(tokio::net::TcpListener, tokio::sync::oneshot::Receiver<()>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("bind the {what}: {e}"));
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            serve(listener, rx).await;
        });
        rt.shutdown_background();
    });
    let addr = addr_rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("the {what} did not start"));
    (addr, tx)
}

/// Every run manifest under a work dir's `metadata/runs/`, oldest first
/// (run ids sort by time); none when no run has started.
pub fn run_manifests(work_dir: &std::path::Path) -> Vec<serde_json::Value> {
    let runs = work_dir.join("metadata/runs");
    let mut dirs: Vec<_> = std::fs::read_dir(&runs)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.iter()
        .map(|d| serde_json::from_slice(&std::fs::read(d.join("manifest.json")).unwrap()).unwrap())
        .collect()
}

/// A free TCP port on 127.0.0.1 (bound, then released for the server).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `openpay` binary under test, with no ambient AWS or openpay settings.
pub fn openpay() -> std::process::Command {
    let mut cmd = std::process::Command::new(bin_path());
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("OPENPAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

pub fn bin_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_openpay"))
}

/// The repository root (for terraform/, checks/, bootstrap/ fixtures).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A process's exit code (-1 when killed by a signal).
pub fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A process's stdout and stderr, for assertion messages.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A process's stdout as JSON; panics with its output when it is not.
pub fn stdout_json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}
