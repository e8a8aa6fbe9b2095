//! House rules of the module layout (DESIGN.md "Layout"): domain code owns
//! its types and never reaches up into the command line. `cli.rs` re-uses
//! domain types (`Dataset`, `LogFormat`), not the other way round; only a
//! module's `command.rs` (the edge that turns flags into settings) may read
//! `cli` argument structs.

use std::path::{Path, PathBuf};

use crate::common::repo_root;

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

#[test]
fn pipeline_domain_code_does_not_import_cli_types() {
    let src = repo_root().join("src");
    let mut files = rust_files(&src.join("pipeline"));
    files
        .extend(["logging.rs", "config.rs", "aws.rs", "exit.rs", "output.rs"].map(|f| src.join(f)));
    let checked: Vec<_> = files
        .into_iter()
        .filter(|p| p.exists() && p.file_name().is_some_and(|n| n != "command.rs"))
        .collect();
    assert!(
        checked.len() > 10,
        "expected the pipeline's modules: {checked:?}"
    );
    let mut hits = Vec::new();
    for file in &checked {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.contains("crate::cli") || line.contains("cli::") {
                hits.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "domain code imports command-line types (move the type into its domain module and re-export it from cli.rs):\n{}",
        hits.join("\n")
    );
}
