//! Reading runs back (`openpay runs list|show`), checking them
//! (`openpay verify`) and the machine-readable end of `openpay run`, on a
//! local lake and on moto's S3, against the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;

use crate::common::cms::{CmsServer, dataset_csv, payments_csv, sha256_hex};
use crate::common::moto::MotoServer;
use crate::common::{code, openpay, repo_root, stdout_json as json_of, text};

const ROLE: &str = "openpay-runner";
const BUCKET: &str = "runs-zone";

/// One file per dataset for 2023, each its own name (`{WORD}_2023.csv`).
fn three_datasets(cms: &CmsServer) -> Vec<(&'static str, Vec<u8>)> {
    [
        ("General", "general-payments"),
        ("Research", "research-payments"),
        ("Ownership", "ownership-payments"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (word, ds))| {
        let body = dataset_csv(word, 70 + i as u64, 20_000 + 1_000 * i);
        cms.publish(2023, word, &format!("OP_{word}_2023.csv"), body.clone());
        (*ds, body)
    })
    .collect()
}

/// `openpay run --year 2023` from `cms` into `dest`, summary on stdout.
fn run_cmd(
    dir: &Path,
    work: &str,
    cms: &CmsServer,
    dest: &str,
    env: &[(String, String)],
) -> Command {
    let mut c = openpay();
    c.current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args([
            "run",
            "--year",
            "2023",
            "--source-url",
            &cms.url(),
            "--work-dir",
            work,
        ])
        .args(["--dest", dest, "--format", "json"]);
    c
}

/// [`run_cmd`] for all three datasets.
fn run_all(
    dir: &Path,
    work: &str,
    cms: &CmsServer,
    dest: &str,
    env: &[(String, String)],
) -> Output {
    run_cmd(dir, work, cms, dest, env)
        .args([
            "--dataset",
            "general-payments",
            "--dataset",
            "research-payments",
        ])
        .args(["--dataset", "ownership-payments"])
        .output()
        .unwrap()
}

fn verify(dir: &Path, run_id: &str, dest: &str, env: &[(String, String)]) -> Output {
    openpay()
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(["verify", run_id, "--dest", dest, "--format", "json"])
        .output()
        .unwrap()
}

