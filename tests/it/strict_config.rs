//! Strict configuration through the real binary: a typo in an
//! `OPENPAY_*` variable or an invalid value in `openpay.toml` is exit 2
//! naming the variable (with the name meant) or the file and key, before
//! anything is fetched or written.

use std::process::Output;

use crate::common::cms::{CmsServer, payments_csv};
use crate::common::openpay;

const NAME: &str = "OP_DTL_GNRL_PGYR2023_P01302025_01212025.csv";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `openpay run --year 2023` in a fresh directory holding `toml` as
/// openpay.toml, with `env`; the output, and the CMS file's bytes served
/// (0 when the run stopped before fetching, as bad input must).
fn run(toml: Option<&str>, env: &[(&str, &str)]) -> (Output, u64) {
    let cms = CmsServer::start();
    let path = cms.publish(2023, "General", NAME, payments_csv(70, 10_000));
    let dir = tempfile::tempdir().unwrap();
    if let Some(t) = toml {
        std::fs::write(dir.path().join("openpay.toml"), t).unwrap();
    }
    let o = openpay()
        .current_dir(dir.path())
        .envs(env.iter().copied())
        .args(["run", "--year", "2023", "--source-url", &cms.url()])
        .output()
        .unwrap();
    if o.status.code() != Some(0) {
        assert!(!dir.path().join("lake").exists(), "nothing written");
        assert!(!dir.path().join("data").exists(), "nothing written");
    }
    (o, cms.served(&path))
}

#[test]
fn a_misspelt_environment_variable_is_exit_2_with_the_name_meant() {
    let (o, served) = run(None, &[("OPENPAY_PIPELNE_JOBS", "4")]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("OPENPAY_PIPELNE_JOBS"), "{err}");
    assert!(err.contains("did you mean OPENPAY_PIPELINE_JOBS?"), "{err}");
    assert_eq!(served, 0, "nothing fetched");
    // The variable spelt right is taken.
    let (o, _) = run(None, &[("OPENPAY_PIPELINE_JOBS", "4")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn an_invalid_value_in_the_file_names_the_file_and_key_not_a_flag() {
    let (o, served) = run(Some("[pipeline]\njobs = 0\n"), &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("openpay.toml") && err.contains("[pipeline] jobs"),
        "{err}"
    );
    assert!(!err.contains("--jobs"), "the user typed no flag: {err}");
    assert_eq!(served, 0, "nothing fetched");
    // The same value as an environment variable names the variable.
    let (o, _) = run(None, &[("OPENPAY_PIPELINE_JOBS", "0")]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("OPENPAY_PIPELINE_JOBS") && !err.contains("--jobs"),
        "{err}"
    );
}

#[test]
fn an_invalid_log_directive_is_exit_2_naming_openpay_log() {
    let (o, served) = run(None, &[("OPENPAY_LOG", "openpay=loudest")]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("OPENPAY_LOG"), "{err}");
    assert_eq!(served, 0, "nothing fetched");
}
