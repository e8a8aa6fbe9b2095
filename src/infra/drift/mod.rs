//! IAM drift: the live role vs terraform/policies/.
//!
//! `template` renders the repo's policy, `live` reads the role through the
//! IAM API, `diff` compares the two semantically (with the policy
//! evaluator), `render` prints the result; `command` wires them to the CLI.

pub mod command;
pub mod diff;
mod error;
pub mod live;
pub mod render;
pub mod template;

pub use error::DriftError;