/// outcome by dataset directory, from `verify --format json`.
fn outcomes(report: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<_> = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["file"].as_str().unwrap().to_string(),
                o["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn expect_tampered(report: &serde_json::Value) {
    assert_eq!(report["holds"], false, "{report}");
    assert_eq!(report["divergences"], 3, "{report}");
    assert_eq!(
        outcomes(report),
        [
            ("OP_General_2023.csv".to_string(), "replaced".to_string()),
            ("OP_Ownership_2023.csv".to_string(), "truncated".to_string()),
            ("OP_Research_2023.csv".to_string(), "deleted".to_string()),
        ],
        "{report}"
    );
}

/// Other bytes of the same length: only a checksum can tell.
fn same_length_other_bytes(body: &[u8]) -> Vec<u8> {
    let mut other = body.to_vec();
    let i = other.len() / 2;
    other[i] = if other[i] == b'x' { b'y' } else { b'x' };
    other
}

#[test]
fn verify_local_lake_catches_deleted_replaced_truncated_and_passes_untouched() {
    let cms = CmsServer::start();
    let bodies = three_datasets(&cms);
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let o = run_all(dir.path(), "data", &cms, lake.to_str().unwrap(), &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let summary = json_of(&o);
    let run_id = summary["run_id"].as_str().unwrap();
    assert!(
        summary["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["crc64nvme"].is_string()),
        "the audit records the CRC64/NVME verify compares: {summary}"
    );

    let o = verify(dir.path(), run_id, lake.to_str().unwrap(), &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let r = json_of(&o);
    assert_eq!(r["holds"], true, "{r}");
    assert_eq!(r["objects_checked"], 3, "{r}");
    assert!(outcomes(&r).iter().all(|(_, o)| o == "holds"), "{r}");

    let path =
        |ds: &str, word: &str| lake.join(format!("raw/dataset={ds}/year=2023/OP_{word}_2023.csv"));
    std::fs::remove_file(path("research-payments", "Research")).unwrap();
    std::fs::write(
        path("general-payments", "General"),
        same_length_other_bytes(&bodies[0].1),
    )
    .unwrap();
    let own = &bodies[2].1;
    std::fs::write(
        path("ownership-payments", "Ownership"),
        &own[..own.len() - 100],
    )
    .unwrap();
    let o = verify(dir.path(), run_id, lake.to_str().unwrap(), &[]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    expect_tampered(&json_of(&o));

    // The table says the same to a person.
    let o = openpay()
        .current_dir(dir.path())
        .args(["verify", "--latest", "--dest", lake.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", text(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    for word in ["deleted", "replaced", "truncated", "3 diverge"] {
        assert!(table.contains(word), "{word}: {table}");
    }
}

async fn s3_setup(moto: &MotoServer) -> aws_sdk_s3::Client {
    let clients = moto.clients().await;
    crate::common::iam::role(
        &clients,
        ROLE,
        &[("runner", &crate::common::iam::runner_policy(BUCKET))],
        &[],
    )
    .await;
    let s3 = clients.s3();
    crate::common::moto::create_bucket(&s3, BUCKET).await;
    s3
}

fn moto_env(moto: &MotoServer) -> Vec<(String, String)> {
    let mut env = moto.env();
    env.push(("OPENPAY_AWS_ROLE_NAME".into(), ROLE.into()));
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_s3_catches_deleted_replaced_truncated_and_passes_untouched() {
    let moto = MotoServer::start();
    let s3 = s3_setup(&moto).await;
    let cms = CmsServer::start();
    let bodies = three_datasets(&cms);
    let dir = tempfile::tempdir().unwrap();
    let env = moto_env(&moto);
    let dest = format!("s3://{BUCKET}/pre");
    let o = run_all(dir.path(), "data", &cms, &dest, &env);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let run_id = json_of(&o)["run_id"].as_str().unwrap().to_string();

    let o = verify(dir.path(), &run_id, &dest, &env);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let r = json_of(&o);
    assert_eq!(r["objects_checked"], 3, "{r}");
    assert!(outcomes(&r).iter().all(|(_, o)| o == "holds"), "{r}");

    // The bucket's listing reports damaged entries too.
    let runs = "pre/metadata/runs";
    let put_doc = |k: String, body: &'static [u8]| {
        s3.put_object()
            .bucket(BUCKET)
            .key(k)
            .body(ByteStream::from_static(body))
            .send()
    };
    put_doc(
        format!("{runs}/run_id=2020-01-01T00-00-00Z/manifest.json"),
        br#"{"run_id": "2020-01-"#,
    )
    .await
    .unwrap();
    put_doc(format!("{runs}/README.txt"), b"notes")
        .await
        .unwrap();
    let o = openpay()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(["runs", "list", "--format", "json", "--dest", &dest])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    let listed = json_of(&o);
    let entries: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["entry"].as_str().unwrap().into(),
                e["location"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(entries.len(), 3, "{listed}");
    assert!(
        entries.contains(&(
            "run".into(),
            format!("s3://{BUCKET}/{runs}/run_id={run_id}/")
        )),
        "{listed}"
    );
    assert!(
        entries.contains(&(
            "unreadable".into(),
            format!("s3://{BUCKET}/{runs}/run_id=2020-01-01T00-00-00Z/")
        )),
        "{listed}"
    );
    assert!(
        entries.contains(&("foreign".into(), format!("s3://{BUCKET}/{runs}/README.txt"))),
        "{listed}"
    );

    let key = |ds: &str, word: &str| format!("pre/raw/dataset={ds}/year=2023/OP_{word}_2023.csv");
    s3.delete_object()
        .bucket(BUCKET)
        .key(key("research-payments", "Research"))
        .send()
        .await
        .unwrap();
    // Overwritten as a careful writer would: with S3's CRC64/NVME, so the
    // object carries a checksum, just not the audited one.
    let put = |k: String, bytes: Vec<u8>| {
        s3.put_object()
            .bucket(BUCKET)
            .key(k)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .body(ByteStream::from(bytes))
            .send()
    };
    put(
        key("general-payments", "General"),
        same_length_other_bytes(&bodies[0].1),
    )
    .await
    .unwrap();
    let own = &bodies[2].1;
    put(
        key("ownership-payments", "Ownership"),
        own[..own.len() - 100].to_vec(),
    )
    .await
    .unwrap();
    // --latest skips the unreadable entry for the newest readable run.
    let o = openpay()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(["verify", "--latest", "--format", "json", "--dest", &dest])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", text(&o));
    let r = json_of(&o);
    assert_eq!(r["run_id"], run_id.as_str());
    expect_tampered(&r);
}

/// The sample source's 2023 run into a lake, with `--summary-json`.
fn sample_run(dir: &Path, lake: &Path, summary: &Path) -> Output {
    openpay()
        .current_dir(dir)
        .args([
            "run",
            "--year",
            "2023",
            "--work-dir",
            "data",
            "--source-url",
        ])
        .arg(repo_root().join("sample/cms"))
        .arg("--dest")
        .arg(lake)
        .arg("--summary-json")
        .arg(summary)
        .output()
        .unwrap()
}

#[test]
fn summary_json_states_the_end_of_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let path = dir.path().join("summary.json");
    let o = sample_run(dir.path(), &lake, &path);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(s["exit_code"], 0);
    assert_eq!(s["status"], "completed");
    assert_eq!(s["files_planned"], 1);
    assert_eq!(s["files_uploaded"], 1);
    let file = &s["files"][0];
    let object = lake
        .join("raw/dataset=general-payments/year=2023/OP_DTL_GNRL_PGYR2023_P01302025_01212025.csv");
    assert_eq!(file["key"], object.display().to_string());
    assert_eq!(file["upload"], "uploaded");
    assert_eq!(file["sha256"], sha256_hex(&std::fs::read(&object).unwrap()));
    assert_eq!(
        s["bytes_downloaded"],
        std::fs::metadata(&object).unwrap().len()
    );
    let manifest = PathBuf::from(s["manifest_location"]["destination"].as_str().unwrap());
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(
        m["run_id"], s["run_id"],
        "the summary points at the run's manifest"
    );

    // `--format json`: the same document on stdout, the logs on stderr.
    let o = openpay()
        .current_dir(dir.path())
        .args([
            "run",
            "--year",
            "2023",
            "--work-dir",
            "data",
            "--format",
            "json",
            "--source-url",
        ])
        .arg(repo_root().join("sample/cms"))
        .arg("--dest")
        .arg(&lake)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    let s2 = json_of(&o);
    assert_eq!(s2["files"][0]["upload"], "skipped_identical", "{s2}");
    assert_ne!(s2["run_id"], s["run_id"]);

    // A dry run's plan as JSON.
    let o = openpay()
        .current_dir(dir.path())
        .args([
            "run",
            "--year",
            "2024",
            "--dry-run",
            "--format",
            "json",
            "--source-url",
        ])
        .arg(repo_root().join("sample/cms"))
        .arg("--dest")
        .arg(&lake)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    let plan = json_of(&o);
    assert_eq!(
        plan[0]["file"], "OP_DTL_GNRL_PGYR2024_P06302025_06162025.csv",
        "{plan}"
    );
    assert_eq!(plan[0]["year"], 2024, "{plan}");

    // A summary path that cannot be written is refused before anything runs.
    let o = sample_run(dir.path(), &lake, &dir.path().join("missing/summary.json"));
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--summary-json"),
        "{}",
        text(&o)
    );
}

#[test]
fn runs_list_reports_half_written_and_foreign_entries_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let o = sample_run(dir.path(), &lake, &dir.path().join("s.json"));
    assert_eq!(code(&o), 0, "{}", text(&o));
    let runs = lake.join("metadata/runs");
    let good = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let manifest = std::fs::read(good.join("manifest.json")).unwrap();
    // What a copy cut off half-way leaves: the first half of a real manifest.
    let half = runs.join("run_id=2020-01-01T00-00-00Z");
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(half.join("manifest.json"), &manifest[..manifest.len() / 2]).unwrap();
    std::fs::write(runs.join("notes.txt"), "someone's notes").unwrap();

    let list = |extra: &[&str]| -> Output {
        openpay()
            .current_dir(dir.path())
            .args(["runs", "list", "--dest"])
            .arg(&lake)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = list(&["--format", "json"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let v = json_of(&o);
    let kinds: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 3, "{v}");
    for k in ["run", "unreadable", "foreign"] {
        assert!(kinds.contains(&k), "{k}: {v}");
    }
    let bad = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["entry"] == "unreadable")
        .unwrap();
    assert_eq!(bad["run_id"], "2020-01-01T00-00-00Z");
    assert!(
        bad["error"].as_str().unwrap().contains("half-written"),
        "{bad}"
    );
    let run = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["entry"] == "run")
        .unwrap();
    assert_eq!(run["status"], "completed");
    assert_eq!(run["manifest"]["years"][0], 2023);

    let o = list(&[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("UNREADABLE") && table.contains("notes.txt"),
        "{table}"
    );
    assert!(
        table.contains("1 run(s)") && table.contains("2 entries could not be read"),
        "{table}"
    );

    // Filters.
    let only = |extra: &[&str]| -> Vec<String> {
        let o = list(&[&["--format", "json"], extra].concat());
        assert_eq!(code(&o), 0, "{}", text(&o));
        json_of(&o)
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["entry"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(only(&["--status", "completed"]), ["run"]);
    assert_eq!(
        only(&["--year", "1999"]),
        ["unreadable"],
        "a damaged entry's year is unknown: shown"
    );
    assert_eq!(
        only(&["--dataset", "research-payments", "--status", "completed"]),
        Vec::<String>::new()
    );
    assert_eq!(only(&["--limit", "1"]).len(), 1);
    let o = list(&["--status", "complete"]);
    assert_eq!(
        code(&o),
        2,
        "a typo is an error, not an empty list: {}",
        text(&o)
    );

    // show: the run, its audits; an unknown id is exit 2.
    let id = run["run_id"].as_str().unwrap();
    let o = openpay()
        .current_dir(dir.path())
        .args(["runs", "show", id, "--format", "json", "--dest"])
        .arg(&lake)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    let s = json_of(&o);
    assert_eq!(s["manifest"]["status"], "completed");
    assert_eq!(s["audits"].as_array().unwrap().len(), 1);
    let o = openpay()
        .current_dir(dir.path())
        .args(["runs", "show", "1999-01-01T00-00-00Z", "--dest"])
        .arg(&lake)
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runs_racing_on_one_object_leave_one_object_and_two_truthful_audits() {
    let moto = MotoServer::start();
    let s3 = s3_setup(&moto).await;
    let cms = CmsServer::start();
    // Large enough to stream multipart, slow enough that both runs have
    // HEADed "absent" and are uploading parts when the first completes:
    // only the conditional create (If-None-Match: *) can decide.
    let body = payments_csv(90, 40 * 1024 * 1024);
    cms.publish(2023, "General", "OP_RACE_2023.csv", body.clone());
    cms.throttle(Some(4 * 1024 * 1024));
    let dir = tempfile::tempdir().unwrap();
    let env = moto_env(&moto);
    let dest = format!("s3://{BUCKET}");
    let start = |work: &str| -> std::process::Child {
        run_cmd(dir.path(), work, &cms, &dest, &env)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // B starts while A is still downloading (~10 s at 4 MiB/s): both have
    // HEADed "absent" and stream parts, and A completes seconds before B.
    // (Completions arriving together would test moto, not openpay: moto
    // checks If-None-Match and stores a 40 MiB object in two steps, not
    // atomically as S3 does.)
    let a = start("work-a");
    std::thread::sleep(std::time::Duration::from_secs(4));
    let b = start("work-b");
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!(code(&a), 0, "{}", text(&a));
    assert_eq!(code(&b), 0, "{}", text(&b));
    let files: Vec<serde_json::Value> = [&a, &b]
        .iter()
        .map(|o| json_of(o)["files"][0].clone())
        .collect();
    let mut uploads: Vec<&str> = files
        .iter()
        .map(|f| f["upload"].as_str().unwrap())
        .collect();
    uploads.sort();
    assert_eq!(uploads, ["skipped_identical", "uploaded"], "{files:?}");
    let loser = files
        .iter()
        .find(|f| f["upload"] == "skipped_identical")
        .unwrap();
    assert_eq!(
        loser["error"], "another writer uploaded the same content first",
        "the loser lost the conditional create, and says so: {loser}"
    );
    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("raw/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(1), "one object");
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("raw/dataset=general-payments/year=2023/OP_RACE_2023.csv")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(sha256_hex(&got), sha256_hex(&body), "byte-identical");
    assert!(
        files.iter().all(|f| f["sha256"] == sha256_hex(&body)),
        "both audits true"
    );
}
