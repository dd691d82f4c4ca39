"""End to end through real processes: `prefect server start`, `python -m flows.serve`, and
`prefect deployment run 'build-dataset/default' --watch`, asserting on the dataset written.

Both servers run on 127.0.0.1 with a temporary PREFECT_HOME and are killed by process group
in a finalizer; every wait is bounded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prefect_fixtures import PREFECT, PrefectServer, start_process, stop_process

from pix2pix.prepare.samples import write_samples

pytestmark = pytest.mark.slow

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera")


def _wait_deployment(api_url: str, name: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    """Poll the API until the serving process has registered deployment `name` (flow/deployment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{api_url}/deployments/name/{name}", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.HTTPError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"deployment {name} not registered after {timeout:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


def test_served_deployment_run_from_the_cli_builds_the_dataset(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    write_samples(photos, PHOTOS)
    with PrefectServer(tmp_path / "prefect-home") as server:
        env = server.env(PREFECT_RUNNER_POLL_FREQUENCY="1")
        log = tmp_path / "serve.log"
        # cwd = tmp_path: relative `out` parameters land beside the serving process, as documented.
        serve = start_process([sys.executable, "-m", "flows.serve"], env=env, log=log, cwd=tmp_path)
        try:
            _wait_deployment(server.api_url, "build-dataset/default", serve, log)
            _wait_deployment(server.api_url, "build-dataset/facades", serve, log)
            _wait_deployment(server.api_url, "train/default", serve, log)
            run = subprocess.run(
                [PREFECT, "deployment", "run", "build-dataset/default", "--param", f"source={photos}",
                 "--param", "out=data/demo", "--param", "op=edges", "--param", "chunk_threads=2",
                 "--watch", "--watch-timeout", "120"],
                env=env, cwd=tmp_path, capture_output=True, text=True, timeout=150,
            )
        finally:
            stop_process(serve)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output + log.read_text(errors="replace")[-3000:]
    assert "Completed" in output

    out = tmp_path / "data" / "demo"
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["total"] == len(PHOTOS) == sum(meta["counts"].values())
    assert meta["config"]["op"] == "edges"
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == len(PHOTOS) and {r["op"] for r in manifest} == {"edges"}
    for rec in manifest:
        assert (out / rec["path"]).is_file()
    for split, n in meta["counts"].items():
        assert len(list((out / split).glob("*.jpg"))) == n
    assert (out / "preview.jpg").is_file()


def _artifacts(api_url: str) -> dict[str, dict]:
    """Every artifact on the server by key (the newest of each key), through the REST API."""
    req = urllib.request.Request(f"{api_url}/artifacts/filter", data=b"{}",
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        arts = sorted(json.loads(r.read()), key=lambda a: a["created"])
    return {a["key"]: a for a in arts if a.get("key")}


def _flow_runs(api_url: str) -> dict[str, dict]:
    """Flow runs by id."""
    req = urllib.request.Request(f"{api_url}/flow_runs/filter", data=b"{}",
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return {f["id"]: f for f in json.loads(r.read())}


TINY_TRAIN = {"generator": "unet_128", "size": 128, "ngf": 4, "ndf": 4, "n_epochs": 1, "n_epochs_decay": 0,
              "num_workers": 0, "num_threads": 1}


def test_pipeline_deployment_builds_trains_and_evaluates_with_artifacts(tmp_path: Path) -> None:
    """`pix2pix serve` + `prefect deployment run 'pipeline/default' --watch` on the demo photos."""
    photos = tmp_path / "photos"
    write_samples(photos)
    with PrefectServer(tmp_path / "prefect-home", timeout=240) as server:
        env = server.env(PREFECT_RUNNER_POLL_FREQUENCY="1")
        log = tmp_path / "serve.log"
        serve = start_process([sys.executable, "-m", "pix2pix.cli", "serve"], env=env, log=log, cwd=tmp_path)
        try:
            for name in ("pipeline/default", "evaluate/default", "translate/default", "dvc-repro/default"):
                _wait_deployment(server.api_url, name, serve, log)
            run = subprocess.run(
                [PREFECT, "deployment", "run", "pipeline/default", "--param", f"source={photos}",
                 "--param", "dataset=data/ds", "--param", "run_dir=runs/x", "--param", "report_dir=reports/x",
                 "--param", "preset=small", "--param", 'build={"size": 128}',
                 "--param", f"train={json.dumps(TINY_TRAIN)}", "--param", 'evaluate={"num_threads": 1}',
                 "--watch", "--watch-timeout", "170"],
                env=env, cwd=tmp_path, capture_output=True, text=True, timeout=200,
            )
            output = run.stdout + run.stderr
            assert run.returncode == 0, output + log.read_text(errors="replace")[-4000:]
            arts = _artifacts(server.api_url)
            runs = _flow_runs(server.api_url)
        finally:
            stop_process(serve)

    # the files of every stage, where the parameters put them (relative to the serving folder)
    ds, run_dir, report = tmp_path / "data" / "ds", tmp_path / "runs" / "x", tmp_path / "reports" / "x"
    meta = json.loads((ds / "dataset.json").read_text())
    assert meta["config"]["size"] == 128 and meta["total"] == 12
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epoch"] == 1 and metrics["step"] == meta["counts"]["train"]
    assert json.loads((run_dir / "config.json").read_text())["ngf"] == 4
    assert (run_dir / "generator.pt").is_file() and list((run_dir / "samples").glob("step-*.png"))
    evaluated = json.loads((report / "metrics.json").read_text())
    assert (report / "report.html").is_file() and evaluated["split"] == "test"

    # each stage's artifacts, under its own subflow run of the pipeline run
    [pipeline_run] = [f for f in runs.values() if f["deployment_id"]]  # subflows have no deployment
    assert pipeline_run["state_type"] == "COMPLETED" and pipeline_run["parent_task_run_id"] is None
    assert len(runs) == 5  # pipeline + build-dataset (+ its build-pairs) + train + evaluate
    owners = {key: runs[a["flow_run_id"]] for key, a in arts.items() if a.get("flow_run_id") in runs}
    assert {"dataset-ds-card", "dataset-ds-counts", "dataset-ds-progress", "train-x-progress", "train-x-metrics",
            "train-x-files", "eval-x"} <= set(arts), sorted(arts)
    assert all(owners[k]["parent_task_run_id"] for k in ("dataset-ds-card", "train-x-metrics", "eval-x"))
    progress = arts["train-x-progress"]
    assert float(progress["data"]) == 100.0 and "epoch 1/1" in progress["description"]
    table = {r["metric"]: r["value"] for r in json.loads(arts["train-x-metrics"]["data"])}
    assert table["epoch"] == 1 and table["step"] == metrics["step"]
    assert "runs/x/samples" in arts["train-x-files"]["data"]
    assert f"| **model** | {evaluated['L1']:.4f} |" in arts["eval-x"]["data"]
    assert "reports/x/report.html" in arts["eval-x"]["data"]
