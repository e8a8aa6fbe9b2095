//! A soak: 200 small files in runs of 20, through both proxies with 5 % of
//! all requests (S3 and source) faulted at random with every kind the proxy
//! knows. Every file completes byte-identical, the audits match the
//! source, and the manifests total the retries. The measured table is in
//! docs/faults.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::{GENERAL, RESEARCH, Rig, code, object, seed, text};
use crate::common::cms::{dataset_csv, sha256_hex};
use crate::common::proxy::{Event, RandomFaults};

const BUCKET: &str = "soak";
const ROUNDS: u32 = 10;
const YEARS: std::ops::RangeInclusive<i32> = 2014..=2023;
const RATE: f64 = 0.05;

struct Source {
    key: String,
    body: Vec<u8>,
}

/// Faults by kind, counted from a proxy's log.
fn kinds(log: &[Event]) -> BTreeMap<&'static str, u64> {
    let mut by = BTreeMap::new();
    for e in log {
        if let Some(f) = &e.fault {
            *by.entry(f.kind()).or_default() += 1;
        }
    }
    by
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_files_through_five_percent_faults_all_complete() {
    let seed = seed("OPENPAY_SOAK_SEED");
    let mut rig = Rig::start(BUCKET).await;
    rig.read_timeout_secs = 2;
    rig.s3_proxy
        .set_random(RandomFaults::new(seed, RATE, Duration::from_secs(8)));
    rig.cms_proxy.set_random(RandomFaults::new(
        seed ^ 0x5eed,
        RATE,
        Duration::from_secs(3),
    ));
    let years: Vec<i32> = YEARS.collect();
    let started = Instant::now();
    let mut sources = Vec::new();
    let (mut s3_retries, mut download_retries) = (0u64, 0u64);
    let mut completed = 0usize;
    for round in 0..ROUNDS {
        // A new publication per round: new file names, a new catalog.
        let mut catalog = Vec::new();
        for ds in [GENERAL, RESEARCH] {
            for &year in &years {
                let name = Rig::name(ds, year, round);
                let path = format!("/openpayments/PGYR{year}_R{round}/{name}");
                let s = u64::from(round) * 1000 + year as u64 + ds.tag.len() as u64 * 100;
                let body = dataset_csv(ds.word, s, 20_000 + (s as usize % 7) * 10_000);
                rig.cms.set_file(&path, body.clone());
                catalog.push(serde_json::json!({
                    "title": format!("{year} {} Payment Data", ds.word),
                    "distribution": [{"downloadURL": format!("{}{path}", rig.cms_proxy.url())}]
                }));
                sources.push(Source {
                    key: Rig::key(ds, year, &name),
                    body,
                });
            }
        }
        rig.cms
            .set_raw_catalog(&serde_json::to_string(&catalog).unwrap());
        let o = rig
            .cmd(&years, &[GENERAL, RESEARCH], &format!("s3://{BUCKET}"))
            .args(["--jobs", "8"])
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "round {round}, seed {seed}: {}", text(&o));
        let m = rig.manifests().pop().unwrap();
        let audits = rig.audits(&m);
        assert_eq!(audits.len(), catalog.len());
        let round_sources = &sources[sources.len() - catalog.len()..];
        for a in &audits {
            let src = round_sources
                .iter()
                .find(|s| a["key"].as_str().unwrap().ends_with(&s.key))
                .unwrap_or_else(|| panic!("an audit for an unplanned file: {a}"));
            assert_eq!(a["sha256"], sha256_hex(&src.body), "{a}");
            assert_eq!(a["bytes"], src.body.len() as u64, "{a}");
            assert!(
                matches!(a["upload"].as_str(), Some("uploaded" | "skipped_identical")),
                "{a}"
            );
        }
        let sum = |f: &dyn Fn(&serde_json::Value) -> u64| audits.iter().map(f).sum::<u64>();
        assert_eq!(
            m["s3_retries"].as_u64().unwrap(),
            sum(&|a| a["s3"]["retries"].as_u64().unwrap()),
            "the manifest totals the S3 retries"
        );
        assert_eq!(
            m["download_retries"].as_u64().unwrap(),
            sum(&|a| a["attempts"].as_u64().unwrap().saturating_sub(1)),
            "the manifest totals the download retries"
        );
        s3_retries += m["s3_retries"].as_u64().unwrap();
        download_retries += m["download_retries"].as_u64().unwrap();
        completed += audits.len();
    }
    let took = started.elapsed();

    // Nothing lost: every object holds exactly its source's bytes.
    let s3 = rig.s3().await;
    let mut lost = 0u64;
    for src in &sources {
        match object(&s3, BUCKET, &src.key).await {
            Some(got) if sha256_hex(&got) == sha256_hex(&src.body) => {}
            _ => lost += src.body.len() as u64,
        }
    }
    assert_eq!(sources.len(), 200);
    assert_eq!(lost, 0, "bytes lost");

    // The faults really happened, and each one on a file's S3 call shows
    // up as a retry in that file's audit.
    let (s3_log, cms_log) = (rig.s3_proxy.log(), rig.cms_proxy.log());
    let (s3_kinds, cms_kinds) = (kinds(&s3_log), kinds(&cms_log));
    let file_faults = s3_log
        .iter()
        .filter(|e| e.target.contains("/raw/"))
        .filter(|e| e.fault.as_ref().is_some_and(|f| f.kind() != "latency"))
        .count() as u64;
    assert!(file_faults > 0, "no S3 fault hit a file: {s3_kinds:?}");
    assert!(
        s3_retries >= file_faults,
        "{file_faults} faults on files' S3 calls but only {s3_retries} retries audited"
    );
    let faulted = |log: &[Event]| log.iter().filter(|e| e.fault.is_some()).count() as f64;
    let share = (faulted(&s3_log) + faulted(&cms_log)) / (s3_log.len() + cms_log.len()) as f64;
    assert!((0.02..0.10).contains(&share), "{share} of requests faulted");
    for kind in [
        "503_slow_down",
        "500_internal",
        "stall",
        "reset_request",
        "reset_response",
        "latency",
    ] {
        assert!(
            s3_kinds.contains_key(kind) || cms_kinds.contains_key(kind),
            "no {kind} fault in the soak (seed {seed}): {s3_kinds:?} {cms_kinds:?}"
        );
    }

    let mut table = String::new();
    let _ = writeln!(table, "| measure | S3 (moto) | source (CMS fixture) |");
    let _ = writeln!(table, "|---|---:|---:|");
    let _ = writeln!(table, "| requests | {} | {} |", s3_log.len(), cms_log.len());
    let all: std::collections::BTreeSet<_> = s3_kinds.keys().chain(cms_kinds.keys()).collect();
    for k in all {
        let _ = writeln!(
            table,
            "| faults: {k} | {} | {} |",
            s3_kinds.get(k).copied().unwrap_or(0),
            cms_kinds.get(k).copied().unwrap_or(0)
        );
    }
    let _ = writeln!(
        table,
        "| retries (from the manifests) | {s3_retries} | {download_retries} |"
    );
    let _ = writeln!(
        table,
        "| files completed | {completed} of {} | |",
        sources.len()
    );
    let _ = writeln!(table, "| bytes lost | {lost} | |");
    let _ = writeln!(
        table,
        "\nseed {seed}, {ROUNDS} runs of 20 files, {:.0} s",
        took.as_secs_f64()
    );
    eprintln!("{table}");
    if let Ok(path) = std::env::var("OPENPAY_SOAK_REPORT") {
        std::fs::write(&path, &table).unwrap();
    }
}
