//! One file per check (or small family); the registry maps catalog ids to fns.

pub mod aws_iam_put_object;
pub mod aws_identity;
pub mod net_ssh_allowlist;
pub mod tf_ssh_allowlist;
