//! README promises of `openpay run` that no other test covered, each
//! through the real binary against the CMS fixture (and moto's S3):
//! `--jobs N`, `--log-format json` and `OPENPAY_LOG`, `--run-id`, the
//! If-None-Match race, and the research and ownership datasets.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::cms::{CmsServer, dataset_csv, payments_csv, sha256_hex};
use crate::common::moto::{MotoServer, create_bucket};
use crate::common::openpay;

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `openpay run` in `dir` from `cms`, with `args` after the source.
fn run_cmd(dir: &Path, cms: &CmsServer, args: &[&str]) -> Command {
    let mut c = openpay();
    c.current_dir(dir)
        .args(["run", "--source-url", &cms.url()])
        .args(args);
    c
}

/// The manifests under `dir`'s work dir, oldest first.
fn manifests(dir: &Path) -> Vec<serde_json::Value> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir.join("data/metadata/runs"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    runs.sort();
    runs.iter()
        .map(|r| serde_json::from_slice(&std::fs::read(r.join("manifest.json")).unwrap()).unwrap())
        .collect()
}

fn audits(dir: &Path, run_id: &str) -> Vec<serde_json::Value> {
    let p = dir.join(format!(
        "data/metadata/runs/run_id={run_id}/file_audits.jsonl"
    ));
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits (up to 60 s, however busy the machine) until `ready` holds while
/// `child` still runs.
fn wait_until(child: &mut Child, what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        assert!(
            child.try_wait().unwrap().is_none(),
            "{what}: the run ended first"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Four General Payments files (2020–2023), each held by the fixture after
/// its first kilobyte: the transfers in flight are the transfers started.
fn four_held_files() -> (CmsServer, Vec<String>) {
    let cms = CmsServer::start();
    let paths: Vec<String> = (2020..=2023)
        .map(|y| {
            let p = cms.publish(
                y,
                "General",
                &format!("OP_DTL_GNRL_PGYR{y}.csv"),
                payments_csv(y as u64, 20_000),
            );
            cms.hold_at(&p, 1000);
            p
        })
        .collect();
    (cms, paths)
}

/// Starts a run of the four files, waits until `n` transfers are in flight
/// and checks no other starts while they are held, then lets them finish.
fn observe_jobs(cms: &CmsServer, paths: &[String], dir: &Path, extra: &[&str], n: u64) {
    let mut args = vec![
        "--year", "2020", "--year", "2021", "--year", "2022", "--year", "2023",
    ];
    args.extend_from_slice(extra);
    let mut child = run_cmd(dir, cms, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(&mut child, &format!("{n} transfers in flight"), || {
        cms.in_flight() >= n
    });
    // Held: nothing finishes, so a transfer beyond N would have to start
    // on top of these. Give it time to (wrongly) do so.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(cms.in_flight(), n, "exactly {n} files at once");
    for p in paths {
        cms.release(p);
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(cms.max_in_flight(), n, "never more than {n} at once");
    let m = manifests(dir).pop().unwrap();
    assert_eq!(m["files_downloaded"], 4, "{m}");
}

#[test]
fn jobs_n_transfers_n_files_at_once() {
    let (cms, paths) = four_held_files();
    let dir = tempfile::tempdir().unwrap();
    observe_jobs(&cms, &paths, dir.path(), &["--jobs", "3"], 3);

    // From the config file, in a fresh directory.
    assert_eq!(cms.in_flight(), 0, "the first run's bodies are done");
    cms.reset_counters();
    for p in &paths {
        cms.hold_at(p, 1000);
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("openpay.toml"), "[pipeline]\njobs = 2\n").unwrap();
    observe_jobs(&cms, &paths, dir.path(), &[], 2);
}

/// The JSON log lines of a run (every stderr line must be one).
fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect()
}

fn has_message(lines: &[serde_json::Value], level: &str, message: &str) -> bool {
    lines
        .iter()
        .any(|l| l["level"] == level && l["message"] == message)
}

#[test]
fn log_format_json_and_openpay_log_directives() {
    let cms = CmsServer::start();
    cms.publish(
        2023,
        "General",
        "OP_DTL_GNRL_PGYR2023.csv",
        payments_csv(80, 20_000),
    );
    let run = |env: &[(&str, &str)]| {
        let dir = tempfile::tempdir().unwrap();
        let o = run_cmd(
            dir.path(),
            &cms,
            &["--year", "2023", "--log-format", "json"],
        )
        .envs(env.iter().copied())
        .output()
        .unwrap();
        assert_eq!(code(&o), 0, "{}", text(&o));
        json_lines(&o)
    };
    let default = run(&[]);
    assert!(has_message(&default, "INFO", "run starting"), "{default:?}");
    let started = default
        .iter()
        .find(|l| l["message"] == "run starting")
        .unwrap();
    assert_eq!(started["files"], 1, "fields are JSON fields: {started}");
    let verified = "file verified and moved into place";
    assert!(
        !has_message(&default, "DEBUG", verified),
        "debug is off by default"
    );

    let debug = run(&[("OPENPAY_LOG", "openpay=debug")]);
    assert!(has_message(&debug, "DEBUG", verified), "{debug:?}");

    let quiet = run(&[("OPENPAY_LOG", "warn")]);
    assert!(
        quiet
            .iter()
            .all(|l| l["level"] == "WARN" || l["level"] == "ERROR"),
        "{quiet:?}"
    );
    assert!(!has_message(&quiet, "INFO", "run starting"));
}

#[test]
fn run_id_is_used_as_given_and_refused_when_unsafe() {
    let cms = CmsServer::start();
    cms.publish(
        2023,
        "General",
        "OP_DTL_GNRL_PGYR2023.csv",
        payments_csv(81, 5_000),
    );
    let dir = tempfile::tempdir().unwrap();
    let o = run_cmd(
        dir.path(),
        &cms,
        &["--year", "2023", "--run-id", "nightly_2024.v1"],
    )
    .output()
    .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(manifests(dir.path())[0]["run_id"], "nightly_2024.v1");
    assert!(
        dir.path()
            .join("lake/metadata/runs/run_id=nightly_2024.v1/manifest.json")
            .exists()
    );
    let long = "x".repeat(65);
    for bad in ["a/b", "", ".hidden", "two words", long.as_str()] {
        let dir = tempfile::tempdir().unwrap();
        let o = run_cmd(dir.path(), &cms, &["--year", "2023", "--run-id", bad])
            .output()
            .unwrap();
        assert_eq!(code(&o), 2, "{bad:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("--run-id"),
            "{bad:?}"
        );
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "{bad:?}: nothing written"
        );
    }
}

#[test]
fn two_runs_in_the_same_second_get_different_ids() {
    let cms = CmsServer::start();
    cms.publish(
        2023,
        "General",
        "OP_DTL_GNRL_PGYR2023.csv",
        payments_csv(82, 5_000),
    );
    let dir = tempfile::tempdir().unwrap();
    // Runs of this second and the next two already exist in the work dir:
    // the new run may not reuse (and overwrite) any of them.
    let now = chrono::Utc::now();
    let taken: Vec<String> = (0..3)
        .map(|s| {
            (now + chrono::Duration::seconds(s))
                .format("%Y-%m-%dT%H-%M-%SZ")
                .to_string()
        })
        .collect();
    for id in &taken {
        let d = dir.path().join(format!("data/metadata/runs/run_id={id}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("manifest.json"), format!(r#"{{"run_id":"{id}"}}"#)).unwrap();
    }
    let mut ids = Vec::new();
    for _ in 0..2 {
        let o = run_cmd(dir.path(), &cms, &["--year", "2023"])
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{}", text(&o));
        ids.push(
            manifests(dir.path()).pop().unwrap()["run_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for (i, id) in ids.iter().enumerate() {
        assert!(!taken.contains(id), "{id} reused");
        assert_eq!(id.len(), "2026-01-01T00-00-00Z".len(), "{id}");
        assert!(i == 0 || *id > ids[i - 1], "{ids:?}");
    }
    for id in &taken {
        let m = std::fs::read_to_string(
            dir.path()
                .join(format!("data/metadata/runs/run_id={id}/manifest.json")),
        )
        .unwrap();
        assert_eq!(
            m,
            format!(r#"{{"run_id":"{id}"}}"#),
            "an earlier run's manifest was overwritten"
        );
    }
}

#[test]
fn research_and_ownership_payments_end_to_end() {
    let cms = CmsServer::start();
    let files = [
        (
            "general-payments",
            "General",
            "OP_DTL_GNRL_PGYR2023_P01302025_01212025.csv",
        ),
        (
            "research-payments",
            "Research",
            "OP_DTL_RSRCH_PGYR2023_P01302025_01212025.csv",
        ),
        (
            "ownership-payments",
            "Ownership",
            "OP_DTL_OWNRSHP_PGYR2023_P01302025_01212025.csv",
        ),
    ];
    let bodies: Vec<Vec<u8>> = files
        .iter()
        .enumerate()
        .map(|(i, (_, word, name))| {
            let body = dataset_csv(word, 90 + i as u64, 30_000);
            cms.publish(2023, word, name, body.clone());
            body
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let o = run_cmd(
        dir.path(),
        &cms,
        &[
            "--year",
            "2023",
            "--dataset",
            "research-payments",
            "--dataset",
            "ownership-payments",
            "--dataset",
            "general-payments",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    let m = manifests(dir.path()).pop().unwrap();
    assert_eq!(m["files_planned"], 3, "{m}");
    assert_eq!(m["files_uploaded"], 3, "{m}");
    let datasets: Vec<&str> = m["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(
        datasets,
        [
            "general-payments",
            "research-payments",
            "ownership-payments"
        ]
    );
    let audits = audits(dir.path(), m["run_id"].as_str().unwrap());
    for ((dataset, _, name), body) in files.iter().zip(&bodies) {
        let key = format!("raw/dataset={dataset}/year=2023/{name}");
        assert_eq!(
            std::fs::read(dir.path().join("lake").join(&key)).unwrap(),
            *body,
            "{key} is byte-identical"
        );
        let a = audits.iter().find(|a| a["file"] == *name).unwrap();
        assert_eq!(a["dataset"], *dataset, "{a}");
        assert_eq!(a["sha256"], sha256_hex(body), "{a}");
    }
}

// ---- the If-None-Match race, against moto's S3 ----

const BUCKET: &str = "race-zone";

async fn bucket(moto: &MotoServer) -> aws_sdk_s3::Client {
    let s3 = moto.clients().await.s3();
    create_bucket(&s3, BUCKET).await;
    s3
}

/// A run streaming a 40 MiB file into `prefix` on moto, held by the
/// fixture once its multipart upload has begun (after the HEAD that found
/// no object); `other` is then stored by another writer with the SDK, and
/// the run is let go. Returns the run's audit and its output.
async fn race(
    moto: &MotoServer,
    s3: &aws_sdk_s3::Client,
    prefix: &str,
    other: impl FnOnce(&[u8]) -> (Vec<u8>, Option<String>),
) -> (serde_json::Value, String) {
    let cms = CmsServer::start();
    let name = "OP_DTL_GNRL_PGYR2023.csv";
    let body = payments_csv(83, 40 * 1024 * 1024);
    let path = cms.publish(2023, "General", name, body.clone());
    cms.hold_at(&path, 20 * 1024 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let mut child = run_cmd(
        dir.path(),
        &cms,
        &[
            "--year",
            "2023",
            "--skip-preflight",
            "--dest",
            &format!("s3://{BUCKET}/{prefix}"),
        ],
    )
    .envs(moto.env())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let key = format!("{prefix}/raw/dataset=general-payments/year=2023/{name}");
    let uploads = || {
        let s3 = s3.clone();
        std::thread::scope(|sc| {
            sc.spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async move {
                        s3.list_multipart_uploads()
                            .bucket(BUCKET)
                            .send()
                            .await
                            .unwrap()
                            .uploads()
                            .len()
                    })
            })
            .join()
            .unwrap()
        })
    };
    wait_until(&mut child, "the streamed upload began", || uploads() > 0);
    assert!(
        cms.served(&path) < body.len() as u64,
        "the download is still under way"
    );
    // The other writer wins the race.
    let (bytes, sha) = other(&body);
    let put = s3
        .put_object()
        .bucket(BUCKET)
        .key(&key)
        .set_metadata(sha.map(|s| [("sha256".to_string(), s)].into_iter().collect()))
        .body(bytes.into())
        .send()
        .await
        .unwrap();
    let theirs = put.e_tag().unwrap().to_string();
    cms.release(&path);
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    let m = manifests(dir.path()).pop().unwrap();
    let a = audits(dir.path(), m["run_id"].as_str().unwrap()).remove(0);
    let now = s3
        .head_object()
        .bucket(BUCKET)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        now.e_tag(),
        Some(theirs.as_str()),
        "the winner's object was kept"
    );
    let left = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert!(left.uploads().is_empty(), "the losing upload was aborted");
    (a, text(&o))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_race_lost_to_another_writer_is_rechecked_and_reported() {
    let moto = MotoServer::start();
    let s3 = bucket(&moto).await;
    // Different content: kept, reported as existing.
    let (a, out) = race(&moto, &s3, "different", |_| {
        (b"another writer's bytes".to_vec(), None)
    })
    .await;
    assert_eq!(a["upload"], "skipped_exists", "{a}\n{out}");
    assert!(
        a["error"]
            .as_str()
            .unwrap()
            .contains("another writer created this object first"),
        "{a}"
    );
    // The same content: the re-check recognises it by its sha256.
    let (a, out) = race(&moto, &s3, "same", |body| {
        (body.to_vec(), Some(sha256_hex(body)))
    })
    .await;
    assert_eq!(a["upload"], "skipped_identical", "{a}\n{out}");
    assert!(
        a["error"]
            .as_str()
            .unwrap()
            .contains("another writer uploaded the same content first"),
        "{a}"
    );
}
