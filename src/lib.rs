//! openpay: CMS Open Payments into an S3 raw zone, once the host and the AWS
//! account are provably ready.
//!
//! The binary is a thin shell over [`run`]. Modules follow DESIGN.md's
//! nouns: `pipeline` (source, download, manifest, store), `doctor` (checks,
//! runner, transports, reports) and `infra` (terraform, IAM policy model,
//! drift, CIDR). `pipeline` reaches `doctor` only through the preflight.

pub mod aws;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod exit;
pub mod infra;
pub mod logging;
pub mod output;
pub mod pipeline;
pub mod sarif;

use cli::{Cli, Command};
use config::Config;
use exit::Exit;

/// What every command gets besides its own arguments.
#[derive(Debug, Clone)]
pub struct Globals {
    pub config: Config,
    /// `--config`, else `openpay.toml` (where a fix to the configuration
    /// goes, even before the file exists).
    pub config_file: std::path::PathBuf,
    pub verbose: u8,
    pub log_format: cli::LogFormat,
}

/// Runs one parsed command line and returns its exit class.
pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    let config = Config::load(cli.config.as_deref())?;
    let globals = Globals {
        config,
        config_file: cli.config.clone().unwrap_or_else(|| "openpay.toml".into()),
        verbose: cli.verbose,
        log_format: cli.log_format,
    };
    match cli.command {
        Command::Run(args) => pipeline::command::run(&globals, args).await,
        Command::Doctor(args) => doctor::command::run(&globals, args).await,
        Command::Tf(args) => infra::tf::command::run(&globals, args).await,
        Command::Iam(args) => match args.action {
            cli::IamAction::Drift(a) => infra::drift::command::run(&globals, a).await,
        },
        Command::Cidr(args) => infra::cidr::command(&args),
        Command::Runs(args) => pipeline::runs::command::runs(&globals, args).await,
        Command::Verify(args) => pipeline::runs::command::verify(&globals, args).await,
    }
}
