//! Thin entry point: parse, set up logging, dispatch, map the result onto
//! the exit-code contract. All logic lives in the library.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = openpay::cli::Cli::parse();
    openpay::logging::init(cli.verbose, cli.log_format);
    match openpay::run(cli).await {
        Ok(exit) => exit.into(),
        Err(err) => {
            let exit = openpay::exit::classify(&err);
            eprintln!("error: {err:#}");
            exit.into()
        }
    }
}
