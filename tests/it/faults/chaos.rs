//! `kill -9` at random instants spread over a multi-file run into a
//! versioned bucket, a rerun after each: the end state is always complete
//! and byte-identical, no completed object is ever PUT twice (one version
//! each), every manifest and audit is valid JSON, and the lock is free.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{GENERAL, Published, RESEARCH, Rig, code, json, jsonl, object, seed, text};
use crate::common::cms::{dataset_csv, payments_csv, sha256_hex};

const BUCKET: &str = "chaos";
const KILLS: u32 = 20;

/// What the run was doing when it was killed: the last S3 request the
/// proxy saw finish before the kill.
fn phase(rig: &Rig, since: usize) -> &'static str {
    let log = rig.s3_proxy.log();
    let Some(last) = log[since.min(log.len())..].last() else {
        return "before any S3 request";
    };
    let (m, t) = (last.method.as_str(), last.target.as_str());
    match () {
        _ if t.contains("/metadata/") => "publishing the manifest",
        _ if m == "POST" && t.contains("?uploads") => "multipart upload created",
        _ if m == "PUT" && t.contains("partNumber=") => "streaming parts",
        _ if m == "POST" && t.contains("uploadId=") => "multipart upload completed",
        _ if m == "PUT" => "small file PUT",
        _ if m == "HEAD" => "HEAD (planning or comparing)",
        _ => "other S3 request",
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_instants_never_loses_or_duplicates_anything() {
    let seed = seed("OPENPAY_CHAOS_SEED");
    let mut rng = fastrand::Rng::with_seed(seed);
    let rig = Rig::start(BUCKET).await;
    let s3 = rig.s3().await;
    crate::common::moto::enable_versioning(&s3, BUCKET).await;
    // One streamed multipart file and four small ones; the source is slow
    // enough that the run lasts a few seconds.
    let mut files: Vec<Published> = vec![rig.publish(GENERAL, 2023, payments_csv(60, 33 << 20))];
    for (i, (ds, year)) in [
        (GENERAL, 2022),
        (GENERAL, 2021),
        (RESEARCH, 2023),
        (RESEARCH, 2022),
        (RESEARCH, 2021),
    ]
    .into_iter()
    .enumerate()
    {
        files.push(rig.publish(ds, year, dataset_csv(ds.word, 61 + i as u64, 1_500_000)));
    }
    rig.cms.throttle(Some(40 << 20));
    let years = [2021, 2022, 2023];
    let datasets = [GENERAL, RESEARCH];

    // How long an undisturbed run takes, into a prefix of its own.
    let started = Instant::now();
    let o = rig
        .cmd(&years, &datasets, &format!("s3://{BUCKET}/baseline"))
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    let full = started.elapsed();
    eprintln!("an undisturbed run takes {full:?}");

    let mut phases: BTreeMap<&str, u32> = BTreeMap::new();
    let mut orphans = 0;
    for i in 0..KILLS {
        // Stratified: kill i lands in the i-th twentieth of the run (of
        // 90 % of the baseline, which paid for a cold moto).
        let at = full.mul_f64(0.9 * (f64::from(i) + rng.f64()) / f64::from(KILLS));
        let prefix = format!("k{i}");
        let dest = format!("s3://{BUCKET}/{prefix}");
        std::fs::remove_dir_all(rig.work()).ok();
        let since = rig.s3_proxy.log().len();
        let mut child = rig
            .cmd(&years, &datasets, &dest)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + at;
        let mut finished = false;
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let what = if finished {
            "finished before the kill"
        } else {
            phase(&rig, since)
        };
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        *phases.entry(what).or_default() += 1;
        eprintln!("kill {i} at {at:?}: {what}");

        let o = rig.cmd(&years, &datasets, &dest).output().unwrap();
        assert_eq!(
            code(&o),
            0,
            "rerun after kill {i} ({what}, seed {seed}): {}",
            text(&o)
        );
        check(&rig, &s3, &prefix, &files)
            .await
            .unwrap_or_else(|e| panic!("after kill {i} at {at:?} ({what}), seed {seed}: {e}"));
        orphans += forget(&s3, &prefix).await;
    }
    eprintln!("multipart uploads left open by killed runs (the lifecycle rule's work): {orphans}");
    eprintln!("kills by phase: {phases:?}");
    assert!(
        phases.len() >= 3,
        "the kills spread over the run: {phases:?}"
    );
}

/// The invariants after a kill and a rerun.
async fn check(
    rig: &Rig,
    s3: &aws_sdk_s3::Client,
    prefix: &str,
    files: &[Published],
) -> Result<(), String> {
    // Complete and byte-identical.
    for f in files {
        let key = format!("{prefix}/{}", f.key);
        let got = object(s3, BUCKET, &key)
            .await
            .ok_or(format!("{key} is missing"))?;
        if sha256_hex(&got) != sha256_hex(&f.body) {
            return Err(format!("{key} differs from the source"));
        }
    }
    // One version per object: nothing completed was PUT twice.
    let versions = s3
        .list_object_versions()
        .bucket(BUCKET)
        .prefix(format!("{prefix}/"))
        .send()
        .await
        .unwrap();
    let mut per_key: BTreeMap<String, u32> = BTreeMap::new();
    for v in versions.versions() {
        *per_key.entry(v.key().unwrap().to_string()).or_default() += 1;
    }
    if let Some((k, n)) = per_key.iter().find(|(_, n)| **n != 1) {
        return Err(format!("{k} has {n} versions"));
    }
    // Every manifest and audit in the bucket and on disk is valid JSON.
    for key in per_key.keys().filter(|k| k.contains("/metadata/")) {
        let bytes = object(s3, BUCKET, key).await.unwrap();
        if key.ends_with(".jsonl") {
            jsonl(&bytes);
        } else {
            json(&bytes);
        }
    }
    for run in std::fs::read_dir(rig.work().join("metadata/runs")).unwrap() {
        let dir = run.unwrap().path();
        // A run killed before its first manifest write has none; every
        // manifest that exists is whole.
        for (name, lines) in [("manifest.json", false), ("file_audits.jsonl", true)] {
            if let Ok(bytes) = std::fs::read(dir.join(name)) {
                if lines {
                    jsonl(&bytes);
                } else {
                    json(&bytes);
                }
            }
        }
    }
    // The lock is free.
    let lock = std::fs::File::open(rig.work().join(".openpay.lock")).unwrap();
    lock.try_lock()
        .map_err(|e| format!("the work dir is still locked: {e}"))?;
    Ok(())
}

/// Deletes every version under `prefix` and aborts its open uploads, so
/// moto's memory stays flat; the number of uploads a killed run left open.
async fn forget(s3: &aws_sdk_s3::Client, prefix: &str) -> usize {
    let versions = s3
        .list_object_versions()
        .bucket(BUCKET)
        .prefix(format!("{prefix}/"))
        .send()
        .await
        .unwrap();
    for v in versions.versions() {
        s3.delete_object()
            .bucket(BUCKET)
            .key(v.key().unwrap())
            .set_version_id(v.version_id().map(str::to_string))
            .send()
            .await
            .unwrap();
    }
    let uploads = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .prefix(format!("{prefix}/"))
        .send()
        .await
        .unwrap();
    for u in uploads.uploads() {
        s3.abort_multipart_upload()
            .bucket(BUCKET)
            .key(u.key().unwrap())
            .upload_id(u.upload_id().unwrap())
            .send()
            .await
            .unwrap();
    }
    uploads.uploads().len()
}
