//! The terraform wrapper behind `openpay tf`.
//!
//! `binary` finds terraform (or tofu), `runner` runs it non-interactively,
//! `plan` reads `show -json` of a saved plan into a change list (sensitive
//! values masked at parse time, so nothing downstream can print them),
//! `risk` is the pure gate that `apply` consults, `outputs` redacts
//! `output -json`, `endpoint` points the provider at a local AWS emulator,
//! `bucket` guards destroy against deleting data, `render` draws tables.

pub mod binary;
pub mod bucket;
pub mod command;
pub mod endpoint;
pub mod error;
pub mod outputs;
pub mod plan;
pub mod render;
pub mod risk;
pub mod runner;

pub use error::TfError;

/// A file under tests/fixtures/tf (real `terraform show -json` / `output
/// -json` captures, see its README), for the unit tests of this module.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tf")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
