//! The command-line surface, exactly as DESIGN.md's contract fixes it.
//!
//! These structs hold what the user typed and do no I/O (ripgrep's
//! "low args"); `config::Config` merges them with the file and environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use crate::logging::LogFormat;
pub use crate::pipeline::Dataset;

#[derive(Debug, Parser)]
#[command(
    name = "openpay",
    version,
    about = "Ingest CMS Open Payments into an S3 raw zone, once the host and the AWS account are provably ready"
)]
pub struct Cli {
    /// Configuration file (default: ./openpay.toml when present).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// More detail: -v shows evidence of passing checks and debug logs.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download a year of Open Payments and land it in the raw zone.
    Run(RunArgs),
    /// Check that a host (this one, or others over SSH) and the AWS account are ready.
    Doctor(DoctorArgs),
    /// Drive the Terraform stack in terraform/ (plan, apply the saved plan, outputs, destroy).
    Tf(TfArgs),
    /// IAM tools.
    Iam(IamArgs),
    /// Turn allowlist patterns like 197.210.77.* into CIDRs, or test membership.
    Cidr(CidrArgs),
    /// Read past runs back from the destination (metadata/runs/).
    Runs(RunsArgs),
    /// Check that a run's objects still have the size and checksum its audit records.
    Verify(VerifyArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Program year to ingest (repeatable).
    #[arg(long = "year", value_name = "YEAR", required = true)]
    pub years: Vec<i32>,
    /// Dataset to ingest (repeatable; default general-payments).
    #[arg(long = "dataset", value_enum, value_name = "DATASET")]
    pub datasets: Vec<Dataset>,
    /// Destination: s3://BUCKET[/PREFIX] or a local directory (default: the configured bucket, else ./lake).
    #[arg(long, value_name = "s3://BUCKET[/PREFIX]|PATH")]
    pub dest: Option<String>,
    /// Where downloads and the run lock live (default ./data).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// CMS source: an https base URL, or a local directory laid out like it.
    #[arg(long, value_name = "URL|DIR")]
    pub source_url: Option<String>,
    /// Parallel file transfers (default 4).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Replace destination objects whose content differs.
    #[arg(long)]
    pub overwrite: bool,
    /// Download and verify only; do not write the destination.
    #[arg(long)]
    pub no_upload: bool,
    /// Do not run the preflight checks (recorded in the manifest).
    #[arg(long)]
    pub skip_preflight: bool,
    /// Print the plan (files, URLs, sizes, keys) and touch nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run id (default: UTC YYYY-MM-DDTHH-MM-SSZ).
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// Also write the run's end state as JSON to PATH (for orchestrators).
    #[arg(long, value_name = "PATH")]
    pub summary_json: Option<PathBuf>,
    /// Output on stdout: a table, or the run's JSON summary (logs stay on stderr).
    #[arg(long, value_enum, default_value_t = TableOrJson::Table)]
    pub format: TableOrJson,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Junit,
    /// SARIF 2.1.0, for GitHub code scanning.
    Sarif,
}

#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Check a remote host over SSH (repeatable); none = this machine.
    #[arg(long = "host", value_name = "USER@ADDR[:PORT]")]
    pub hosts: Vec<String>,
    /// Private key for SSH (default: ~/.ssh/config, the agent, ~/.ssh/id_*).
    #[arg(long, value_name = "PATH")]
    pub identity_file: Option<PathBuf>,
    /// Poll until cloud-init is done (default 600 seconds).
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "600")]
    pub wait: Option<u64>,
    /// Run only these checks (repeatable).
    #[arg(long = "only", value_name = "ID")]
    pub only: Vec<String>,
    /// Skip these checks (repeatable).
    #[arg(long = "skip", value_name = "ID")]
    pub skip: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// List the check catalog and exit.
    #[arg(long)]
    pub list_checks: bool,
    /// Explain one check: what it runs, why, and how to fix it.
    #[arg(long, value_name = "ID")]
    pub explain: Option<String>,
    /// Trust and record an unknown SSH host key (like OpenSSH accept-new).
    #[arg(long)]
    pub accept_new_host_key: bool,
    /// EC2 instance whose security groups net.ssh-allowlist checks.
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,
    /// Skip every check that needs AWS.
    #[arg(long)]
    pub offline: bool,
    /// Also write, head and delete a real object under metadata/_doctor/.
    #[arg(long)]
    pub probe: bool,
}

