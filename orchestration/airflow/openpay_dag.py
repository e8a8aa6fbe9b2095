"""Airflow 3 DAG: ingest CMS Open Payments with openpay, one mapped task per
(dataset, year), gated by the doctor and checked by verify.

Every decision comes from openpay's exit code and its JSON documents
(``doctor --format json``, ``run --summary-json``, ``verify --format json``);
no log line is parsed. Exit codes are mapped deliberately (DESIGN.md):

* 0 -- success.
* 1 -- findings / a file failed: the task fails and Airflow retries it; the
  retry reuses the same ``--run-id`` and the same work dir, so openpay
  resumes (verified files are skipped, partial downloads continue).
* 2 -- bad input (year, dataset, dest): fails without retry
  (``AirflowFailException``), since a bad parameter will not fix itself.
* 3 -- blocked or could not evaluate (a failing preflight check, another
  run holding the work dir's lock, no credentials): fails without retry,
  naming the blocking checks.

The deployment sets (environment of the workers; see docs/airflow.md):

* ``OPENPAY_BIN``        -- the openpay binary (default: ``openpay`` on PATH).
* ``OPENPAY_WORK_ROOT``  -- persistent root of the work dirs, one per
  (dataset, year): ``{root}/{dataset}/{year}`` (default ``/var/lib/openpay/work``).
* ``OPENPAY_DEST``       -- default for the ``dest`` param.
* ``OPENPAY_MAX_PARALLEL`` -- cap on concurrently running ingest tasks (default 4).
* the AWS chain (instance role, ``AWS_PROFILE``...) for an S3 destination.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Asset, AssetAlias, Param
from airflow.sdk.exceptions import AirflowFailException

DATASETS = ["general-payments", "research-payments", "ownership-payments"]
#: Every ingest attaches its event to the Asset of its dataset through this
#: alias: the Asset's URI depends on the ``dest`` param, known only at run
#: time. A downstream DAG schedules on the Asset itself, e.g.
#: ``Asset("s3://BUCKET/raw/dataset=general-payments/")``.
RAW_ALIAS = AssetAlias("openpay-raw")

#: openpay's run ids: 1-64 of [A-Za-z0-9._-], not starting with '.'.
_RUN_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def openpay_bin() -> str:
    return os.environ.get("OPENPAY_BIN") or "openpay"


def work_root() -> Path:
    return Path(os.environ.get("OPENPAY_WORK_ROOT") or "/var/lib/openpay/work")


def openpay_run_id(airflow_run_id: str, map_index: int) -> str:
    """A run id stable across retries of one mapped task instance (same
    Airflow run, same map index), distinct between them, and valid for
    openpay (its manifests live under ``run_id=...``)."""
    base = _RUN_ID_UNSAFE.sub("-", airflow_run_id).strip("-.") or "airflow"
    suffix = f"-m{map_index}"
    if len(base) + len(suffix) > 64:
        digest = hashlib.sha256(airflow_run_id.encode()).hexdigest()[:10]
        base = f"{base[: 64 - len(suffix) - len(digest) - 1]}-{digest}"
    return base + suffix


def raw_asset_uri(dest: str, dataset: str) -> str:
    """The Asset of a dataset's raw zone: ``s3://BUCKET[/PREFIX]/raw/dataset=X/``
    for a bucket, ``file:///ABS/LAKE/raw/dataset=X/`` for a local lake."""
    if dest.startswith("s3://"):
        return f"{dest.rstrip('/')}/raw/dataset={dataset}/"
    return f"{Path(dest).resolve().as_uri()}/raw/dataset={dataset}/"


def _dest(params) -> str:
    dest = (params.get("dest") or os.environ.get("OPENPAY_DEST") or "").strip()
    if not dest:
        raise AirflowFailException(
            "no destination: set the DAG's `dest` param or OPENPAY_DEST on the workers"
        )
    return dest


