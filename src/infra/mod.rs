//! Infrastructure: the terraform wrapper, the IAM policy model, the reader
//! of a role's live policies (shared by `iam drift` and the doctor), drift,
//! and CIDR handling.

pub mod cidr;
pub mod drift;
pub mod iam;
pub mod policy;
pub mod tf;
