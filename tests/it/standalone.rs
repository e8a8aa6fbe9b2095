//! The repository stands alone: a user's clone has nothing beside it, so no
//! tracked file may read a path outside the checkout. `.ci/run` also runs
//! the suite from a fresh clone in an empty directory; this test names the
//! offending line where that would only show a failing fixture.

use std::process::Command;

use crate::common::repo_root;

/// Paths that lead out of the checkout: the reference folder beside it, a
/// parent of the repository root, or this workplace's absolute paths.
/// Spelt in pieces so that this list is not itself a hit for a plain
/// `grep` over the tree (the before-stop check greps for the same paths).
const OUTSIDE: &[&str] = &[
    concat!("../", "shared"),
    concat!("shared/", "data/"),
    concat!("/wo", "rk/"),
    concat!("/fa", "rm/"),
];

#[test]
fn no_tracked_file_reads_outside_the_checkout() {
    let root = repo_root();
    let out = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["ls-files", "-z"])
        .output()
        .expect("git ls-files (git is needed by the test suite)");
    assert!(out.status.success(), "git ls-files failed");
    let files: Vec<String> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    assert!(files.len() > 50, "expected the whole tree, got {files:?}");
    let this_file = "tests/it/standalone.rs";
    let mut hits = Vec::new();
    for file in files.iter().filter(|f| *f != this_file) {
        let Ok(text) = std::fs::read_to_string(root.join(file)) else {
            continue; // binary files cannot name a path we read
        };
        for (n, line) in text.lines().enumerate() {
            if OUTSIDE.iter().any(|p| line.contains(p)) {
                hits.push(format!("{file}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "tracked files reach outside the checkout (copy the fact into the repo instead):\n{}",
        hits.join("\n")
    );
}
