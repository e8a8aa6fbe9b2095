//! `openpay cidr`: allowlist patterns to CIDRs.

use crate::cli::CidrArgs;
use crate::exit::{Exit, blocked};

pub fn command(_args: &CidrArgs) -> anyhow::Result<Exit> {
    Err(blocked("openpay cidr is not built yet"))
}
