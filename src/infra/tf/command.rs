//! `openpay tf`.

use crate::Globals;
use crate::cli::TfArgs;
use crate::exit::{Exit, blocked};

pub async fn run(_g: &Globals, _args: TfArgs) -> anyhow::Result<Exit> {
    Err(blocked("openpay tf is not built yet"))
}
