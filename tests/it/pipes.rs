//! Output plumbing through the real binary: a reader that goes away early
//! (`openpay … | head -1`) ends nothing with a panic or exit 101, and logs
//! written to a file carry no colour escapes (NO_COLOR honoured on a
//! terminal too).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::cms::{CATALOG_PATH, CmsServer, Fault, payments_csv};
use crate::common::moto::MotoServer;
use crate::common::{openpay, repo_root, required_env};

const NAME: &str = "OP_DTL_GNRL_PGYR2023_P01302025_01212025.csv";

/// Runs `cmd` with stdout a pipe whose reader closed before the command
/// started: every write to stdout fails with EPIPE, whatever the timing.
fn closed_stdout(mut cmd: Command) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    cmd.stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The exit code `cmd` has with an ordinary stdout, and that a closed
/// stdout changes neither the code nor adds a panic.
fn same_exit_with_stdout_closed(what: &str, make: impl Fn() -> Command) -> i32 {
    let normal = make().stdin(Stdio::null()).output().unwrap();
    let want = normal.status.code().unwrap_or(-1);
    assert!(
        (0..=3).contains(&want),
        "{what}: exit {want} with a normal stdout: {}",
        stderr(&normal)
    );
    let closed = closed_stdout(make());
    let err = stderr(&closed);
    assert_eq!(
        closed.status.code(),
        Some(want),
        "{what}: a closed stdout changed the exit code: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{what}: {err}"
    );
    want
}

fn in_dir(dir: &Path, args: &[&str]) -> Command {
    let mut c = openpay();
    c.current_dir(dir).args(args);
    c
}

#[test]
fn every_command_keeps_its_exit_code_when_stdout_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: &[(&[&str], i32)] = &[
        (&["--help"], 0),
        (&["--version"], 0),
        (&["cidr", "197.210.77.*", "10.0.0.0/8"], 0),
        (&["cidr", "--contains", "192.168.1.1", "10.0.0.0/8"], 1),
        (&["cidr", "10.0.0.5/24"], 2),
        (&["doctor", "--list-checks"], 0),
        (&["doctor", "--list-checks", "--format", "json"], 0),
        (&["doctor", "--explain", "host.git"], 0),
    ];
    for (args, want) in cases {
        let got = same_exit_with_stdout_closed(&args.join(" "), || in_dir(d, args));
        assert_eq!(got, *want, "{args:?}");
    }
    // A real report whose exit depends on this machine: only "the same
    // with or without a reader" can be asserted.
    same_exit_with_stdout_closed("doctor --offline", || {
        in_dir(d, &["doctor", "--offline", "--only", "host.git"])
    });
}

