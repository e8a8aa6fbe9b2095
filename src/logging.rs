//! Logs go to stderr through `tracing`, as text for people or JSON lines
//! for machines (`--log-format json`); stdout is kept for reports.

use tracing_subscriber::EnvFilter;

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. `OPENPAY_LOG` (an env-filter directive)
/// overrides the level chosen by `-v`.
pub fn init(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "openpay=info,warn",
        1 => "openpay=debug,info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("OPENPAY_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
