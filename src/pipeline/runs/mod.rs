//! Reading runs back from a destination: `openpay runs list|show` and
//! `openpay verify`.
//!
//! The run records (`metadata/runs/run_id=…/manifest.json` and
//! `file_audits.jsonl`) are the contract between a run and whoever watches
//! it (Airflow, a person, a later audit). Readers here never trust them to
//! be whole: a half-written or foreign entry is reported as such, and
//! fields or statuses written by other openpay versions are carried
//! through rather than rejected.

pub mod command;
mod error;
pub mod reader;
pub mod record;
pub mod render;
pub mod verify;

pub use error::RunsError;
