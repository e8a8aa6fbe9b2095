//! The ingestion pipeline: source (CMS catalog) -> download -> manifest ->
//! store (local lake | S3).

pub mod atomic;
pub mod checksum;
pub mod command;
mod dataset;
pub mod download;
mod error;
pub mod fetch;
pub mod growing;
pub mod lock;
pub mod manifest;
pub mod preflight;
pub mod progress;
pub mod records;
pub mod retry;
pub mod run;
pub mod runs;
pub mod source;
pub mod store;
pub mod summary;

pub use dataset::Dataset;
pub use error::PipelineError;