#[derive(Debug, Clone, Args)]
pub struct TfArgs {
    #[command(subcommand)]
    pub action: TfAction,
    #[command(flatten)]
    pub common: TfCommon,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TfAction {
    /// Plan and save the plan; show a change table and the risk gate.
    Plan {
        /// Exit 1 when the plan has changes (drift detection in CI).
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Plan, gate, and apply exactly the saved plan; then run the doctor.
    Apply,
    /// Print the stack outputs (sensitive values redacted).
    Output,
    /// Plan a destroy, show it, and destroy after confirmation.
    Destroy {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Destroy the bucket even when it still holds objects.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Args)]
pub struct TfCommon {
    /// Terraform working directory.
    #[arg(long, global = true, default_value = "terraform", value_name = "DIR")]
    pub dir: PathBuf,
    /// Passed through to terraform (repeatable).
    #[arg(long = "var-file", global = true, value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
    /// Passed through to terraform (repeatable).
    #[arg(long = "var", global = true, value_name = "K=V")]
    pub vars: Vec<String>,
    /// Point the AWS provider at this endpoint (or AWS_ENDPOINT_URL).
    #[arg(long, global = true, value_name = "URL", env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Apply even when the risk gate finds risky changes.
    #[arg(long, global = true)]
    pub allow_risky: bool,
    /// Do not run the doctor after apply.
    #[arg(long, global = true)]
    pub no_doctor: bool,
    /// Terraform state lock timeout, e.g. 60s.
    #[arg(long, global = true, value_name = "DURATION")]
    pub lock_timeout: Option<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = TableOrJson::Table)]
    pub format: TableOrJson,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableOrJson {
    Table,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct IamArgs {
    #[command(subcommand)]
    pub action: IamAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum IamAction {
    /// Compare the live role with the policy in terraform/policies/.
    Drift(DriftArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DriftArgs {
    /// Role to read (default: [aws] role_name, else outputs.json's role_name).
    #[arg(long, value_name = "NAME")]
    pub role: Option<String>,
    /// Policy template (default: terraform/policies/runner.json.tftpl).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Template variable (repeatable), e.g. bucket=NAME.
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DriftFormat::Text)]
    pub format: DriftFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriftFormat {
    Text,
    Json,
    /// SARIF 2.1.0, for GitHub code scanning.
    Sarif,
}

#[derive(Debug, Clone, Args)]
pub struct CidrArgs {
    /// Patterns (197.210.77.*, 197.210.*, 10.0.0.0/24, 2001:db8::/32) or, with --contains, CIDRs.
    #[arg(value_name = "PATTERN", required = true)]
    pub patterns: Vec<String>,
    /// Answer whether ADDR lies in any of the given CIDRs (exit 0 yes, 1 no).
    #[arg(long, value_name = "ADDR")]
    pub contains: Option<String>,
}

/// Where run records are read from: `--dest` like `run`'s.
#[derive(Debug, Clone, Args)]
pub struct RecordsDest {
    /// s3://BUCKET[/PREFIX] or a local lake directory (default: the configured bucket, else ./lake).
    #[arg(long, value_name = "s3://BUCKET[/PREFIX]|PATH")]
    pub dest: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TableOrJson::Table)]
    pub format: TableOrJson,
}

#[derive(Debug, Clone, Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub action: RunsAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum RunsAction {
    /// The runs recorded in the destination, newest first.
    List(RunsListArgs),
    /// One run: its manifest and per-file audits.
    Show(RunsShowArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RunsListArgs {
    #[command(flatten)]
    pub dest: RecordsDest,
    /// Only entries with this status (`unreadable` / `foreign`: damaged entries).
    #[arg(long, value_enum, value_name = "STATUS")]
    pub status: Option<StatusFilter>,
    /// Only runs covering this program year.
    #[arg(long, value_name = "YEAR")]
    pub year: Option<i32>,
    /// Only runs covering this dataset.
    #[arg(long, value_enum, value_name = "DATASET")]
    pub dataset: Option<Dataset>,
    /// At most N entries (after filtering).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

/// What `runs list --status` selects: every status a manifest may carry
/// (DESIGN.md), and the two labels of entries that are not readable runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum StatusFilter {
    Running,
    Completed,
    CompletedWithFindings,
    Partial,
    Failed,
    Blocked,
    Unreadable,
    Foreign,
}

impl StatusFilter {
    /// The label as manifests and `runs list` write it.
    pub fn label(self) -> &'static str {
        match self {
            StatusFilter::Running => "running",
            StatusFilter::Completed => "completed",
            StatusFilter::CompletedWithFindings => "completed_with_findings",
            StatusFilter::Partial => "partial",
            StatusFilter::Failed => "failed",
            StatusFilter::Blocked => "blocked",
            StatusFilter::Unreadable => "unreadable",
            StatusFilter::Foreign => "foreign",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct RunsShowArgs {
    /// The run id (as `openpay runs list` shows it).
    #[arg(value_name = "RUN_ID")]
    pub run_id: String,
    #[command(flatten)]
    pub dest: RecordsDest,
}

#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["run_id", "latest"])))]
pub struct VerifyArgs {
    /// The run whose objects to check.
    #[arg(value_name = "RUN_ID")]
    pub run_id: Option<String>,
    /// Check the newest run recorded in the destination.
    #[arg(long)]
    pub latest: bool,
    #[command(flatten)]
    pub dest: RecordsDest,
}
