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
