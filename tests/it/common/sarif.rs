//! Two oracles for every `--format sarif` document: Microsoft's SARIF
//! Multitool (npm `@microsoft/sarif-multitool`, installed by
//! scripts/test.sh), whose `validate` verb with `--rule-kind "Sarif;Gh"`
//! applies the SARIF rules and those GitHub code scanning applies on
//! upload; and the official SARIF 2.1.0 JSON schema that package ships,
//! checked by Python's `jsonschema` (Draft 2020-12) from the test venv —
//! the Multitool alone lets an invalid enum value (`"level": "severe"`)
//! through when the rest of the document is well-formed.

use std::path::PathBuf;
use std::process::Command;

/// Warnings the validator may give and why they are accepted.
const ACCEPTED: &[(&str, &str)] = &[(
    "SARIF2005",
    // openpay has no public homepage to name as tool.driver.informationUri
    "informationUri",
)];

/// One finding of the validator: (level, rule id, message).
pub type Finding = (String, String, String);

/// Runs `validate` on `doc`; returns every finding it made.
pub fn findings(doc: &str) -> Vec<Finding> {
    let bin = super::required_env("OPENPAY_TEST_SARIF_MULTITOOL");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("openpay.sarif");
    let output = dir.path().join("validation.sarif");
    std::fs::write(&input, doc).unwrap();
    let out = Command::new(&bin)
        .arg("validate")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .args(["--log", "ForceOverwrite", "--rule-kind", "Sarif;Gh"])
        // no ICU needed on minimal machines; the validator is ASCII-only
        .env("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
        .env("DOTNET_CLI_TELEMETRY_OPTOUT", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run the SARIF Multitool at {bin}: {e}"));
    let report = std::fs::read_to_string(&output).unwrap_or_else(|e| {
        panic!(
            "the SARIF Multitool wrote no report ({e}); exit {:?}\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let v: serde_json::Value = serde_json::from_str(&report).unwrap();
    let run = &v["runs"][0];
    let rules = run["tool"]["driver"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    run["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let rule = r["ruleId"].as_str().unwrap_or("?").to_string();
            let descriptor = rules.iter().find(|d| d["id"] == rule.as_str());
            // SARIF: a result without `level` takes its rule's default, else warning
            let level = r["level"]
                .as_str()
                .or_else(|| descriptor.and_then(|d| d["defaultConfiguration"]["level"].as_str()))
                .unwrap_or("warning")
                .to_string();
            let mut text = descriptor
                .and_then(|d| {
                    d["messageStrings"][r["message"]["id"].as_str().unwrap_or("")]["text"].as_str()
                })
                .unwrap_or_else(|| r["message"]["text"].as_str().unwrap_or(""))
                .to_string();
            for (i, a) in r["message"]["arguments"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                text = text.replace(&format!("{{{i}}}"), a.as_str().unwrap_or(""));
            }
            (level, rule, text)
        })
        .collect()
}

/// Every way `doc` breaks the official schema (the package's own
/// `sarif-2.1.0.json`), as `jsonschema` words it: "path: message".
pub fn schema_errors(doc: &str) -> Vec<String> {
    let bin = PathBuf::from(super::required_env("OPENPAY_TEST_SARIF_MULTITOOL"));
    let schema = bin.with_file_name("sarif-2.1.0.json");
    let python =
        PathBuf::from(super::required_env("OPENPAY_TEST_MOTO_SERVER")).with_file_name("python");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("openpay.sarif");
    std::fs::write(&input, doc).unwrap();
    let out = Command::new(&python)
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             doc = json.load(open(sys.argv[2]))\n\
             for e in jsonschema.Draft202012Validator(schema).iter_errors(doc):\n\
             \x20   print('/'.join(map(str, e.absolute_path)) + ': ' + e.message)\n",
        ])
        .arg(&schema)
        .arg(&input)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "jsonschema did not run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Fails the test with the validators' words unless `doc` is valid SARIF
/// 2.1.0 that GitHub accepts: no schema error, and no Multitool error or
/// warning beyond [`ACCEPTED`].
pub fn assert_valid(doc: &str) {
    let schema = schema_errors(doc);
    assert!(schema.is_empty(), "SARIF 2.1.0 schema: {schema:#?}\n{doc}");
    let bad: Vec<Finding> = findings(doc)
        .into_iter()
        .filter(|(level, rule, text)| {
            level != "note"
                && !ACCEPTED
                    .iter()
                    .any(|(r, needle)| r == rule && text.contains(needle))
        })
        .collect();
    assert!(bad.is_empty(), "SARIF Multitool: {bad:#?}\n{doc}");
}
