//! The run's preflight: may this run start at all?
//!
//! The pipeline's own two conditions (the destination is reachable and
//! writable; the work dir has room for the planned bytes) plus the doctor's
//! gate: the catalog's `preflight = true` checks, run on this machine by the
//! same runner as `openpay doctor`. One entry point, so `openpay run` and
//! `openpay doctor` agree on what "ready" means.

use std::path::Path;
use std::sync::Arc;

use super::manifest::PreflightRecord;
use super::store::Destination;

/// Head-room kept free beyond the planned bytes (logs, manifests, the OS).
const DISK_MARGIN: u64 = 256 * 1024 * 1024;

/// What the doctor's gate needs. `aws: None` (a local lake) skips the
/// account checks with that reason: they cannot block a run that never
/// touches AWS.
pub struct Gate {
    pub config: Arc<crate::config::Config>,
    pub aws: Option<crate::aws::AwsClients>,
}

/// Runs the checks and returns what the manifest records.
pub async fn preflight(
    dest: Option<&Destination>,
    work_dir: &Path,
    needed_bytes: u64,
    gate: Option<Gate>,
) -> PreflightRecord {
    let mut rec = PreflightRecord {
        passed: true,
        ..Default::default()
    };
    let mut fail = |id: &str, reason: String| {
        rec.passed = false;
        rec.failing.push(id.to_string());
        rec.reasons.push(format!("{id}: {reason}"));
    };
    if let Some(dest) = dest
        && let Err(e) = dest.check_writable().await
    {
        fail("run.destination", e.to_string());
    }
    match free_space(work_dir) {
        Ok(free) if free < needed_bytes.saturating_add(DISK_MARGIN) => fail(
            "run.disk-space",
            format!(
                "work dir {} has {} free but the planned downloads need {} (+{} margin); free space or point --work-dir at a larger volume",
                work_dir.display(),
                human(free),
                human(needed_bytes),
                human(DISK_MARGIN)
            ),
        ),
        Ok(_) => {}
        Err(e) => fail(
            "run.disk-space",
            format!("cannot measure free space of {}: {e}", work_dir.display()),
        ),
    }
    if let Some(Gate { config, aws }) = gate {
        let offline = aws.is_none();
        let outcome = crate::doctor::gate::preflight(config, aws, offline).await;
        for r in outcome.report.all_results().filter(|r| r.is_blocking()) {
            let fix = r
                .remediation
                .as_deref()
                .and_then(|f| f.lines().map(str::trim).find(|l| !l.is_empty()))
                .unwrap_or("see `openpay doctor --explain`");
            fail(&r.id, format!("{}; fix: {fix}", r.summary));
        }
        if !outcome.passed && outcome.failing.is_empty() {
            fail(
                "doctor",
                "the doctor gate could not evaluate this host; run `openpay doctor` for details"
                    .into(),
            );
        }
    }
    rec
}

/// Free bytes on the volume that will hold `dir` (its nearest existing
/// ancestor, since the work dir may not exist yet).
fn free_space(dir: &Path) -> std::io::Result<u64> {
    let mut probe = dir;
    while !probe.exists() {
        probe = probe
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
    }
    fs4::available_space(probe)
}

/// Bytes in binary units for people (`1.5 GiB`).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn impossible_space_blocks_with_reason() {
        let dir = tempfile::tempdir().unwrap();
        let rec = preflight(None, &dir.path().join("not/yet"), u64::MAX / 2, None).await;
        assert!(!rec.passed);
        assert_eq!(rec.failing, vec!["run.disk-space"]);
        assert!(rec.reasons[0].contains("--work-dir"), "{:?}", rec.reasons);
    }

    #[tokio::test]
    async fn small_need_passes() {
        let dir = tempfile::tempdir().unwrap();
        assert!(preflight(None, dir.path(), 1, None).await.passed);
    }

    #[test]
    fn human_units() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
