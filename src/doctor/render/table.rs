//! The default human output: one line per check with a ✓ ! ✗ – marker,
//! the evidence and the fix under each failure or warning, and a summary
//! line. Plain aligned text (no box drawing) so it survives `ssh`, logs
//! and copy-paste into tickets.

use std::io;

use crate::doctor::check::CheckStatus;
use crate::doctor::report::{CheckResult, Report};

pub fn render(report: &Report, verbose: bool, out: &mut dyn io::Write) -> io::Result<()> {
    let width = report
        .all_results()
        .map(|r| r.id.chars().count())
        .max()
        .unwrap_or(0);
    for host in &report.hosts {
        writeln!(out, "{}", host.label)?;
        if let Some(err) = &host.error {
            writeln!(out, "  ✗ unreachable: {err}")?;
        }
        for r in &host.checks {
            check(out, r, width, verbose)?;
        }
        writeln!(out)?;
    }
    if !report.shared.is_empty() {
        writeln!(out, "account")?;
        for r in &report.shared {
            check(out, r, width, verbose)?;
        }
        writeln!(out)?;
    }
    let s = &report.summary;
    let mut line = format!(
        "{} passed, {} warning(s), {} failed ({} required), {} skipped",
        s.pass, s.warn, s.fail, s.required_failed, s.skip
    );
    if s.unreachable_hosts > 0 {
        line.push_str(&format!(", {} host(s) unreachable", s.unreachable_hosts));
    }
    if s.cannot_evaluate > 0 {
        line.push_str(&format!(", {} could not evaluate", s.cannot_evaluate));
    }
    let verdict = match report.exit_code {
        0 => "ready",
        1 => "NOT ready",
        _ => "could not check everything",
    };
    writeln!(out, "{line} — {verdict} (exit {})", report.exit_code)
}

fn check(out: &mut dyn io::Write, r: &CheckResult, width: usize, verbose: bool) -> io::Result<()> {
    let advisory =
        if r.level == crate::doctor::catalog::Level::Advisory && r.status == CheckStatus::Fail {
            " (advisory)"
        } else {
            ""
        };
    writeln!(
        out,
        "  {} {:<width$}  {}{advisory}  [{} ms]",
        r.status.marker(),
        r.id,
        r.summary,
        r.duration_ms
    )?;
    let show_evidence = matches!(r.status, CheckStatus::Fail | CheckStatus::Warn) || verbose;
    if show_evidence && !r.evidence.is_empty() {
        for line in &r.evidence {
            writeln!(out, "      │ {line}")?;
        }
    }
    if let Some(fix) = &r.remediation {
        writeln!(out, "      fix:")?;
        for line in fix.lines() {
            writeln!(out, "        {line}")?;
        }
    }
    Ok(())
}
