//! The DAG in orchestration/airflow/ under the real Apache Airflow 3
//! (`scripts/test.sh` installs it, pinned, into a venv of its own): a
//! SQLite metadata database in a temp AIRFLOW_HOME, the DAG parsed with no
//! import error, and `airflow dags test` running the real openpay binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::cms::{CmsServer, dataset_csv};
use crate::common::moto::MotoServer;
use crate::common::{bin_path, openpay, repo_root, required_env, text};

const DAG: &str = "openpay";

/// One Airflow installation: its home, database and DAG folder in a temp
/// dir, the repo's DAG copied in, the database migrated.
struct Airflow {
    home: tempfile::TempDir,
    venv: PathBuf,
    env: Vec<(String, String)>,
}

impl Airflow {
    fn new(extra_env: Vec<(String, String)>) -> Self {
        let venv = PathBuf::from(required_env("OPENPAY_TEST_AIRFLOW_VENV"));
        assert!(
            venv.join("bin/airflow").is_file(),
            "no airflow in {}: run scripts/test.sh",
            venv.display()
        );
        let home = tempfile::tempdir().unwrap();
        let dags = home.path().join("dags");
        std::fs::create_dir_all(&dags).unwrap();
        std::fs::copy(
            repo_root().join("orchestration/airflow/openpay_dag.py"),
            dags.join("openpay_dag.py"),
        )
        .unwrap();
        let h = home.path().display().to_string();
        let mut env: Vec<(String, String)> = vec![
            ("AIRFLOW_HOME".into(), h.clone()),
            (
                "AIRFLOW__CORE__DAGS_FOLDER".into(),
                dags.display().to_string(),
            ),
            ("AIRFLOW__CORE__LOAD_EXAMPLES".into(), "False".into()),
            // An absolute path: four slashes.
            (
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN".into(),
                format!("sqlite:///{h}/airflow.db"),
            ),
            ("OPENPAY_BIN".into(), bin_path().display().to_string()),
            ("OPENPAY_WORK_ROOT".into(), format!("{h}/work")),
            ("HOME".into(), h.clone()),
            // Python warnings are logged to stdout, before `-o json` output.
            ("PYTHONWARNINGS".into(), "ignore".into()),
        ];
        env.extend(extra_env);
        let af = Airflow { home, venv, env };
        af.ok(&["db", "migrate"]);
        af
    }

    /// `airflow ARGS` with only this installation's environment (no
    /// ambient AWS_* or OPENPAY_* settings reach openpay).
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.venv.join("bin/airflow"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .current_dir(self.home.path());
        c
    }

    fn ok(&self, args: &[&str]) -> Output {
        let o = self.cmd(args).output().unwrap();
        assert!(o.status.success(), "airflow {args:?}: {}", text(&o));
        o
    }

    fn json(&self, args: &[&str]) -> Value {
        let o = self.ok(args);
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("airflow {args:?} not JSON ({e}): {}", text(&o)))
    }

    fn lake(&self) -> PathBuf {
        self.home.path().join("lake")
    }

    /// Parses the DAG folder itself (`--local`), not what a dag processor
    /// may have stored.
    fn assert_no_import_errors(&self) {
        let errors = self.json(&["dags", "list-import-errors", "--local", "-o", "json"]);
        assert_eq!(errors, Value::Array(vec![]), "import errors: {errors}");
    }

    /// `airflow dags test` with `conf`; its output and the run's id.
    fn dags_test(&self, conf: &Value) -> (Output, String) {
        let o = self
            .cmd(&["dags", "test", DAG, "-c", &conf.to_string()])
            .output()
            .unwrap();
        let runs = self.json(&["dags", "list-runs", DAG, "-o", "json"]);
        let run_id = runs[0]["run_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no dag run: {runs}\n{}", text(&o)))
            .to_string();
        (o, run_id)
    }

    /// (task_id, map_index, state) of every task instance of a run.
    fn states(&self, run_id: &str) -> Vec<(String, i64, String)> {
        let rows = self.sql(&format!(
            "select task_id, map_index, coalesce(state, 'none') from task_instance where run_id = '{run_id}' order by task_id, map_index"
        ));
        rows.iter()
            .map(|r| {
                (
                    r[0].as_str().unwrap().into(),
                    r[1].as_i64().unwrap(),
                    r[2].as_str().unwrap().into(),
                )
            })
            .collect()
    }

    /// Rows of a query on the metadata database (Python's sqlite3; the
    /// values JSON-decoded when they are JSON text).
    fn sql(&self, query: &str) -> Vec<Vec<Value>> {
        let script = r#"
import json, sqlite3, sys
def cell(v):
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, str):
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v
db = sqlite3.connect(sys.argv[1])
print(json.dumps([[cell(v) for v in row] for row in db.execute(sys.argv[2])]))
"#;
        let db = self.home.path().join("airflow.db");
        let o = Command::new(self.venv.join("bin/python"))
            .args(["-c", script])
            .arg(&db)
            .arg(query)
            .output()
            .unwrap();
        assert!(o.status.success(), "sql {query}: {}", text(&o));
        serde_json::from_slice::<Vec<Vec<Value>>>(&o.stdout).unwrap()
    }

    /// XCom return values of a task, by map index.
    fn xcoms(&self, run_id: &str, task: &str) -> Vec<Value> {
        self.sql(&format!(
            "select value from xcom where run_id = '{run_id}' and task_id = '{task}' and key = 'return_value' order by map_index"
        ))
        .into_iter()
        .map(|mut r| r.remove(0))
        .collect()
    }

    /// (uri, extra) of every asset event.
    fn asset_events(&self) -> Vec<(String, Value)> {
        self.sql("select a.uri, e.extra from asset_event e join asset a on a.id = e.asset_id order by e.id")
            .into_iter()
            .map(|mut r| {
                let extra = r.remove(1);
                (r.remove(0).as_str().unwrap().to_string(), extra)
            })
            .collect()
    }
}

