//! `--format junit`: one `<testsuite>` per host (plus one for the shared
//! account/repo checks), one `<testcase>` per check, with `<failure>` for
//! fail, `<skipped>` for skip; warnings pass with their summary in
//! system-out so CI dashboards stay green on advisory findings.

use std::io;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report as JUnit, TestCase, TestCaseStatus, TestSuite};

use crate::doctor::check::CheckStatus;
use crate::doctor::report::{CheckResult, Report};

pub fn render(report: &Report, out: &mut dyn io::Write) -> io::Result<()> {
    let mut junit = JUnit::new("openpay doctor");
    for host in &report.hosts {
        let mut suite = TestSuite::new(host.label.clone());
        if let Some(err) = &host.error {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_message(err.clone()).set_type("unreachable");
            let mut case = TestCase::new("host.reachable", status);
            case.set_classname(host.label.clone());
            suite.add_test_case(case);
        }
        suite.add_test_cases(host.checks.iter().map(|r| case(&host.label, r)));
        junit.add_test_suite(suite);
    }
    if !report.shared.is_empty() {
        let mut suite = TestSuite::new("account");
        suite.add_test_cases(report.shared.iter().map(|r| case("account", r)));
        junit.add_test_suite(suite);
    }
    junit
        .serialize(&mut *out)
        .map_err(|e| io::Error::other(e.to_string()))?;
    writeln!(out)
}

fn case(classname: &str, r: &CheckResult) -> TestCase {
    let details = || {
        let mut text = r.evidence.join("\n");
        if let Some(fix) = &r.remediation {
            text.push_str("\n\nfix:\n");
            text.push_str(fix);
        }
        text
    };
    let status = match r.status {
        CheckStatus::Pass | CheckStatus::Warn => TestCaseStatus::success(),
        CheckStatus::Fail => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(r.summary.clone())
                .set_type(r.level.as_str())
                .set_description(details());
            s
        }
        CheckStatus::Skip => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(r.summary.clone());
            s
        }
    };
    let mut case = TestCase::new(r.id.clone(), status);
    case.set_classname(classname.to_string())
        .set_time(Duration::from_millis(r.duration_ms));
    if r.status == CheckStatus::Warn {
        case.set_system_out(format!("warning: {}\n{}", r.summary, details()));
    }
    case
}
