//! `openpay run`.

use crate::Globals;
use crate::cli::RunArgs;
use crate::exit::{Exit, blocked};

pub async fn run(_g: &Globals, _args: RunArgs) -> anyhow::Result<Exit> {
    Err(blocked("openpay run is not built yet"))
}
