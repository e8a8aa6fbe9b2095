//! Logs go to stderr through `tracing`, as text for people or JSON lines
//! for machines (`--log-format json`); stdout is kept for reports.
//!
//! Colour only on a terminal: a log file, an Airflow task log or a CI log
//! would otherwise fill with `ESC[2m`-style escapes. `NO_COLOR` (any
//! non-empty value, https://no-color.org) turns it off on a terminal too.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `OPENPAY_LOG` is not a valid env-filter directive.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid environment variable OPENPAY_LOG `{value}`: {message}; use an env-filter directive such as `debug`, `openpay=debug` or `openpay::pipeline=trace,warn`, or unset it"
)]
pub struct LogError {
    value: String,
    message: String,
}

/// Installs the global subscriber. `OPENPAY_LOG` (an env-filter directive)
/// overrides the level chosen by `-v`; an invalid one is refused rather
/// than silently replaced by the default.
pub fn init(verbose: u8, format: LogFormat) -> Result<(), LogError> {
    let default = match verbose {
        0 => "openpay=info,warn",
        1 => "openpay=debug,info",
        _ => "trace",
    };
    let filter = match std::env::var("OPENPAY_LOG") {
        Ok(value) if !value.trim().is_empty() => {
            EnvFilter::try_new(&value).map_err(|e| LogError {
                message: e.to_string(),
                value,
            })?
        }
        _ => EnvFilter::new(default),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color_on_stderr())
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok(())
}

/// Whether stderr may carry ANSI colour: a terminal, and no `NO_COLOR`.
pub fn color_on_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
