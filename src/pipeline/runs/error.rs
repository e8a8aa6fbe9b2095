//! Why `openpay runs show` or `openpay verify` could not answer (their exit
//! classes are decided in `exit.rs`): a run id the destination does not
//! hold is bad input (2); records that are there but cut off or unreadable
//! mean the run cannot be evaluated (3).

#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    #[error(
        "run {run_id} is not recorded in {dest}; `openpay runs list --dest {dest}` lists the runs there"
    )]
    NotFound { run_id: String, dest: String },
    #[error("--latest: no readable run is recorded in {dest}")]
    NoReadableRun { dest: String },
    #[error(
        "run {run_id}: {location} holds file_audits.jsonl but no manifest.json (cut off before its manifest was copied)"
    )]
    ManifestMissing { run_id: String, location: String },
    #[error("run {run_id}: {reason}")]
    ManifestUnreadable { run_id: String, reason: String },
    #[error(
        "cannot verify run {run_id}: it planned {planned} file(s) but {dest} holds no file_audits.jsonl for it"
    )]
    AuditsMissing {
        run_id: String,
        planned: u64,
        dest: String,
    },
}
