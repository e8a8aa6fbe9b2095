//! The terraform wrapper.

pub mod command;
