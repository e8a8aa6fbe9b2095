//! `openpay run` end to end: the real binary against the CMS fixture
//! server, a local lake, and moto_server's S3 through the real SDK.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::cms::{CmsServer, Fault, dataset_csv, payments_csv, sha256_hex};
use crate::common::moto::MotoServer;
use crate::common::openpay;

pub(crate) const NAME: &str = "OP_DTL_GNRL_PGYR2023_P01302025_01212025.csv";

pub(crate) struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    pub(crate) fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub(crate) fn work(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    pub(crate) fn lake(&self) -> PathBuf {
        self.dir.path().join("lake")
    }
    pub(crate) fn cmd(&self, cms: &CmsServer, extra: &[&str]) -> Command {
        let mut c = openpay();
        c.current_dir(self.dir.path());
        c.args([
            "run",
            "--year",
            "2023",
            "--source-url",
            &cms.url(),
            "--work-dir",
        ])
        .arg(self.work());
        c.args(extra);
        c
    }
    pub(crate) fn run(&self, cms: &CmsServer, extra: &[&str]) -> Output {
        self.cmd(cms, extra).output().unwrap()
    }
    /// [`cmd`](Self::cmd) with the credentials and endpoint of `moto`.
    pub(crate) fn s3_cmd(&self, cms: &CmsServer, moto: &MotoServer, extra: &[&str]) -> Command {
        let mut c = self.cmd(cms, extra);
        s3_env(moto, &mut c);
        c
    }
    /// Runs into `dest` on `moto`, expects exit 0; the run's manifest.
    fn s3_run_ok(&self, cms: &CmsServer, moto: &MotoServer, dest: &str) -> serde_json::Value {
        let o = self.s3_cmd(cms, moto, &["--dest", dest]).output().unwrap();
        assert_eq!(code(&o), 0, "{}", text(&o));
        self.manifests().last().unwrap().clone()
    }
    pub(crate) fn manifests(&self) -> Vec<serde_json::Value> {
        crate::common::run_manifests(&self.work())
    }
    pub(crate) fn audits(&self, manifest: &serde_json::Value) -> Vec<serde_json::Value> {
        let dir = self.work().join(format!(
            "metadata/runs/run_id={}",
            manifest["run_id"].as_str().unwrap()
        ));
        std::fs::read_to_string(dir.join("file_audits.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

pub(crate) fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn lake_file(env: &Env) -> PathBuf {
    env.lake()
        .join(format!("raw/dataset=general-payments/year=2023/{NAME}"))
}

#[test]
fn local_lake_run_then_rerun_is_idempotent() {
    let cms = CmsServer::start();
    let body = payments_csv(1, 300_000);
    let path = cms.publish(2023, "General", NAME, body.clone());
    let env = Env::new();
    let lake = env.lake();
    let o = env.run(&cms, &["--dest", lake.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(
        std::fs::read(lake_file(&env)).unwrap(),
        body,
        "lake copy is byte-identical"
    );
    let m = &env.manifests()[0];
    assert_eq!(m["status"], "completed");
    assert_eq!(m["files_downloaded"], 1);
    assert_eq!(m["files_uploaded"], 1);
    assert_eq!(m["bytes_downloaded"], body.len() as u64);
    let a = &env.audits(m)[0];
    assert_eq!(a["sha256"], sha256_hex(&body));
    assert_eq!(a["download"], "downloaded");
    assert!(
        env.lake()
            .join(format!(
                "metadata/runs/run_id={}/manifest.json",
                m["run_id"].as_str().unwrap()
            ))
            .exists(),
        "manifest copied to the destination"
    );
    // The User-Agent says who we are.
    assert!(cms.requests(&path).iter().all(|r| {
        r.user_agent
            .as_deref()
            .is_some_and(|u| u.starts_with("openpay/"))
    }));

    cms.reset_counters();
    let o = env.run(&cms, &["--dest", lake.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(
        cms.served(&path),
        0,
        "a verified local file is not downloaded again: {}",
        text(&o)
    );
    let ms = env.manifests();
    assert_eq!(ms.len(), 2, "each run has its own manifest");
    let a = &env.audits(&ms[1])[0];
    assert_eq!(a["download"], "skipped_verified");
    assert_eq!(a["upload"], "skipped_identical");
    assert_eq!(ms[1]["files_uploaded"], 0);
}

#[test]
fn dropped_connection_resumes_with_range_and_if_range() {
    let cms = CmsServer::start();
    let body = payments_csv(2, 1_000_000);
    let path = cms.publish(2023, "General", NAME, body.clone());
    cms.push_fault(&path, Fault::DropAfter(400_000));
    let env = Env::new();
    let o = env.run(&cms, &["--dest", env.lake().to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(std::fs::read(lake_file(&env)).unwrap(), body);
    let a = &env.audits(&env.manifests()[0])[0];
    assert_eq!(
        a["download"],
        "resumed",
        "{a}\n{:?}\n{}",
        cms.requests(&path),
        text(&o)
    );
    assert!(a["attempts"].as_u64().unwrap() >= 2);
    let gets: Vec<_> = cms
        .requests(&path)
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    let resumed = gets.last().unwrap();
    assert_eq!(
        resumed.range.as_deref(),
        Some("bytes=400000-"),
        "continues where the drop happened"
    );
    assert!(
        resumed
            .if_range
            .as_deref()
            .is_some_and(|v| v.starts_with('"')),
        "guarded by the ETag: {resumed:?}"
    );
    assert!(
        cms.served(&path) < body.len() as u64 + 100_000,
        "only the missing tail was served again"
    );
}

#[test]
fn throttling_429_and_waf_403_are_retried_honouring_retry_after() {
    let cms = CmsServer::start();
    let body = payments_csv(3, 50_000);
    let path = cms.publish(2023, "General", NAME, body.clone());
    cms.push_fault(&path, Fault::Status(429, Some(1)));
    cms.push_fault(&path, Fault::WafForbidden);
    cms.push_fault(&path, Fault::Status(503, None));
    let env = Env::new();
    let started = Instant::now();
    let o = env.run(&cms, &["--dest", env.lake().to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(std::fs::read(lake_file(&env)).unwrap(), body);
    assert_eq!(env.audits(&env.manifests()[0])[0]["attempts"], 4);
}

#[test]
fn endless_throttling_fails_the_file_not_the_run_and_exits_1() {
    let cms = CmsServer::start();
    let ok_body = payments_csv(4, 10_000);
    cms.publish(2023, "General", NAME, ok_body);
    let bad = cms.publish(
        2023,
        "Research",
        "OP_DTL_RSRCH_PGYR2023.csv",
        dataset_csv("Research", 5, 10_000),
    );
    for _ in 0..20 {
        cms.push_fault(&bad, Fault::Status(429, Some(0)));
    }
    let env = Env::new();
    let o = env.run(
        &cms,
        &[
            "--dataset",
            "general-payments",
            "--dataset",
            "research-payments",
            "--dest",
            env.lake().to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    let m = &env.manifests()[0];
    assert_eq!(m["status"], "partial");
    assert_eq!(m["files_failed"], 1);
    let audits = env.audits(m);
    let failed = audits.iter().find(|a| a["download"] == "failed").unwrap();
    assert!(
        failed["error"].as_str().unwrap().contains("HTTP 429"),
        "{failed}"
    );
    assert!(
        audits.iter().any(|a| a["upload"] == "uploaded"),
        "the other file went on"
    );
}

#[test]
fn changed_content_is_kept_unless_overwrite() {
    let cms = CmsServer::start();
    let v1 = payments_csv(6, 20_000);
    let path = cms.publish(2023, "General", NAME, v1.clone());
    let env = Env::new();
    let lake = env.lake();
    assert_eq!(code(&env.run(&cms, &["--dest", lake.to_str().unwrap()])), 0);
    // CMS republishes different bytes under the same URL.
    let v2 = payments_csv(7, 20_000);
    cms.set_file(&path, v2.clone());
    let o = env.run(&cms, &["--dest", lake.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let ms = env.manifests();
    let a = &env.audits(&ms[1])[0];
    assert_eq!(
        a["download"], "downloaded",
        "the stale local copy was fetched again"
    );
    assert_eq!(a["upload"], "skipped_exists");
    assert!(a["error"].as_str().unwrap().contains("--overwrite"));
    assert_eq!(
        std::fs::read(lake_file(&env)).unwrap(),
        v1,
        "kept without --overwrite"
    );
    let o = env.run(&cms, &["--dest", lake.to_str().unwrap(), "--overwrite"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(
        std::fs::read(lake_file(&env)).unwrap(),
        v2,
        "replaced with --overwrite"
    );
}

#[test]
fn dry_run_prints_the_plan_and_touches_nothing() {
    let cms = CmsServer::start();
    let body = payments_csv(8, 30_000);
    let path = cms.publish(2023, "General", NAME, body.clone());
    let env = Env::new();
    let o = env.run(&cms, &["--dest", env.lake().to_str().unwrap(), "--dry-run"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(NAME)
            && out.contains(&path)
            && out.contains("raw/dataset=general-payments/year=2023"),
        "{out}"
    );
    assert!(
        !env.work().exists() && !env.lake().exists(),
        "nothing written"
    );
    assert_eq!(cms.served(&path), 0);
}

#[test]
fn bad_inputs_exit_2_with_a_clear_message() {
    let cms = CmsServer::start();
    cms.publish(2023, "General", NAME, payments_csv(9, 1000));
    let env = Env::new();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--year", "1999"], "1999"),
        (vec!["--dataset", "general"], "invalid value"),
        (vec!["--dest", "s3://"], "bucket"),
        (vec!["--jobs", "0"], "--jobs"),
        (vec!["--run-id", "../x"], "--run-id"),
    ];
    for (args, needle) in cases {
        let o = env.run(&cms, &args);
        assert_eq!(code(&o), 2, "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(needle),
            "{args:?}: {}",
            text(&o)
        );
    }
    // A year the catalog lacks names the years it has.
    let mut c = openpay();
    let o = c
        .current_dir(env.dir.path())
        .args(["run", "--year", "2020", "--source-url", &cms.url()])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("years it has: 2023"),
        "{}",
        text(&o)
    );
    // An unreadable config file.
    let o = openpay()
        .current_dir(env.dir.path())
        .args([
            "--config",
            "/nonexistent/openpay.toml",
            "run",
            "--year",
            "2023",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/openpay.toml"));
    assert!(!env.work().exists(), "no partial write");
}

#[test]
fn malformed_catalog_is_exit_2() {
    let cms = CmsServer::start();
    // JSON, but not the DKAN list (an HTML page instead is an outage: 3).
    cms.set_raw_catalog(r#"{"not": "a list"}"#);
    let env = Env::new();
    let o = env.run(&cms, &[]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("expected a JSON array"),
        "{}",
        text(&o)
    );
    assert!(!env.work().exists());
}

#[test]
fn traversal_in_a_download_url_fails_that_file_and_writes_nothing_outside() {
    let cms = CmsServer::start();
    cms.catalog_entry(
        "2023 General Payment Data",
        &format!("{}/files/..%2F..%2F..%2Fescaped.csv", cms.url()),
    );
    let env = Env::new();
    let o = env.run(&cms, &["--dest", env.lake().to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    let m = &env.manifests()[0];
    assert_eq!(m["status"], "failed");
    let a = &env.audits(m)[0];
    assert!(
        a["error"].as_str().unwrap().contains("plain file name"),
        "{a}"
    );
    let stray: Vec<_> = walk(env.dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("escaped"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn blocked_preflight_exits_3_and_records_it() {
    let cms = CmsServer::start();
    let path = cms.publish(2023, "General", NAME, payments_csv(10, 1000));
    let env = Env::new();
    // The destination is a file, so it cannot be a lake directory.
    let not_a_dir = env.dir.path().join("lake-file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let o = env.run(&cms, &["--dest", not_a_dir.to_str().unwrap()]);
    assert_eq!(code(&o), 3, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("run.destination"),
        "{}",
        text(&o)
    );
    let m = &env.manifests()[0];
    assert_eq!(m["status"], "blocked");
    assert_eq!(m["preflight"]["passed"], false);
    assert_eq!(m["preflight"]["failing"][0], "run.destination");
    assert_eq!(cms.served(&path), 0, "nothing downloaded");
    // --skip-preflight is recorded.
    let o = env.run(
        &cms,
        &["--dest", env.lake().to_str().unwrap(), "--skip-preflight"],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(
        env.manifests().last().unwrap()["preflight"]["skipped"],
        true
    );
}

/// Starts a slow run, waits until `ready` holds, then SIGKILLs it.
pub(crate) fn kill_when(mut cmd: Command, ready: impl Fn() -> bool) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "the run never reached the point to kill it"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

pub(crate) fn part_len(env: &Env) -> u64 {
    let p = env.work().join(format!(
        "raw/dataset=general-payments/year=2023/{NAME}.part"
    ));
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn sigkill_mid_download_then_rerun_resumes_and_completes() {
    let cms = CmsServer::start();
    let body = payments_csv(11, 2_000_000);
    let path = cms.publish(2023, "General", NAME, body.clone());
    cms.hold_at(&path, 400_000);
    let env = Env::new();
    let lake = env.lake();
    kill_when(env.cmd(&cms, &["--dest", lake.to_str().unwrap()]), || {
        part_len(&env) > 300_000
    });
    // The manifest a kill -9 leaves is still valid JSON, status running.
    let m = &env.manifests()[0];
    assert_eq!(m["status"], "running");
    let had = part_len(&env);
    assert!(had > 0);
    cms.release(&path);
    cms.reset_counters();
    let o = env.run(&cms, &["--dest", lake.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        cms.served(&path) < body.len() as u64,
        "second run fetched only the tail: {} of {}",
        cms.served(&path),
        body.len()
    );
    assert_eq!(
        std::fs::read(lake_file(&env)).unwrap(),
        body,
        "byte-identical after resume"
    );
    let a = &env.audits(env.manifests().last().unwrap())[0];
    assert_eq!(a["download"], "resumed");
}

#[test]
fn second_run_on_the_same_work_dir_is_refused() {
    let cms = CmsServer::start();
    let path = cms.publish(2023, "General", NAME, payments_csv(12, 1_000_000));
    // The first run stays mid-download (holding the lock) until it is killed.
    cms.hold_at(&path, 500_000);
    let env = Env::new();
    let lake = env.lake();
    let mut first = env
        .cmd(&cms, &["--dest", lake.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The manifest is written only once the lock is held.
    let deadline = Instant::now() + Duration::from_secs(30);
    while env
        .work()
        .join("metadata/runs")
        .read_dir()
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "the first run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = env.run(&cms, &["--dest", lake.to_str().unwrap()]);
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(code(&o), 3, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("another openpay run holds the lock"),
        "{}",
        text(&o)
    );
}

#[test]
fn offline_sample_source_works_from_the_repo() {
    let env = Env::new();
    let sample = crate::common::repo_root().join("sample/cms");
    let o = openpay()
        .current_dir(env.dir.path())
        .args([
            "run",
            "--year",
            "2023",
            "--source-url",
            sample.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    let lake = env.lake().join("raw/dataset=general-payments/year=2023");
    let files: Vec<_> = std::fs::read_dir(&lake)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let csv = std::fs::read_to_string(lake.join(&files[0])).unwrap();
    assert_eq!(csv.lines().next().unwrap().split(',').count(), 91);
}

// ---- S3 (moto_server through the real SDK) ----

/// The runner role the preflight's `aws.iam.put-object` evaluates.
const ROLE: &str = "openpay-runner";

fn s3_env(moto: &MotoServer, cmd: &mut Command) {
    for (k, v) in moto.env() {
        cmd.env(k, v);
    }
    cmd.env("OPENPAY_AWS_ROLE_NAME", ROLE);
}

/// A bucket plus the instance role with the repo's own policy, as
/// `openpay tf apply` leaves them.
pub(crate) async fn create_bucket(moto: &MotoServer, bucket: &str) {
    let clients = moto.clients().await;
    let policy = crate::common::iam::runner_policy(bucket);
    crate::common::iam::role(&clients, ROLE, &[("runner", &policy)], &[]).await;
    crate::common::moto::create_bucket(&clients.s3(), bucket).await;
}

/// HeadObject, asking for the object's checksum too.
async fn head_checked(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    s3.head_object()
        .bucket(bucket)
        .key(key)
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .unwrap()
}

/// What an S3 test starts from: moto with the `raw-zone` bucket and the
/// runner role, and a CMS source publishing one General Payments file.
struct S3Case {
    moto: MotoServer,
    cms: CmsServer,
    body: Vec<u8>,
    /// The file's path on the CMS server (for its counters and faults).
    path: String,
}

async fn s3_case(seed: u64, size: usize) -> S3Case {
    let moto = MotoServer::start();
    create_bucket(&moto, "raw-zone").await;
    let cms = CmsServer::start();
    let body = payments_csv(seed, size);
    let path = cms.publish(2023, "General", NAME, body.clone());
    S3Case {
        moto,
        cms,
        body,
        path,
    }
}

/// The whole content of an object.
pub(crate) async fn object_bytes(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> bytes::Bytes {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    out.body.collect().await.unwrap().into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_first_run_uploads_with_sha256_and_rerun_uploads_nothing() {
    let S3Case {
        moto,
        cms,
        body,
        path: _,
    } = s3_case(20, 200_000).await;
    let env = Env::new();
    env.s3_run_ok(&cms, &moto, "s3://raw-zone/openpay");
    let s3 = moto.clients().await.s3();
    let key = format!("openpay/raw/dataset=general-payments/year=2023/{NAME}");
    let head = head_checked(&s3, "raw-zone", &key).await;
    assert_eq!(
        head.metadata().unwrap().get("sha256").unwrap(),
        &sha256_hex(&body),
        "sha256 travels with the object"
    );
    assert_eq!(
        head.checksum_crc64_nvme(),
        Some(crc64nvme_b64(&body).as_str()),
        "and S3's own CRC64/NVME"
    );
    let got = object_bytes(&s3, "raw-zone", &key).await;
    assert_eq!(sha256_hex(&got), sha256_hex(&body));
    let run_id = env.manifests()[0]["run_id"].as_str().unwrap().to_string();
    let man_key = format!("openpay/metadata/runs/run_id={run_id}/manifest.json");
    let man: serde_json::Value =
        serde_json::from_slice(&object_bytes(&s3, "raw-zone", &man_key).await).unwrap();
    assert_eq!(man["status"], "completed");

    let m = env.s3_run_ok(&cms, &moto, "s3://raw-zone/openpay");
    assert_eq!(m["files_uploaded"], 0, "zero PutObject for the data file");
    assert_eq!(env.audits(&m)[0]["upload"], "skipped_identical");
    let head2 = head_checked(&s3, "raw-zone", &key).await;
    assert_eq!(
        head.last_modified(),
        head2.last_modified(),
        "object untouched"
    );
}

/// Runs `f` on a runtime of its own, from synchronous test code (a poll
/// inside `kill_when`) that already runs on a test runtime.
fn on_side_runtime<T: Send>(f: impl std::future::Future<Output = T> + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(f)
            })
            .join()
            .unwrap()
    })
}

/// Parts already stored by multipart uploads still open in `bucket`.
fn open_upload_parts(moto: &MotoServer, bucket: &str) -> usize {
    on_side_runtime(async {
        let s3 = moto.clients().await.s3();
        let uploads = s3
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        let mut parts = 0;
        for u in uploads.uploads() {
            // moto 5.2.5 answers ListParts with a root element the SDK
            // rejects (ListPartsResponse); count the parts in the raw XML.
            let url = format!(
                "{}/{bucket}/{}?uploadId={}",
                moto.url(),
                u.key().unwrap(),
                u.upload_id().unwrap()
            );
            let xml = reqwest::get(url).await.unwrap().text().await.unwrap();
            parts += xml.matches("<Part>").count();
        }
        parts
    })
}

/// S3's full-object CRC64/NVME of `bytes`, as HeadObject reports it.
fn crc64nvme_b64(bytes: &[u8]) -> String {
    let mut h = openpay::pipeline::checksum::Hasher::default();
    h.update(bytes);
    h.finish().crc64nvme
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_upload_overlaps_the_download_and_carries_s3s_checksum() {
    let S3Case {
        moto,
        cms,
        body,
        path,
    } = s3_case(22, 40 * 1024 * 1024).await;
    // The download stops at 20 MiB until released: a part must reach S3
    // while it waits.
    cms.hold_at(&path, 20 * 1024 * 1024);
    let env = Env::new();
    let mut c = env.s3_cmd(&cms, &moto, &["--dest", "s3://raw-zone", "-v"]);
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let served_at_first_part = loop {
        assert!(Instant::now() < deadline, "no part was uploaded in 60 s");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before any part was seen in flight"
        );
        if open_upload_parts(&moto, "raw-zone") > 0 {
            break cms.served(&path);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        served_at_first_part < body.len() as u64,
        "a part was stored while the download was under way ({served_at_first_part} of {} bytes served)",
        body.len()
    );
    cms.release(&path);
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        text(&o).contains("downloaded; uploading the last parts"),
        "a full bar says what it still waits for: {}",
        text(&o)
    );
    let m = env.manifests().last().unwrap().clone();
    assert_eq!(m["status"], "completed");
    let a = &env.audits(&m)[0];
    assert_eq!(a["download"], "downloaded");
    assert_eq!(a["upload"], "uploaded");
    assert_eq!(a["sha256"], sha256_hex(&body), "the audit keeps the sha256");
    assert_eq!(
        cms.served(&path),
        body.len() as u64,
        "the source was read once"
    );

    let s3 = moto.clients().await.s3();
    let key = format!("raw/dataset=general-payments/year=2023/{NAME}");
    let head = head_checked(&s3, "raw-zone", &key).await;
    assert_eq!(
        head.checksum_crc64_nvme(),
        Some(crc64nvme_b64(&body).as_str()),
        "the object carries the file's full-object CRC64/NVME"
    );
    assert_eq!(
        head.checksum_type(),
        Some(&aws_sdk_s3::types::ChecksumType::FullObject)
    );
    let got = object_bytes(&s3, "raw-zone", &key).await;
    assert_eq!(sha256_hex(&got), sha256_hex(&body), "byte-identical");
    // For stores that keep no checksum: the work dir remembers which
    // object it uploaded.
    let sidecar = env.work().join(format!(
        "raw/dataset=general-payments/year=2023/{NAME}.openpay.json"
    ));
    let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    assert_eq!(
        rec["uploaded"][format!("s3://raw-zone/{key}")].as_str(),
        head.e_tag(),
        "{rec}"
    );

    // Rerun, same work dir: nothing moves.
    cms.reset_counters();
    let m = env.s3_run_ok(&cms, &moto, "s3://raw-zone");
    let a = &env.audits(&m)[0];
    assert_eq!(a["download"], "skipped_verified");
    assert_eq!(a["upload"], "skipped_identical", "{a}");
    assert_eq!(cms.served(&path), 0);

    // Another machine (empty work dir): it downloads, then recognises the
    // object by its CRC without uploading.
    let other = Env::new();
    let m = other.s3_run_ok(&cms, &moto, "s3://raw-zone");
    let a = &other.audits(&m)[0];
    assert_eq!(a["download"], "downloaded");
    assert_eq!(a["upload"], "skipped_identical", "{a}");
    assert_eq!(m["files_uploaded"], 0);
    let head2 = head_checked(&s3, "raw-zone", &key).await;
    assert_eq!(
        head.last_modified(),
        head2.last_modified(),
        "object untouched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_republished_mid_stream_voids_the_streamed_parts() {
    let S3Case {
        moto,
        cms,
        body: old,
        path,
    } = s3_case(24, 40 * 1024 * 1024).await;
    // Same size, other bytes: only the validator tells them apart. Only
    // letters and digits of the records change (not the header), so the
    // file stays well-formed CSV of the same layout.
    let mut new = old.clone();
    let records_start = old.iter().position(|&b| b == b'\n').unwrap() + 1;
    for b in new.iter_mut().skip(records_start + 1000).step_by(4096) {
        if b.is_ascii_alphanumeric() {
            *b = if *b == b'x' { b'y' } else { b'x' };
        }
    }
    cms.hold_at(&path, 20 * 1024 * 1024);
    cms.push_fault(&path, Fault::DropAfter(30 * 1024 * 1024));
    let env = Env::new();
    let mut c = env.s3_cmd(&cms, &moto, &["--dest", "s3://raw-zone", "-v"]);
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Republish once parts of the old bytes are in S3; the drop at 30 MiB
    // then resumes with If-Range, which no longer matches: a restart.
    let deadline = Instant::now() + Duration::from_secs(60);
    while open_upload_parts(&moto, "raw-zone") == 0 {
        assert!(Instant::now() < deadline, "no part was uploaded in 60 s");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended too early"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        cms.served(&path) < 30 * 1024 * 1024,
        "republished before the drop"
    );
    cms.set_file(&path, new.clone());
    cms.release(&path);
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    let a = &env.audits(env.manifests().last().unwrap())[0];
    assert_eq!(a["download"], "downloaded", "restarted from zero: {a}");
    assert_eq!(a["upload"], "uploaded", "{a}");
    assert_eq!(a["sha256"], sha256_hex(&new));
    let s3 = moto.clients().await.s3();
    let key = format!("raw/dataset=general-payments/year=2023/{NAME}");
    let got = object_bytes(&s3, "raw-zone", &key).await;
    assert_eq!(
        sha256_hex(&got),
        sha256_hex(&new),
        "the object is the new version, never old parts spliced with new ones"
    );
    let uploads = s3
        .list_multipart_uploads()
        .bucket("raw-zone")
        .send()
        .await
        .unwrap();
    assert!(
        uploads.uploads().is_empty(),
        "the voided upload was aborted: {:?}",
        uploads.uploads()
    );
    assert!(
        text(&o).contains("uploading the finished file instead"),
        "{}",
        text(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_failing_mid_stream_aborts_its_upload_and_stores_nothing() {
    let S3Case {
        moto,
        cms,
        body: _,
        path,
    } = s3_case(25, 40 * 1024 * 1024).await;
    // A first part's worth arrives, then the source throttles for good.
    cms.push_fault(&path, Fault::DropAfter(20 * 1024 * 1024));
    for _ in 0..20 {
        cms.push_fault(&path, Fault::Status(429, Some(0)));
    }
    let env = Env::new();
    let o = env
        .s3_cmd(&cms, &moto, &["--dest", "s3://raw-zone"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", text(&o));
    let a = &env.audits(env.manifests().last().unwrap())[0];
    assert_eq!(a["download"], "failed", "{a}");
    assert_eq!(a["upload"], "not_attempted", "{a}");
    let s3 = moto.clients().await.s3();
    let uploads = s3
        .list_multipart_uploads()
        .bucket("raw-zone")
        .send()
        .await
        .unwrap();
    assert!(
        uploads.uploads().is_empty(),
        "the streamed upload was aborted: {:?}",
        uploads.uploads()
    );
    let listed = s3
        .list_objects_v2()
        .bucket("raw-zone")
        .prefix("raw/")
        .send()
        .await
        .unwrap();
    assert!(listed.contents().is_empty(), "nothing stored under raw/");
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_multipart_upload_and_sigkill_mid_upload_then_rerun() {
    let S3Case {
        moto,
        cms,
        body,
        path,
    } = s3_case(21, 40 * 1024 * 1024).await;
    cms.hold_at(&path, 20 * 1024 * 1024);
    let env = Env::new();
    // Killed with parts in S3 and the download still running.
    kill_when(
        env.s3_cmd(&cms, &moto, &["--dest", "s3://raw-zone"]),
        || open_upload_parts(&moto, "raw-zone") > 0,
    );
    let had = part_len(&env);
    assert!(
        had > 0 && had < body.len() as u64,
        "killed mid-download: {had} bytes in the .part file"
    );
    cms.release(&path);
    cms.reset_counters();
    let m = env.s3_run_ok(&cms, &moto, "s3://raw-zone");
    assert_eq!(m["status"], "completed");
    let a = &env.audits(&m)[0];
    assert_eq!(a["download"], "resumed");
    assert_eq!(a["upload"], "uploaded");
    assert!(
        cms.served(&path) <= body.len() as u64 - had,
        "only the tail was fetched again"
    );
    let s3 = moto.clients().await.s3();
    let key = format!("raw/dataset=general-payments/year=2023/{NAME}");
    let got = object_bytes(&s3, "raw-zone", &key).await;
    assert_eq!(got.len(), body.len());
    assert_eq!(
        sha256_hex(&got),
        sha256_hex(&body),
        "multipart object is byte-identical"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verified_local_file_uploads_multipart_labelled_with_its_sha256() {
    let S3Case {
        moto,
        cms,
        body,
        path: _,
    } = s3_case(23, 36 * 1024 * 1024).await;
    let env = Env::new();
    let o = env.run(&cms, &["--no-upload"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    env.s3_run_ok(&cms, &moto, "s3://raw-zone");
    let a = &env.audits(env.manifests().last().unwrap())[0];
    assert_eq!(a["download"], "skipped_verified");
    assert_eq!(a["upload"], "uploaded");
    let s3 = moto.clients().await.s3();
    let key = format!("raw/dataset=general-payments/year=2023/{NAME}");
    let head = head_checked(&s3, "raw-zone", &key).await;
    assert_eq!(
        head.metadata().unwrap().get("sha256"),
        Some(&sha256_hex(&body)),
        "known before the upload, the sha256 labels the object"
    );
    assert_eq!(
        head.checksum_crc64_nvme(),
        Some(crc64nvme_b64(&body).as_str())
    );
}

#[test]
fn a_partial_file_from_before_a_reboot_is_fetched_again() {
    let cms = CmsServer::start();
    let body = payments_csv(12, 2_000_000);
    let path = cms.publish(2023, "General", NAME, body.clone());
    cms.hold_at(&path, 400_000);
    let env = Env::new();
    let lake = env.lake();
    kill_when(env.cmd(&cms, &["--dest", lake.to_str().unwrap()]), || {
        part_len(&env) > 300_000
    });
    // Pretend the machine rebooted: the unsynced bytes are not trusted.
    let state = env.work().join(format!(
        "raw/dataset=general-payments/year=2023/{NAME}.part.json"
    ));
    let mut s: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    s["boot"] = "an-earlier-boot".into();
    std::fs::write(&state, serde_json::to_vec(&s).unwrap()).unwrap();
    cms.release(&path);
    cms.reset_counters();
    let o = env.run(&cms, &["--dest", lake.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(cms.served(&path), body.len() as u64, "fetched from byte 0");
    assert_eq!(std::fs::read(lake_file(&env)).unwrap(), body);
    let a = &env.audits(env.manifests().last().unwrap())[0];
    assert_eq!(a["download"], "downloaded");
}

#[test]
fn a_final_file_from_before_a_reboot_is_rehashed_not_trusted() {
    let cms = CmsServer::start();
    let body = payments_csv(13, 300_000);
    let path = cms.publish(2023, "General", NAME, body.clone());
    let env = Env::new();
    let lake = env.lake();
    let o = env.run(&cms, &["--dest", lake.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let file = env
        .work()
        .join(format!("raw/dataset=general-payments/year=2023/{NAME}"));
    let sidecar = PathBuf::from(format!("{}.openpay.json", file.display()));
    let mut rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    assert!(
        rec["unsynced_boot"].is_string(),
        "written without fsync, tagged with its boot: {rec}"
    );
    rec["unsynced_boot"] = "an-earlier-boot".into();
    std::fs::write(&sidecar, serde_json::to_vec(&rec).unwrap()).unwrap();
    // What a power loss can leave: right size and mtime, wrong bytes.
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    let mut bad = body.clone();
    bad[1000] ^= 0x20;
    std::fs::write(&file, &bad).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    cms.reset_counters();
    let o = env.run(&cms, &["--dest", lake.to_str().unwrap(), "--overwrite"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(
        cms.served(&path),
        body.len() as u64,
        "re-hashed, found wrong, fetched again"
    );
    assert_eq!(std::fs::read(&file).unwrap(), body);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

#[test]
fn failing_required_doctor_check_blocks_the_run() {
    let cms = CmsServer::start();
    let path = cms.publish(2023, "General", NAME, payments_csv(30, 10_000));
    let env = Env::new();
    // This host's cloud-init says the bootstrap failed (22.2 output).
    let bin = env.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let tool = bin.join("cloud-init");
    std::fs::write(
        &tool,
        "#!/bin/sh\ncase \"$*\" in\n  *--format*) echo 'error: unrecognized arguments: --format json' >&2; exit 2 ;;\n  *) printf 'status: error\\ndetail:\\n%s\\n' \"('scripts-user', RuntimeError('Runparts: 1 failures'))\"; exit 1 ;;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path_var = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = env
        .cmd(&cms, &["--dest", env.lake().to_str().unwrap()])
        .env("PATH", path_var)
        .output()
        .unwrap();
    assert_eq!(code(&o), 3, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("host.cloud-init"),
        "{}",
        text(&o)
    );
    let m = &env.manifests()[0];
    assert_eq!(m["status"], "blocked");
    assert!(
        m["preflight"]["failing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "host.cloud-init"),
        "{m}"
    );
    assert_eq!(cms.served(&path), 0, "nothing downloaded");
    assert!(!env.lake().join("raw").exists());
}

/// moto enforcing IAM after the setup requests: a user whose policy is
/// `policy`, and its keys.
async fn enforcing_moto(policy: &str) -> (MotoServer, String, String) {
    // CreateBucket, CreateUser, PutUserPolicy, CreateAccessKey run unauthenticated.
    let moto = MotoServer::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "4")]);
    let clients = moto.clients().await;
    crate::common::moto::create_bucket(&clients.s3(), "locked-zone").await;
    let iam = clients.iam();
    iam.create_user().user_name("ingest").send().await.unwrap();
    iam.put_user_policy()
        .user_name("ingest")
        .policy_name("p")
        .policy_document(policy)
        .send()
        .await
        .unwrap();
    let key = iam
        .create_access_key()
        .user_name("ingest")
        .send()
        .await
        .unwrap();
    let key = key.access_key().unwrap();
    (
        moto,
        key.access_key_id().to_string(),
        key.secret_access_key().to_string(),
    )
}

/// Data objects (under raw/) in the locked bucket, listed with the user's own keys (moto
/// rejects the setup credentials once it enforces IAM).
async fn keys_as(moto: &MotoServer, id: &str, secret: &str) -> i32 {
    let creds = aws_sdk_s3::config::Credentials::new(id, secret, None, None, "test");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-west-1"))
        .endpoint_url(moto.url())
        .credentials_provider(creds)
        .load()
        .await;
    let s3 = openpay::aws::AwsClients::from_sdk(sdk, true).s3();
    s3.list_objects_v2()
        .bucket("locked-zone")
        .prefix("raw/")
        .send()
        .await
        .unwrap()
        .key_count()
        .unwrap_or(0)
}

fn denied_run(moto: &MotoServer, id: &str, secret: &str) -> (Env, Output) {
    let cms = CmsServer::start();
    cms.publish(2023, "General", NAME, payments_csv(40, 10_000));
    let env = Env::new();
    let mut c = env.s3_cmd(
        &cms,
        moto,
        &["--dest", "s3://locked-zone", "--skip-preflight"],
    );
    c.env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret);
    let o = c.output().unwrap();
    (env, o)
}

#[tokio::test(flavor = "multi_thread")]
async fn put_object_denied_names_the_permission_and_uploads_nothing() {
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::locked-zone"},
        {"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::locked-zone/*"}]}"#;
    let (moto, id, secret) = enforcing_moto(policy).await;
    let (env, o) = denied_run(&moto, &id, &secret);
    assert_eq!(code(&o), 1, "{}", text(&o));
    let a = &env.audits(&env.manifests()[0])[0];
    assert_eq!(a["upload"], "failed");
    let err = a["error"].as_str().unwrap();
    assert!(
        err.contains("s3:PutObject on arn:aws:s3:::locked-zone/raw/*"),
        "{err}"
    );
    assert!(!err.contains(&secret), "no secret in the audit");
    assert!(!text(&o).contains(&secret), "no secret in the output");
    assert_eq!(keys_as(&moto, &id, &secret).await, 0, "no data uploaded");
}

#[tokio::test(flavor = "multi_thread")]
async fn head_object_denied_is_an_error_not_absent() {
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::locked-zone"},
        {"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::locked-zone/*"}]}"#;
    let (moto, id, secret) = enforcing_moto(policy).await;
    let (env, o) = denied_run(&moto, &id, &secret);
    assert_eq!(code(&o), 1, "{}", text(&o));
    let a = &env.audits(&env.manifests()[0])[0];
    assert_eq!(
        a["upload"], "failed",
        "a 403 on HeadObject must not read as absent: {a}"
    );
    assert!(
        a["error"]
            .as_str()
            .unwrap()
            .contains("s3:GetObject on arn:aws:s3:::locked-zone/raw/*"),
        "{a}"
    );
    assert_eq!(keys_as(&moto, &id, &secret).await, 0, "no data uploaded");
}
