//! The ingestion pipeline: source (CMS catalog) -> download -> manifest ->
//! store (local lake | S3).

pub mod command;
mod error;

pub use error::PipelineError;
