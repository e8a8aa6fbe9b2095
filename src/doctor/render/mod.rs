//! Renderers: interchangeable sinks over one [`Report`] (STYLE.md pattern
//! 8). Each writes to an `io::Write`; only the command layer picks stdout.

pub mod json;
pub mod junit;
pub mod table;

use std::io;

use super::report::Report;
use crate::cli::ReportFormat;

/// Writes `report` in `format`. `verbose` shows evidence of passing checks
/// in the table (json and junit always carry everything).
pub fn render(
    report: &Report,
    format: ReportFormat,
    verbose: bool,
    out: &mut dyn io::Write,
) -> io::Result<()> {
    match format {
        ReportFormat::Table => table::render(report, verbose, out),
        ReportFormat::Json => json::render(report, out),
        ReportFormat::Junit => junit::render(report, out),
    }
}
