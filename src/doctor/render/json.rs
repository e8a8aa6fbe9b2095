//! `--format json`: the [`Report`] as one pretty-printed JSON document.
//! The schema (with `schema_version`) is documented in docs/doctor.md.

use std::io;

use crate::doctor::report::Report;

pub fn render(report: &Report, out: &mut dyn io::Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}
