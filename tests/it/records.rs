//! Records, not just bytes: every stored file's record count, header and
//! field counts, checked against what Python's `csv` module reads from the
//! same bytes, and against the CMS fixture's datastore (which can lie, be
//! missing or be slow).

use std::path::Path;
use std::process::Command;

use crate::common::cms::{
    CmsServer, Datastore, Fault, dataset_id, datastore_path, payments_csv, real_header, sha256_hex,
};
use crate::common::moto::MotoServer;
use crate::common::{openpay, required_env};
use crate::pipeline::{Env, NAME, code, create_bucket, kill_when, object_bytes, part_len, text};

/// What Python's `csv` module reads: data records, header fields, the
/// 1-based numbers of records whose field count differs, the header names.
struct PyCsv {
    records: u64,
    columns: u64,
    ragged: Vec<u64>,
}

const PY_COUNT: &str = r#"
import csv, json, sys
with open(sys.argv[1], newline="", encoding="utf-8-sig") as f:
    rows = [r for r in csv.reader(f, strict=True) if r]
head = rows[0]
print(json.dumps({
    "records": len(rows) - 1,
    "columns": len(head),
    "ragged": [i for i, r in enumerate(rows) if i > 0 and len(r) != len(head)],
}))
"#;

/// Runs [`PY_COUNT`] on these bytes.
fn run_python(bytes: &[u8]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.csv");
    std::fs::write(&path, bytes).unwrap();
    Command::new(required_env("OPENPAY_TEST_PYTHON"))
        .args(["-c", PY_COUNT])
        .arg(&path)
        .output()
        .unwrap()
}

fn python_csv(bytes: &[u8]) -> PyCsv {
    let o = run_python(bytes);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    PyCsv {
        records: v["records"].as_u64().unwrap(),
        columns: v["columns"].as_u64().unwrap(),
        ragged: v["ragged"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect(),
    }
}

fn columns() -> Vec<String> {
    real_header().split(',').map(str::to_string).collect()
}

fn crlf(bytes: &[u8]) -> Vec<u8> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .replace('\n', "\r\n")
        .into_bytes()
}

fn file_name(year: i32) -> String {
    format!("OP_DTL_GNRL_PGYR{year}_P01302025_01212025.csv")
}

/// `openpay run` for these years of General Payments into the env's lake.
fn run_years(env: &Env, cms: &CmsServer, years: &[i32], extra: &[&str]) -> Command {
    let mut c = openpay();
    c.current_dir(env.work().parent().unwrap());
    c.args(["run", "--source-url", &cms.url(), "--work-dir"])
        .arg(env.work());
    for y in years {
        c.args(["--year", &y.to_string()]);
    }
    c.args(extra);
    c.env("OPENPAY_PIPELINE_DATASTORE_TIMEOUT_SECS", "1");
    c
}

fn audit_of(audits: &[serde_json::Value], year: i32) -> &serde_json::Value {
    audits
        .iter()
        .find(|a| a["year"] == year)
        .unwrap_or_else(|| panic!("no audit for {year}"))
}

