//! `openpay doctor`.

use crate::Globals;
use crate::cli::DoctorArgs;
use crate::exit::{Exit, blocked};

pub async fn run(_g: &Globals, _args: DoctorArgs) -> anyhow::Result<Exit> {
    Err(blocked("openpay doctor is not built yet"))
}
