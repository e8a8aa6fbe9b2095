//! Host and account readiness checks: catalog, runner, transports, reports.

pub mod check;
pub mod checks;
pub mod command;
pub mod transport;