#[test]
fn every_edge_case_counts_like_python_and_findings_end_the_run_with_exit_1() {
    let cms = CmsServer::start();
    let header = real_header();
    let mut bodies: Vec<(i32, Vec<u8>)> = Vec::new();
    // BOM, CRLF line ends, CRLF inside quoted fields, doubled quotes.
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend(crlf(&payments_csv(1, 30_000)));
    bodies.push((2016, bom));
    // A ragged record amid good ones, and no final line end.
    let mut ragged = payments_csv(2, 20_000);
    let ragged_at = ragged.len();
    ragged.extend_from_slice(b"\"only\",\"three\",\"fields\"\n");
    let good = payments_csv(3, 0);
    let last_row = good
        .split(|&b| b == b'\n')
        .skip(1)
        .take(2)
        .collect::<Vec<_>>();
    ragged.extend_from_slice(&[last_row[0], last_row[1]].join(&b'\n'));
    bodies.push((2017, ragged));
    // A renamed column in the file's header.
    let renamed_header = header.replace("Covered_Recipient_Last_Name", "Covered_Recipient_Surname");
    let mut renamed = payments_csv(4, 10_000);
    renamed.splice(..header.len(), renamed_header.bytes());
    bodies.push((2018, renamed));
    // Header only.
    bodies.push((2019, format!("{header}\n").into_bytes()));
    // The datastore's count will be off by one.
    bodies.push((2020, payments_csv(5, 20_000)));
    // Cut inside a quoted field on the first try.
    let cut = payments_csv(6, 60_000);
    bodies.push((2021, cut.clone()));
    // The datastore answers too late.
    bodies.push((2022, payments_csv(7, 10_000)));
    // The datastore's schema has a renamed column; the file is the real one.
    bodies.push((2023, payments_csv(8, 10_000)));

    let mut paths = Vec::new();
    let mut py = Vec::new();
    for (year, body) in &bodies {
        paths.push(cms.publish(*year, "General", &file_name(*year), body.clone()));
        py.push(python_csv(body));
    }
    let id = |y| dataset_id(y, "General");
    let answer = |count| Datastore::Answer {
        count,
        columns: columns(),
    };
    cms.set_datastore(&id(2016), answer(py[0].records));
    cms.set_datastore(&id(2019), answer(py[3].records));
    cms.set_datastore(&id(2020), answer(py[4].records + 1));
    cms.set_datastore(&id(2021), answer(py[5].records));
    cms.set_datastore(
        &id(2022),
        Datastore::Slow(std::time::Duration::from_secs(4), py[6].records, columns()),
    );
    let mut lying = columns();
    lying[5] = "Covered_Recipient_Profile".into();
    cms.set_datastore(
        &id(2023),
        Datastore::Answer {
            count: py[7].records,
            columns: lying,
        },
    );
    // Inside the quoted address of the first record.
    let inside = cut.windows(6).position(|w| w == b"\nSUITE").unwrap() + 3;
    cms.push_fault(&paths[5], Fault::Truncate(inside as u64));

    let env = Env::new();
    let years: Vec<i32> = bodies.iter().map(|(y, _)| *y).collect();
    let lake = env.lake();
    let dry = run_years(
        &env,
        &cms,
        &years,
        &["--dry-run", "--dest", lake.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(code(&dry), 0, "{}", text(&dry));
    let table = String::from_utf8_lossy(&dry.stdout);
    assert!(table.contains("records expected"), "{table}");
    assert!(table.contains(&py[0].records.to_string()), "{table}");
    assert!(table.contains("HTTP 404"), "{table}");

    let o = run_years(&env, &cms, &years, &["--dest", lake.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "findings exit 1: {}", text(&o));
    let m = env.manifests().last().unwrap().clone();
    assert_eq!(m["status"], "completed_with_findings", "{m:#}");
    assert_eq!(m["files_failed"], 0);
    let audits = env.audits(&m);

    for ((year, body), want) in bodies.iter().zip(&py) {
        let a = audit_of(&audits, *year);
        assert_eq!(a["records"], want.records, "{year}: {a:#}");
        assert_eq!(a["columns"], want.columns, "{year}");
        assert_eq!(
            a["ragged_records"]["count"],
            want.ragged.len() as u64,
            "{year}"
        );
        let stored = lake.join(format!(
            "raw/dataset=general-payments/year={year}/{}",
            file_name(*year)
        ));
        assert_eq!(
            sha256_hex(&std::fs::read(&stored).unwrap()),
            sha256_hex(body),
            "{year}: the object stays, whatever was found"
        );
    }
    let a = audit_of(&audits, 2016);
    assert_eq!(a["header_match"], "publisher");
    assert_eq!(a["records_match"], true);
    assert_eq!(
        a["header_sha256"],
        sha256_hex(real_header().as_bytes()),
        "the header's hash leaves out the BOM and the CRLF"
    );
    let a = audit_of(&audits, 2017);
    assert_eq!(a["ragged_records"]["first"][0]["record"], py[1].ragged[0]);
    assert_eq!(a["ragged_records"]["first"][0]["fields"], 3);
    assert_eq!(a["ragged_records"]["first"][0]["offset"], ragged_at);
    assert_eq!(a["records_expected"], serde_json::Value::Null);
    assert!(
        a["records_expected_reason"]
            .as_str()
            .unwrap()
            .contains("HTTP 404")
    );
    let a = audit_of(&audits, 2018);
    assert_eq!(a["header_match"], "unknown");
    assert_eq!(
        a["header_diff"]["renamed"][0],
        serde_json::json!({"column": 9, "from": "Covered_Recipient_Last_Name", "to": "Covered_Recipient_Surname"})
    );
    let a = audit_of(&audits, 2019);
    assert_eq!(
        (a["records"].as_u64(), a["records_match"].as_bool()),
        (Some(0), Some(true))
    );
    let a = audit_of(&audits, 2020);
    assert_eq!(a["records_match"], false);
    assert_eq!(a["records_expected"], py[4].records + 1);
    let a = audit_of(&audits, 2021);
    assert_eq!(a["records_match"], true);
    assert_eq!(a["attempts"], 2, "the cut body was fetched again");
    let gets = cms
        .requests(&paths[5])
        .iter()
        .filter(|r| r.method == "GET" && r.range.is_none())
        .count();
    assert_eq!(gets, 2, "the fixture served the cut body, then the whole");
    let a = audit_of(&audits, 2022);
    assert_eq!(a["records_expected"], serde_json::Value::Null);
    assert!(
        a["records_expected_reason"]
            .as_str()
            .unwrap()
            .contains("did not answer within"),
        "{a:#}"
    );
    assert_eq!(
        cms.requests(&datastore_path(&id(2022))).len(),
        2,
        "the slow datastore was asked (dry run and run)"
    );
    let a = audit_of(&audits, 2023);
    assert_eq!(a["header_match"], "known", "the real header, not the lie");
    assert_eq!(a["records_match"], true);

    let kinds: Vec<(i64, &str)> = m["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let file = f["file"].as_str().unwrap();
            let year = bodies
                .iter()
                .find(|(y, _)| file == file_name(*y))
                .unwrap()
                .0;
            (year as i64, f["kind"].as_str().unwrap())
        })
        .collect();
    let mut kinds = kinds;
    kinds.sort();
    assert_eq!(
        kinds,
        [
            (2017, "ragged_records"),
            (2018, "unknown_header"),
            (2020, "records_mismatch")
        ]
    );
    let total: u64 = py.iter().map(|p| p.records).sum();
    assert_eq!(m["records_total"], total);
    assert_eq!(
        m["records_expected_total"],
        serde_json::Value::Null,
        "some files have no publisher count"
    );
}

#[test]
fn a_source_that_always_serves_a_cut_file_fails_it_and_stores_nothing() {
    let cms = CmsServer::start();
    let mut body = payments_csv(13, 5_000);
    body.extend_from_slice(b"\"UNCHANGED\",\"cut here");
    assert!(
        python_strict_rejects(&body),
        "Python's csv agrees the file ends inside a quoted field"
    );
    let path = cms.publish(2023, "General", NAME, body);
    let env = Env::new();
    let lake = env.lake();
    let o = env.run(&cms, &["--dest", lake.to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    let m = env.manifests().last().unwrap().clone();
    assert_eq!(m["status"], "failed");
    let a = &env.audits(&m)[0];
    assert_eq!(a["download"], "failed");
    assert!(
        a["error"]
            .as_str()
            .unwrap()
            .contains("inside a quoted field"),
        "{a:#}"
    );
    let gets = cms
        .requests(&path)
        .iter()
        .filter(|r| r.method == "GET")
        .count();
    assert_eq!(
        gets, 6,
        "fetched again up to the retry limit, then given up"
    );
    assert!(
        !lake.join("raw").exists(),
        "nothing stored: {:?}",
        std::fs::read_dir(&lake).map(|d| d.count())
    );
}

/// Python's strict csv reader refuses bytes that end inside quotes.
fn python_strict_rejects(bytes: &[u8]) -> bool {
    let o = run_python(bytes);
    !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("unexpected end of data")
}

#[test]
fn a_download_killed_mid_file_resumes_with_the_uninterrupted_count() {
    let cms = CmsServer::start();
    let body = payments_csv(12, 1_500_000);
    cms.publish(2023, "General", NAME, body.clone());
    let want = python_csv(&body);
    cms.throttle(Some(2_000_000));
    let env = Env::new();
    kill_when(env.cmd(&cms, &["--no-upload"]), || part_len(&env) > 300_000);
    let had = part_len(&env);
    assert!(
        had > 0 && had < body.len() as u64,
        "killed mid-file at {had}"
    );
    cms.throttle(None);
    let o = env.run(&cms, &["--no-upload"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let a = &env.audits(env.manifests().last().unwrap())[0];
    assert_eq!(a["download"], "resumed");
    assert_eq!(a["upload"], "not_attempted", "audited without an upload");
    assert_eq!(a["records"], want.records);
    assert_eq!(a["ragged_records"]["count"], 0);

    // A verified file reused by the next run keeps its count.
    let o = env.run(&cms, &["--no-upload"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let a = &env.audits(env.manifests().last().unwrap())[0];
    assert_eq!(a["download"], "skipped_verified");
    assert_eq!(a["records"], want.records);

    // A file recorded before records were kept is scanned once, then
    // its record carries the count.
    let file = env
        .work()
        .join(format!("raw/dataset=general-payments/year=2023/{NAME}"));
    let sidecar = file.with_file_name(format!("{NAME}.openpay.json"));
    let mut rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    assert_eq!(
        rec["records"]["records"], want.records,
        "kept in the record"
    );
    rec.as_object_mut().unwrap().remove("records");
    std::fs::write(&sidecar, serde_json::to_vec(&rec).unwrap()).unwrap();
    let o = env.run(&cms, &["--no-upload"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let a = &env.audits(env.manifests().last().unwrap())[0];
    assert_eq!(a["download"], "skipped_verified");
    assert_eq!(a["records"], want.records);
    let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    assert_eq!(rec["records"]["records"], want.records, "written back");
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_run_with_a_count_mismatch_exits_1_keeps_the_object_and_publishes_the_audit() {
    let moto = MotoServer::start();
    create_bucket(&moto, "raw-zone").await;
    let cms = CmsServer::start();
    let body = payments_csv(21, 200_000);
    cms.publish(2023, "General", NAME, body.clone());
    let want = python_csv(&body);
    cms.set_datastore(
        &dataset_id(2023, "General"),
        Datastore::Answer {
            count: want.records - 1,
            columns: columns(),
        },
    );
    let env = Env::new();
    let o = env
        .s3_cmd(&cms, &moto, &["--dest", "s3://raw-zone/openpay"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("records_mismatch"),
        "{}",
        text(&o)
    );
    let s3 = moto.clients().await.s3();
    let key = format!("openpay/raw/dataset=general-payments/year=2023/{NAME}");
    assert_eq!(
        sha256_hex(&object_bytes(&s3, "raw-zone", &key).await),
        sha256_hex(&body),
        "the object is what CMS served, and it stays"
    );
    let run_id = env.manifests()[0]["run_id"].as_str().unwrap().to_string();
    let dir = format!("openpay/metadata/runs/run_id={run_id}");
    let m: serde_json::Value = serde_json::from_slice(
        &object_bytes(&s3, "raw-zone", &format!("{dir}/manifest.json")).await,
    )
    .unwrap();
    assert_eq!(m["status"], "completed_with_findings");
    assert_eq!(m["records_total"], want.records);
    assert_eq!(m["records_expected_total"], want.records - 1);
    assert_eq!(m["findings"][0]["kind"], "records_mismatch");
    let audits = object_bytes(&s3, "raw-zone", &format!("{dir}/file_audits.jsonl")).await;
    let a: serde_json::Value = serde_json::from_str(
        std::str::from_utf8(&audits)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(a["records"], want.records);
    assert_eq!(a["columns"], want.columns);
    assert_eq!(a["header_match"], "publisher");
    assert_eq!(a["header_sha256"], sha256_hex(real_header().as_bytes()));
    assert_eq!(a["records_expected"], want.records - 1);
    assert_eq!(a["records_match"], false);
    assert_eq!(a["upload"], "uploaded");
}

/// The sample in `sample/cms` is a local directory source: no datastore.
#[test]
fn a_local_directory_source_has_no_expected_count_and_says_why() {
    let root = crate::common::repo_root().join("sample/cms");
    let env = Env::new();
    let o = openpay()
        .current_dir(env.work().parent().unwrap())
        .args(["run", "--year", "2023", "--no-upload", "--source-url"])
        .arg(&root)
        .arg("--work-dir")
        .arg(env.work())
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    let a = &env.audits(env.manifests().last().unwrap())[0];
    let stored = env.work().join(format!(
        "raw/dataset=general-payments/year=2023/{}",
        a["file"].as_str().unwrap()
    ));
    let want = python_csv(&std::fs::read(Path::new(&stored)).unwrap());
    assert_eq!(a["records"], want.records);
    assert_eq!(a["records_expected"], serde_json::Value::Null);
    assert!(
        a["records_expected_reason"]
            .as_str()
            .unwrap()
            .contains("local directory")
    );
    assert_eq!(a["header_match"], "known");
}
