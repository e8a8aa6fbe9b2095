//! IAM drift: the live role vs terraform/policies/.

pub mod command;
