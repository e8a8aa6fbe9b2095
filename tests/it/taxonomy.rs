//! One error taxonomy, through the real binary: each error lands in its
//! exit class (DESIGN.md: 2 bad input, 3 blocked or could not evaluate).
//! An upstream outage is "could not evaluate", never "bad input".

use std::process::Output;

use crate::common::cms::{CATALOG_PATH, CmsServer, Fault, payments_csv};
use crate::common::openpay;

const NAME: &str = "OP_DTL_GNRL_PGYR2023_P01302025_01212025.csv";

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `openpay run --year 2023` from `cms` into a fresh directory; the run's
/// output and whether anything was written.
fn run(cms: &CmsServer) -> (Output, bool) {
    let dir = tempfile::tempdir().unwrap();
    let o = openpay()
        .current_dir(dir.path())
        .args(["run", "--year", "2023", "--source-url", &cms.url()])
        .output()
        .unwrap();
    let wrote = std::fs::read_dir(dir.path()).unwrap().next().is_some();
    (o, wrote)
}

#[test]
fn a_maintenance_page_instead_of_the_catalog_could_not_be_evaluated() {
    let cms = CmsServer::start();
    cms.publish(2023, "General", NAME, payments_csv(60, 1000));
    cms.push_fault(CATALOG_PATH, Fault::MaintenancePage(200));
    let (o, wrote) = run(&cms);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("unavailable") && err.contains("\"Site Maintenance\""),
        "says what it got: {err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!wrote, "nothing written");
    assert!(
        matches!(
            cms.injected(CATALOG_PATH).as_slice(),
            [Fault::MaintenancePage(200)]
        ),
        "{:?}",
        cms.injected(CATALOG_PATH)
    );
}

#[test]
fn a_catalog_failing_every_retry_could_not_be_evaluated() {
    let cms = CmsServer::start();
    cms.publish(2023, "General", NAME, payments_csv(61, 1000));
    // Retry-After: 0 keeps the six attempts quick.
    for _ in 0..3 {
        cms.push_fault(CATALOG_PATH, Fault::Status(503, Some(0)));
        cms.push_fault(CATALOG_PATH, Fault::MaintenancePage(503));
    }
    let (o, wrote) = run(&cms);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("failed 6 times"), "{}", stderr(&o));
    assert!(!wrote, "nothing written");
    assert_eq!(
        cms.injected(CATALOG_PATH).len(),
        6,
        "every attempt met a 503"
    );
}

#[test]
fn a_catalog_that_recovers_within_the_retries_is_used() {
    let cms = CmsServer::start();
    cms.publish(2023, "General", NAME, payments_csv(62, 1000));
    cms.push_fault(CATALOG_PATH, Fault::MaintenancePage(503));
    let (o, _) = run(&cms);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(cms.injected(CATALOG_PATH).len(), 1);
}

#[test]
fn json_that_is_not_a_dkan_catalog_is_bad_input() {
    let cms = CmsServer::start();
    cms.set_raw_catalog(r#"{"data": "not a list of datasets"}"#);
    let (o, wrote) = run(&cms);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("expected a JSON array"),
        "{}",
        stderr(&o)
    );
    assert!(!wrote);
}

/// Bad input to every command is exit 2 with one line naming it.
#[test]
fn bad_input_to_each_command_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let template = crate::common::repo_root().join("terraform/policies/runner.json.tftpl");
    let template = template.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["cidr", "10.0.0.5/24"], "10.0.0.0/24"),
        (
            &["cidr", "--contains", "nonsense", "10.0.0.0/8"],
            "--contains",
        ),
        (&["doctor", "--only", "host.gti"], "did you mean host.git"),
        (&["doctor", "--explain", "host.dokcer"], "host.docker"),
        (&["doctor", "--host", "a b"], "--host"),
        (&["iam", "drift", "--var", "novalue"], "--var"),
        (
            &["iam", "drift", "--var", "bucket=b"],
            "cannot read policy template",
        ),
        (
            &["iam", "drift", "--var", "bucket=b", "--policy", template],
            "no role",
        ),
        (&["run", "--year", "1999"], "1999"),
        (&["run", "--year", "2023", "--jobs", "0"], "--jobs"),
    ];
    for (args, needle) in cases {
        let o = openpay()
            .current_dir(dir.path())
            .args(*args)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(code(&o), 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
    }
}
