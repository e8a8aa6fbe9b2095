//! Infrastructure: the terraform wrapper, the IAM policy model and drift,
//! and CIDR handling.

pub mod cidr;
pub mod drift;
pub mod policy;
pub mod tf;
