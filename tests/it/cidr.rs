//! `openpay cidr` through the real binary: stdout and exit codes.

use crate::common::openpay;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = openpay().arg("cidr").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cidr_patterns_print_one_network_per_line() {
    let (code, out, err) = run(&["197.210.77.*", "197.210.*", "10.*", "2001:DB8::1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "197.210.77.0/24\n197.210.0.0/16\n10.0.0.0/8\n2001:db8::1/128\n"
    );
}

#[test]
fn cidr_host_bits_exit_2_with_suggestion() {
    let (code, out, err) = run(&["10.0.0.5/24"]);
    assert_eq!(code, 2);
    assert!(out.is_empty(), "nothing on stdout: {out}");
    assert!(err.contains("did you mean 10.0.0.0/24"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn cidr_star_is_refused_as_whole_internet() {
    let (code, _, err) = run(&["*"]);
    assert_eq!(code, 2);
    assert!(err.contains("0.0.0.0/0"), "{err}");
}

#[test]
fn cidr_garbage_exit_2_names_input() {
    let (code, _, err) = run(&["197.210.77.0", "not-an-ip"]);
    assert_eq!(code, 2);
    assert!(err.contains("not-an-ip"), "{err}");
}

#[test]
fn cidr_contains_yes_and_no() {
    let (code, out, _) = run(&["--contains", "197.210.77.9", "10.0.0.0/8", "197.210.77.*"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("yes"), "{out}");
    assert!(out.contains("197.210.77.0/24"), "{out}");
    let (code, out, _) = run(&["--contains", "197.210.78.9", "197.210.77.0/24"]);
    assert_eq!(code, 1);
    assert!(out.starts_with("no"), "{out}");
    let (code, _, err) = run(&["--contains", "nope", "10.0.0.0/8"]);
    assert_eq!(code, 2);
    assert!(err.contains("nope"), "{err}");
}