fn all_succeeded(states: &[(String, i64, String)], expect_ingest: usize) {
    let count = |t: &str| states.iter().filter(|s| s.0 == t).count();
    assert!(states.iter().all(|s| s.2 == "success"), "{states:?}");
    assert_eq!(count("doctor"), 1, "{states:?}");
    assert_eq!(count("ingest"), expect_ingest, "{states:?}");
    assert_eq!(count("verify"), expect_ingest, "{states:?}");
}

fn runs_list(lake: &Path) -> Value {
    let o = openpay()
        .args(["runs", "list", "--format", "json", "--dest"])
        .arg(lake)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn dag_ingests_the_shipped_sample_into_a_local_lake() {
    let af = Airflow::new(vec![("OPENPAY_MAX_PARALLEL".into(), "3".into())]);
    af.assert_no_import_errors();
    let lake = af.lake();
    let conf = serde_json::json!({
        "years": [2023, 2024],
        "datasets": ["general-payments"],
        "dest": lake,
        "source_url": repo_root().join("sample/cms"),
    });
    let (o, run_id) = af.dags_test(&conf);
    let states = af.states(&run_id);
    all_succeeded(&states, 2);
    assert!(o.status.success(), "{}", text(&o));

    let summaries = af.xcoms(&run_id, "ingest");
    assert_eq!(summaries.len(), 2);
    let listed = runs_list(&lake);
    for (i, s) in summaries.iter().enumerate() {
        assert_eq!(s["status"], "completed", "{s}");
        assert_eq!(s["exit_code"], 0, "{s}");
        assert_eq!(s["files_uploaded"], 1, "{s}");
        assert_eq!(s["files"][0]["upload"], "uploaded", "{s}");
        let id = s["run_id"].as_str().unwrap();
        assert!(
            id.ends_with(&format!("-m{i}")),
            "run id from Airflow's run id and map index: {id}"
        );
        assert!(
            listed
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["run_id"] == id && e["status"] == "completed"),
            "`openpay runs list` shows {id}: {listed}"
        );
    }
    let years: Vec<_> = summaries
        .iter()
        .map(|s| s["years"][0].as_i64().unwrap())
        .collect();
    assert_eq!(years, [2023, 2024]);
    for v in af.xcoms(&run_id, "verify") {
        assert_eq!(v["holds"], true, "{v}");
        assert_eq!(v["objects_checked"], 1, "{v}");
    }
    // One event per ingest on the dataset's Asset, carrying the run.
    // Airflow normalises the URI (no trailing slash).
    let uri = format!("file://{}/raw/dataset=general-payments", lake.display());
    let events = af.asset_events();
    assert_eq!(events.len(), 2, "{events:?}");
    for (u, extra) in &events {
        assert_eq!(u, &uri);
        assert!(
            summaries
                .iter()
                .any(|s| s["run_id"] == extra["run_id"] && s["years"][0] == extra["year"]),
            "{extra}"
        );
        assert_eq!(extra["files_uploaded"], 1, "{extra}");
    }
    // The concurrency cap is on the mapped task, as the deployment set it.
    let dag = &af.sql("select data from serialized_dag where dag_id = 'openpay'")[0][0];
    let ingest = dag["dag"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["__var"]["task_id"] == "ingest")
        .unwrap();
    assert!(
        ingest.to_string().contains("\"max_active_tis_per_dag\":3"),
        "{ingest}"
    );
    // The work dirs are per (dataset, year) and persist for retries.
    for y in ["2023", "2024"] {
        let w = af.home.path().join("work/general-payments").join(y);
        assert!(w.join("metadata/runs").is_dir(), "{}", w.display());
    }
}