def _exec(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Runs openpay. Its logs (stderr) stream into the task log as they
    come, since a year can take hours; stdout (a report) is returned, with
    the last lines of stderr for the failure message."""
    # JSON log lines: plain text in the task log (no terminal colours),
    # and each one a record a log pipeline can index.
    cmd = [openpay_bin(), "--log-format", "json", *args]
    if shutil.which(cmd[0]) is None:
        raise AirflowFailException(f"openpay binary {cmd[0]!r} not found: set OPENPAY_BIN")
    print("$", " ".join(cmd), flush=True)
    tail: list[str] = []
    with tempfile.TemporaryFile(mode="w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, text=True, env=env)
        assert proc.stderr is not None
        for line in proc.stderr:
            print(line, end="", flush=True)
            tail = (tail + [line])[-20:]
        code = proc.wait()
        out.seek(0)
        stdout = out.read()
    return subprocess.CompletedProcess(cmd, code, stdout, "".join(tail))


def _judge(what: str, proc: subprocess.CompletedProcess, blocking: list[str] | None = None) -> None:
    """Maps an exit code onto Airflow's retry semantics (module docstring)."""
    code = proc.returncode
    last = (proc.stderr.strip().splitlines() or [""])[-1]
    if code == 0:
        return
    if code == 2:
        raise AirflowFailException(f"{what}: invalid input (exit 2), not retried: {last}")
    if code == 3:
        checks = ", ".join(blocking or []) or "see the log above"
        raise AirflowFailException(f"{what}: blocked (exit 3) by {checks}, not retried: {last}")
    # 1 (findings, a failed file) or a crash/signal: retry, which resumes.
    raise RuntimeError(f"{what}: exit {code}; a retry resumes where this attempt stopped: {last}")


def _doctor_env(dest: str) -> dict[str, str]:
    env = dict(os.environ)
    if dest.startswith("s3://"):
        env["OPENPAY_AWS_BUCKET"] = dest[len("s3://") :].split("/", 1)[0]
    return env


def doctor_gate(params, **_context) -> dict:
    """The gate: openpay's preflight checks on this worker (for an S3
    destination also the account: identity and s3:PutObject). A failing
    required check fails the DAG run; its findings are in this task's log."""
    dest = _dest(params)
    checks = ["host.cloud-init"]
    if dest.startswith("s3://"):
        checks += ["aws.identity", "aws.iam.put-object"]
    args = ["doctor", "--format", "json"]
    for c in checks:
        args += ["--only", c]
    proc = _exec(args, env=_doctor_env(dest))
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        print(proc.stdout)
        _judge("openpay doctor", proc)
        raise
    results = report.get("shared", []) + [
        c for h in report.get("hosts", []) for c in h.get("checks", [])
    ]
    failing = []
    for c in results:
        print(f"{c['status']:>4}  {c['id']}: {c['summary']}")
        if c["status"] == "fail":
            for line in c.get("evidence") or []:
                print(f"        | {line}")
            if c.get("remediation"):
                print("        fix: " + c["remediation"].replace("\n", "\n             "))
            if c.get("level") == "required":
                failing.append(c["id"])
    for h in report.get("hosts", []):
        if h.get("error"):
            print(f"host {h.get('label')}: {h['error']}")
    if proc.returncode == 1:
        # A failing required check does not fix itself between retries.
        raise AirflowFailException(f"doctor: required check(s) failed: {', '.join(failing)}")
    _judge("openpay doctor", proc, blocking=failing)
    return {"checks": {c["id"]: c["status"] for c in results}}


def plan_pairs(params, **_context) -> list[dict]:
    """One (dataset, year) per mapped ingest."""
    years, datasets = params.get("years") or [], params.get("datasets") or []
    bad = [d for d in datasets if d not in DATASETS]
    if bad or not years or not datasets or not all(isinstance(y, int) for y in years):
        raise AirflowFailException(
            f"params: years must be a non-empty list of integers and datasets a non-empty list of {DATASETS}; got years={years!r} datasets={datasets!r}"
        )
    return [{"dataset": d, "year": y} for d in sorted(set(datasets)) for y in sorted(set(years))]


def ingest_one(dataset: str, year: int, params, ti, run_id, outlet_events, **_context) -> dict:
    """``openpay run`` for one (dataset, year) in its own persistent work dir.
    Returns the run's summary (XCom) and attaches the run id, year and
    counts to the dataset's Asset event."""
    dest = _dest(params)
    rid = openpay_run_id(run_id, ti.map_index)
    work = work_root() / dataset / str(year)
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="openpay-summary-") as tmp:
        summary_path = Path(tmp) / "summary.json"
        args = ["run", "--year", str(year), "--dataset", dataset, "--dest", dest,
                "--work-dir", str(work), "--run-id", rid, "--summary-json", str(summary_path)]
        if params.get("source_url"):
            args += ["--source-url", params["source_url"]]
        proc = _exec(args)
        print(proc.stdout, end="", flush=True)
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    blocking = (summary or {}).get("preflight", {}).get("failing")
    _judge(f"openpay run {dataset} {year} (run id {rid})", proc, blocking=blocking)
    if summary is None:
        raise RuntimeError(f"openpay run exited 0 but wrote no summary at {summary_path}")
    outlet_events[RAW_ALIAS].add(
        Asset(raw_asset_uri(dest, dataset)),
        extra={
            "run_id": summary["run_id"],
            "dataset": dataset,
            "year": year,
            "status": summary["status"],
            "files_planned": summary["files_planned"],
            "files_uploaded": summary["files_uploaded"],
            "files_upload_skipped": summary["files_upload_skipped"],
            "bytes_downloaded": summary["bytes_downloaded"],
            "manifest": summary["manifest_location"]["destination"],
        },
    )
    return summary


def verify_one(summary: dict, params, **_context) -> dict:
    """``openpay verify`` on the run an ingest task just finished."""
    proc = _exec(["verify", summary["run_id"], "--dest", _dest(params), "--format", "json"])
    print(proc.stdout, end="", flush=True)
    _judge(f"openpay verify {summary['run_id']}", proc)
    report = json.loads(proc.stdout)
    return {k: report[k] for k in ("run_id", "holds", "objects_checked", "divergences")}


with DAG(
    dag_id="openpay",
    description="CMS Open Payments into the raw zone, one mapped task per dataset and year",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["openpay"],
    params={
        "years": Param([2024], type="array", items={"type": "integer"},
                       description="Program years to ingest"),
        "datasets": Param(["general-payments"], type="array",
                          items={"type": "string", "enum": DATASETS},
                          description="Datasets to ingest"),
        "dest": Param(os.environ.get("OPENPAY_DEST", ""), type="string",
                      description="s3://BUCKET[/PREFIX] or a lake directory on the workers"),
        "source_url": Param("", type="string",
                            description="CMS source (empty: openpay's default, the CMS site)"),
    },
) as dag:
    doctor = PythonOperator(task_id="doctor", python_callable=doctor_gate, retries=0)
    pairs = PythonOperator(task_id="plan", python_callable=plan_pairs, retries=0)
    ingest = PythonOperator.partial(
        task_id="ingest",
        python_callable=ingest_one,
        retries=2,
        retry_delay=timedelta(minutes=1),
        max_active_tis_per_dag=int(os.environ.get("OPENPAY_MAX_PARALLEL", "4")),
        outlets=[RAW_ALIAS],
    ).expand(op_kwargs=pairs.output)
    verify = PythonOperator.partial(
        task_id="verify", python_callable=verify_one, retries=1
    ).expand(op_kwargs=ingest.output.map(lambda s: {"summary": s}))
    doctor >> pairs
