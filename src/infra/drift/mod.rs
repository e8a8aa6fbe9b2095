//! IAM drift: the live role vs terraform/policies/.
//!
//! `template` renders the repo's policy, [`crate::infra::iam`] reads the
//! role through the IAM API (the reader the doctor shares), `diff` compares the two semantically (with the policy
//! evaluator), `render` prints the result; `command` wires them to the CLI.

pub mod command;
pub mod diff;
mod error;
pub mod render;
pub mod sarif;
pub mod template;

pub use error::DriftError;
