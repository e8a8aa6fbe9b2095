//! `openpay iam drift`.

use crate::Globals;
use crate::cli::DriftArgs;
use crate::exit::{Exit, blocked};

pub async fn run(_g: &Globals, _args: DriftArgs) -> anyhow::Result<Exit> {
    Err(blocked("openpay iam drift is not built yet"))
}
