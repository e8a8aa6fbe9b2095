//! Thin entry point: parse, set up logging, dispatch, map the result onto
//! the exit-code contract. All logic lives in the library.

use std::process::ExitCode;

use clap::Parser;
use openpay::exit::{Exit, classify};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = openpay::cli::Cli::parse();
    let result = match openpay::logging::init(cli.verbose, cli.log_format) {
        Ok(()) => openpay::run(cli).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(exit) => exit.into(),
        Err(err) => {
            eprintln!("error: {err:#}");
            match classify(&err) {
                Ok(exit) => exit.into(),
                Err(_) => {
                    eprintln!(
                        "error: this error has no exit class, which is a bug in openpay; please report it with the line above (exiting 3, could not evaluate)"
                    );
                    Exit::Blocked.into()
                }
            }
        }
    }
}
