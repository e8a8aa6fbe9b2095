//! Renderers: interchangeable sinks over one [`Report`] (STYLE.md pattern
//! 8). Each writes to an `io::Write`; only the command layer picks stdout.

pub mod json;
pub mod junit;
pub mod sarif;
pub mod table;

use std::io;

use super::report::Report;

/// The report formats; the command maps `--format` onto them, so the
/// renderers do not depend on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Junit,
    Sarif,
}

/// Writes `report` in `format`. `verbose` shows evidence of passing checks
/// in the table (json and junit always carry everything); `config` is where
/// SARIF places findings that are not in a terraform file.
pub fn render(
    report: &Report,
    format: Format,
    verbose: bool,
    config: &sarif::ConfigFile,
    out: &mut dyn io::Write,
) -> io::Result<()> {
    match format {
        Format::Table => table::render(report, verbose, out),
        Format::Json => json::render(report, out),
        Format::Junit => junit::render(report, out),
        Format::Sarif => sarif::render(report, config, out),
    }
}
