//! Host and account readiness checks: catalog, runner, transports, reports.

pub mod catalog;
pub mod check;
pub mod checks;
pub mod command;
mod error;
pub mod gate;
pub mod render;
pub mod report;
pub mod runner;
pub mod transport;
pub mod version;

pub use error::DoctorError;
