//! Host and account readiness checks: catalog, runner, transports, reports.

pub mod check;
pub mod command;
pub mod transport;