#[test]
fn runs_and_dry_runs_keep_their_exit_code_when_stdout_is_closed() {
    let cms = CmsServer::start();
    cms.publish(2023, "General", NAME, payments_csv(50, 20_000));
    let url = cms.url();
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let mut c = in_dir(dir.path(), &["run", "--year", "2023", "--source-url", &url]);
        c.args(extra);
        c
    };
    assert_eq!(
        same_exit_with_stdout_closed("run --dry-run", || run(&["--dry-run"])),
        0
    );
    assert_eq!(same_exit_with_stdout_closed("run", || run(&[])), 0);
    assert!(
        dir.path()
            .join(format!(
                "lake/raw/dataset=general-payments/year=2023/{NAME}"
            ))
            .exists(),
        "the run did its work although nobody read its summary"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn iam_drift_keeps_its_exit_code_when_stdout_is_closed() {
    let moto = MotoServer::start();
    let bucket = "openpayments-pipe-test";
    let policy = crate::common::iam::runner_policy(bucket);
    crate::common::iam::role(
        &moto.clients().await,
        "openpay-runner",
        &[("runner", &policy)],
        &[],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let template = repo_root().join("terraform/policies/runner.json.tftpl");
    let got = same_exit_with_stdout_closed("iam drift", || {
        let mut c = in_dir(dir.path(), &["iam", "drift", "--role", "openpay-runner"]);
        c.envs(moto.env())
            .arg("--policy")
            .arg(&template)
            .args(["--var", &format!("bucket={bucket}")]);
        c
    });
    assert_eq!(got, 0, "the role holds the repo's own policy: no drift");
}

/// `openpay tf plan|apply|output` on a stack of outputs only (no provider,
/// no network), with the real terraform.
#[test]
fn tf_reports_keep_their_exit_code_when_stdout_is_closed() {
    required_env("TF_CLI_CONFIG_FILE");
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("terraform");
    std::fs::create_dir_all(&stack).unwrap();
    let outputs: String = (0..400)
        .map(|i| format!("output \"o{i:03}\" {{\n  value = \"value-{i}\"\n}}\n"))
        .collect();
    std::fs::write(stack.join("main.tf"), outputs).unwrap();
    let tf = |args: &[&str]| {
        let mut c = in_dir(dir.path(), &["tf"]);
        c.args(args).args(["--no-doctor"]);
        c
    };
    // Applied with stdout closed: the apply still happens and is saved.
    let o = closed_stdout(tf(&["apply"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(dir.path().join(".openpay/outputs.json").exists());
    for args in [&["output"][..], &["output", "--format", "json"], &["plan"]] {
        assert_eq!(
            same_exit_with_stdout_closed(&format!("tf {args:?}"), || tf(args)),
            0
        );
    }
}

/// `openpay cidr … | head -1`: the reader takes one line and goes away
/// while the command still has most of its output to write.
#[test]
fn cidr_into_a_reader_that_stops_after_one_line() {
    let patterns: Vec<String> = (0..20_000)
        .map(|i| format!("10.{}.{}.*", i / 256, i % 256))
        .collect();
    let mut child = openpay()
        .arg("cidr")
        .args(&patterns)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "10.0.0.0/24\n");
    // The reader is dropped here: ~280 kB are still to be written.
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "quiet: {}", stderr(&o));
}

#[test]
fn logs_written_to_a_file_carry_no_colour_escapes() {
    let cms = CmsServer::start();
    cms.publish(2023, "General", NAME, payments_csv(51, 20_000));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    let o = in_dir(
        dir.path(),
        &["run", "--year", "2023", "--source-url", &cms.url()],
    )
    .stderr(std::fs::File::create(&log).unwrap())
    .output()
    .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("run starting"), "logs were written: {text}");
    assert!(
        !text.contains('\x1b'),
        "ANSI escapes in a log file: {text:?}"
    );
}

/// On a terminal (a pty from util-linux `script`) logs are coloured unless
/// NO_COLOR is set. A catalog answering 503 once makes a warning.
#[test]
fn no_color_turns_colour_off_on_a_terminal() {
    let cms = CmsServer::start();
    cms.publish(2023, "General", NAME, payments_csv(52, 1000));
    let dir = tempfile::tempdir().unwrap();
    let on_a_pty = |no_color: Option<&str>| {
        cms.push_fault(CATALOG_PATH, Fault::Status(503, Some(0)));
        let line = format!(
            "'{}' run --year 2023 --dry-run --source-url '{}'",
            crate::common::bin_path().display(),
            cms.url()
        );
        let mut c = Command::new("script");
        c.current_dir(dir.path())
            .args(["-qefc", &line, "/dev/null"])
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        let o = c
            .output()
            .expect("util-linux `script` is needed to give the run a terminal");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(o.status.code(), Some(0), "{text}");
        assert!(text.contains("catalog fetch failed; retrying"), "{text}");
        text
    };
    assert!(
        on_a_pty(None).contains("\x1b["),
        "a terminal gets colour by default"
    );
    assert!(
        !on_a_pty(Some("1")).contains('\x1b'),
        "NO_COLOR=1 means no escapes at all"
    );
    assert_eq!(
        cms.injected(CATALOG_PATH).len(),
        2,
        "each run met its 503: {:?}",
        cms.injected(CATALOG_PATH)
    );
}
