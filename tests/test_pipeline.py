"""A real `dvc repro` of the project's dvc.yaml + params.yaml in a fresh git repository."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
DVC = [sys.executable, "-m", "dvc"]


def _demo_repo(repo: Path) -> tuple[dict, dict]:
    """The project's pipeline files and code in a fresh git + DVC repository, with tiny
    training numbers: 128 px, 4-filter networks, one epoch. Returns (env, params)."""
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "pix2pix", repo / "pix2pix", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "flows", repo / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["build"].update(size=128, workers=1)
    params["train"].update(generator="unet_128", ngf=4, ndf=4, n_epochs=1, n_epochs_decay=0,
                           num_workers=0)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = _env(repo)
    _run(["git", "init", "-q"], repo, env)
    _run([*DVC, "init", "-q"], repo, env)
    _run([*GIT, "add", "-A"], repo, env)
    _run([*GIT, "commit", "-qm", "pipeline"], repo, env)
    return env, params


def _env(repo: Path) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # `python` = this venv
    env["PYTHONPATH"] = str(repo)
    env.setdefault("DVC_NO_ANALYTICS", "1")
    return env


@pytest.mark.slow
def test_dvc_repro_runs_the_pipeline_and_reruns_only_what_changed(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    env, params = _demo_repo(repo)

    first = _run([sys.executable, "-m", "dvc", "repro"], repo, env).stdout
    for stage in ("samples", "build", "train", "evaluate"):
        assert f"Running stage '{stage}'" in first
    # Under dvc repro stdout is no terminal: a plain progress line per epoch, rate and ETA.
    assert re.search(r"\[train\] epoch 1/1 \(step \d+/\d+\): [\d.]+ steps/s, ETA \w+", first)
    meta = json.loads((repo / "data/dataset/dataset.json").read_text())
    crops = params["build"]["crops_per_image"]
    # Every crop is a pair, or rejected as near-blank (a 128 crop of the retina photo's black border).
    assert meta["total"] + meta["rejected"]["total"] == 12 * crops and meta["size"] == 128
    assert set(meta["rejected"]["by_reason"]) <= {"near-blank"} and meta["rejected"]["total"] <= 2
    assert meta["counts"]["test"] >= 8  # the demo's report rests on more than one image
    assert (repo / "runs/demo/generator.pt").stat().st_size > 1000
    metrics = json.loads((repo / "runs/demo/metrics.json").read_text())
    assert metrics  # the stage's declared metrics file exists and holds numbers
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert lock["stages"]["train"]["params"]["params.yaml"]["train"]["ngf"] == 4
    assert "build" not in lock["stages"]["train"]["params"]["params.yaml"]  # a stage reads only its section
    report = json.loads((repo / "reports/demo/metrics.json").read_text())
    assert report["count"] == meta["counts"]["test"] and 0 <= report["SSIM"] <= 1
    # Inside the masked box the model must beat doing nothing (the white fill left as is).
    assert report["task"] == "inpaint" and set(report["baselines"]) == {"identity", "telea"}
    assert report["hole"]["L1"] < report["baselines"]["identity"]["hole"]["L1"]
    assert (repo / "reports/demo/report.html").stat().st_size > 1000

    assert "Data and pipelines are up to date" in _run([sys.executable, "-m", "dvc", "status"], repo, env).stdout

    params["train"]["lr"] = 0.0001
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    second = _run([sys.executable, "-m", "dvc", "repro"], repo, env)
    out = second.stdout
    assert "Stage 'samples' didn't change, skipping" in out
    assert "Stage 'build' didn't change, skipping" in out
    assert "Running stage 'train'" in out and "Running stage 'evaluate'" in out  # new G, new report
    # The persisted checkpoint was made with another lr: it must not be resumed silently.
    assert "starting fresh, this run differs from the checkpoint: lr: checkpoint 0.0002, now 0.0001" in out
    new_cfg = json.loads((repo / "runs/demo/config.json").read_text())
    assert new_cfg["lr"] == 0.0001


@pytest.mark.slow
def test_a_fresh_clone_pulls_a_clean_pipeline_from_the_remote(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    env, _ = _demo_repo(repo)
    _run([*DVC, "remote", "add", "-d", "local", str(tmp_path / "remote")], repo, env)
    _run([*DVC, "repro"], repo, env)
    # What the README says to commit after `make demo`; nothing else is left untracked.
    _run([*GIT, "add", "dvc.lock", ".dvc/config", "runs/demo", "reports/demo"], repo, env)
    _run([*GIT, "commit", "-qm", "demo run"], repo, env)
    assert _run(["git", "status", "--porcelain"], repo, env).stdout == ""
    committed = _run(["git", "ls-files", "runs", "reports"], repo, env).stdout.split()
    assert sorted(committed) == ["reports/demo/.gitignore", "reports/demo/scores.json",
                                 "runs/demo/.gitignore", "runs/demo/config.json",
                                 "runs/demo/metrics.json", "runs/demo/run_info.json"]
    _run([*DVC, "push"], repo, env)

    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    cenv = _env(clone)
    _run([*DVC, "pull"], clone, cenv)
    assert "Data and pipelines are up to date" in _run([*DVC, "status"], clone, cenv).stdout
    again = _run([*DVC, "repro"], clone, cenv).stdout
    assert "Running stage" not in again
    for stage in ("samples", "build", "train", "evaluate"):
        assert f"Stage '{stage}' didn't change, skipping" in again
    # The pulled run and report are whole: curves, grids, one full checkpoint (keep_last 1).
    assert (clone / "reports/demo/plots/training_curves.png").stat().st_size > 1000
    assert [p.suffix for p in (clone / "runs/demo/samples").iterdir()] == [".png"]
    steps = json.loads((clone / "runs/demo/metrics.json").read_text())["step"]
    assert sorted(p.name for p in (clone / "runs/demo/checkpoints").iterdir()) == [
        f"ckpt-{steps}.pt", "latest.pt"]

    # Metrics at a committed revision are readable (no `!`); training's are numbers only.
    shown = json.loads(_run([*DVC, "metrics", "show", "--json", "-a"], clone, cenv).stdout)
    files = {k: v["data"] for rev in shown.values() for k, v in rev["data"].items()}
    train_metrics = files["runs/demo/metrics.json"]
    assert train_metrics["epoch"] == 1 and train_metrics["step"] == steps
    scores = files["reports/demo/scores.json"]
    assert 0 <= scores["SSIM"] <= 1 and scores["baselines"]["identity"]["PSNR"] > 0
    for values in (train_metrics, scores, *scores["baselines"].values()):
        assert all(isinstance(v, (int, float, dict)) and not isinstance(v, bool)
                   for v in values.values()), values
    assert not {"config", "device", "dataset", "generator", "split"} & set(scores)
    # The declared plots render from the pulled files.
    plots = json.loads(_run([*DVC, "plots", "show", "--json"], clone, cenv).stdout)["data"]
    assert any("dvclive/plots/metrics/epoch" in k for k in plots)
    assert "reports/demo/per_image.csv" in plots
    assert any(k.startswith("reports/demo/images/") and k.endswith(".png") for k in plots)