#[test]
fn dag_backfills_two_years_of_two_datasets_as_mapped_tasks() {
    let cms = CmsServer::start();
    for (i, (word, year)) in [
        ("General", 2022),
        ("General", 2023),
        ("Research", 2022),
        ("Research", 2023),
    ]
    .into_iter()
    .enumerate()
    {
        cms.publish(
            year,
            word,
            &format!("OP_{word}_{year}.csv"),
            dataset_csv(word, 100 + i as u64, 30_000),
        );
    }
    let af = Airflow::new(vec![]);
    af.assert_no_import_errors();
    let conf = serde_json::json!({
        "years": [2022, 2023],
        "datasets": ["general-payments", "research-payments"],
        "dest": af.lake(),
        "source_url": cms.url(),
    });
    let (o, run_id) = af.dags_test(&conf);
    let states = af.states(&run_id);
    all_succeeded(&states, 4);
    assert!(o.status.success(), "{}", text(&o));
    let mut pairs: Vec<(String, i64)> = af
        .xcoms(&run_id, "ingest")
        .iter()
        .map(|s| {
            assert_eq!(s["status"], "completed", "{s}");
            (
                s["datasets"][0].as_str().unwrap().to_string(),
                s["years"][0].as_i64().unwrap(),
            )
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [
            ("general-payments".to_string(), 2022),
            ("general-payments".to_string(), 2023),
            ("research-payments".to_string(), 2022),
            ("research-payments".to_string(), 2023),
        ]
    );
    let uris: std::collections::BTreeSet<_> =
        af.asset_events().into_iter().map(|(u, _)| u).collect();
    assert_eq!(uris.len(), 2, "one Asset per dataset: {uris:?}");
    assert_eq!(runs_list(&af.lake()).as_array().unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn dag_doctor_gate_stops_a_role_without_put_object() {
    // CreateBucket, CreateRole, PutRolePolicy, CreateUser, PutUserPolicy and
    // CreateAccessKey run unauthenticated; then moto enforces IAM.
    let moto = MotoServer::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "6")]);
    let admin = moto.clients().await;
    let bucket = "gated-zone";
    crate::common::moto::create_bucket(&admin.s3(), bucket).await;
    let get_only = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::{bucket}","arn:aws:s3:::{bucket}/*"]}}]}}"#
    );
    let iam = admin.iam();
    iam.create_role()
        .role_name("openpay-runner")
        .assume_role_policy_document(crate::common::iam::EC2_TRUST)
        .send()
        .await
        .unwrap();
    iam.put_role_policy()
        .role_name("openpay-runner")
        .policy_name("get-only")
        .policy_document(&get_only)
        .send()
        .await
        .unwrap();
    // The identity Airflow's workers run as: may read IAM and the bucket.
    let worker = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Action":["iam:Get*","iam:List*","iam:SimulatePrincipalPolicy","sts:GetCallerIdentity"],"Resource":"*"}},
            {{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::{bucket}","arn:aws:s3:::{bucket}/*"]}}]}}"#
    );
    iam.create_user().user_name("airflow").send().await.unwrap();
    iam.put_user_policy()
        .user_name("airflow")
        .policy_name("worker")
        .policy_document(&worker)
        .send()
        .await
        .unwrap();
    let key = iam
        .create_access_key()
        .user_name("airflow")
        .send()
        .await
        .unwrap();
    let key = key.access_key().unwrap();
    let (id, secret) = (
        key.access_key_id().to_string(),
        key.secret_access_key().to_string(),
    );

    let mut env = moto.env();
    env.retain(|(k, _)| !k.starts_with("AWS_ACCESS_KEY_ID") && !k.starts_with("AWS_SECRET"));
    env.push(("AWS_ACCESS_KEY_ID".into(), id.clone()));
    env.push(("AWS_SECRET_ACCESS_KEY".into(), secret.clone()));
    env.push(("OPENPAY_AWS_ROLE_NAME".into(), "openpay-runner".into()));
    let af = Airflow::new(env);
    af.assert_no_import_errors();
    let conf = serde_json::json!({
        "years": [2023],
        "datasets": ["general-payments"],
        "dest": format!("s3://{bucket}"),
        "source_url": repo_root().join("sample/cms"),
    });
    let (o, run_id) = af.dags_test(&conf);
    let states = af.states(&run_id);
    let state = |t: &str| -> Vec<String> {
        states
            .iter()
            .filter(|s| s.0 == t)
            .map(|s| s.2.clone())
            .collect()
    };
    assert_eq!(state("doctor"), ["failed"], "{states:?}\n{}", text(&o));
    assert!(
        state("ingest")
            .iter()
            .all(|s| s == "upstream_failed" || s == "none"),
        "no ingest ran: {states:?}"
    );
    assert!(!o.status.success(), "the DAG run failed: {}", text(&o));
    let all = text(&o);
    assert!(
        all.contains("fail  aws.iam.put-object:") && all.contains("s3:PutObject"),
        "the doctor's finding and fix are in the task log: {all}"
    );
    assert!(
        all.contains("required check(s) failed: aws.iam.put-object"),
        "the task fails naming the check: {all}"
    );
    assert!(!all.contains(&secret), "no secret in the log");
    assert!(af.xcoms(&run_id, "ingest").is_empty());
    // Nothing written: listed with the worker's own keys (moto now rejects
    // the setup credentials).
    let listed = moto
        .clients_as(&id, &secret)
        .await
        .s3()
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0), "no object written");
}
