//! The shape every check shares: a context in, an [`Outcome`] out.
//!
//! A check is a plain async function registered under its catalog id
//! (`doctor/checks/<name>.rs`); title, severity and remediation live in the
//! catalog (`checks/*.toml`), so the function only decides and explains.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::transport::{CmdOutput, Transport, TransportError};
use crate::aws::AwsClients;
use crate::config::Config;

/// The four results a check can have. `Skip` always carries a reason in
/// the outcome's summary: an audit must say why something was not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
    Skip,
}

impl CheckStatus {
    /// The marker people scan for in the table (flutter doctor style).
    pub fn marker(self) -> &'static str {
        match self {
            CheckStatus::Pass => "✓",
            CheckStatus::Warn => "!",
            CheckStatus::Fail => "✗",
            CheckStatus::Skip => "–",
        }
    }
}

/// A place in the repository a finding is written at (a terraform file
/// and line): where code scanning (`--format sarif`) shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceRef {
    /// Relative to the directory the doctor runs in, `/`-separated.
    pub file: String,
    /// 1-based; `None` when only the file is known.
    pub line: Option<u32>,
}

/// What one check decided and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub status: CheckStatus,
    /// One line: what was found.
    pub summary: String,
    /// The exact lines that decided it (tool output, log lines with numbers).
    pub evidence: Vec<String>,
    /// A fix specific to this finding; the catalog's generic remediation is
    /// shown when this is `None`.
    pub remediation: Option<String>,
    /// The check could not look at what it checks (no credentials): the
    /// answer is "unknown", which exits 3 like an unreachable host, not 1.
    pub cannot_evaluate: bool,
    /// Where in the repository the finding is written, one entry per
    /// offending place (empty when it is not in a file).
    pub locations: Vec<SourceRef>,
}

impl Outcome {
    fn new(status: CheckStatus, summary: impl Into<String>) -> Self {
        Self {
            status,
            summary: summary.into(),
            evidence: Vec::new(),
            remediation: None,
            cannot_evaluate: false,
            locations: Vec::new(),
        }
    }

    /// A failure that means "could not evaluate" (exit 3), not a finding.
    pub fn cannot_evaluate(mut self) -> Self {
        self.cannot_evaluate = true;
        self
    }
    pub fn pass(summary: impl Into<String>) -> Self {
        Self::new(CheckStatus::Pass, summary)
    }
    pub fn warn(summary: impl Into<String>) -> Self {
        Self::new(CheckStatus::Warn, summary)
    }
    pub fn fail(summary: impl Into<String>) -> Self {
        Self::new(CheckStatus::Fail, summary)
    }
    /// Not applicable here; `reason` says why (e.g. "no cloud-init on this host").
    pub fn skip(reason: impl Into<String>) -> Self {
        Self::new(CheckStatus::Skip, reason)
    }
    pub fn with_evidence<I, S>(mut self, lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.evidence.extend(lines.into_iter().map(Into::into));
        self
    }
    pub fn with_remediation(mut self, fix: impl Into<String>) -> Self {
        self.remediation = Some(fix.into());
        self
    }
    pub fn with_locations(mut self, places: impl IntoIterator<Item = SourceRef>) -> Self {
        self.locations.extend(places);
        self
    }
}

/// Options from the command line that some checks read.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// `--offline`: checks that need AWS are skipped with this as the reason.
    pub offline: bool,
    /// `--probe`: write/head/delete a real object under metadata/_doctor/.
    pub probe: bool,
    /// `--instance-id`: the instance whose security groups are checked.
    pub instance_id: Option<String>,
    /// The address of each `--host` as given (`ADDR` of `USER@ADDR:PORT`);
    /// empty when the doctor checks this machine. `net.ssh-allowlist` finds
    /// the instances behind them.
    pub hosts: Vec<String>,
    /// Directory holding terraform/ and .openpay/outputs.json (default: cwd).
    pub repo_dir: Option<std::path::PathBuf>,
}

/// Everything a check may touch. Cheap to clone, `'static`, so the runner
/// can spawn each check as its own task.
#[derive(Clone)]
pub struct CheckCtx {
    pub transport: Arc<dyn Transport>,
    pub config: Arc<Config>,
    /// `None` when offline or when no AWS configuration could be loaded.
    pub aws: Option<AwsClients>,
    pub options: Arc<CheckOptions>,
    /// The per-check deadline from the catalog, for each host call.
    pub timeout: Duration,
}

impl CheckCtx {
    /// Runs a command on the host without blocking the async runtime
    /// (transports are blocking: ssh2 is a synchronous library).
    pub async fn exec(&self, command: &str) -> Result<CmdOutput, TransportError> {
        let t = Arc::clone(&self.transport);
        let command = command.to_string();
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || t.exec(&command, timeout))
            .await
            .unwrap_or_else(|e| Err(TransportError::Io(format!("exec task failed: {e}"))))
    }

    /// Reads a file on the host; `Ok(None)` when it does not exist.
    pub async fn read_file(&self, path: &str) -> Result<Option<String>, TransportError> {
        let t = Arc::clone(&self.transport);
        let path = path.to_string();
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || t.read_file(&path, timeout))
            .await
            .unwrap_or_else(|e| Err(TransportError::Io(format!("read task failed: {e}"))))
    }
}

/// A registered check: its catalog id and the function that decides it.
pub type CheckFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;
pub type CheckFn = fn(CheckCtx) -> CheckFuture;
