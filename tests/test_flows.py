"""The build-dataset flow: tasks through `.fn()`, source resolution, and real flow runs.

Real runs use one Prefect test harness for the whole session (prefect_fixtures.prefect_harness),
images made here, and local HTTP servers (tests/httpfault.py) for downloads: nothing leaves
127.0.0.1.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from httpfault import FaultServer, Serve, Status
from PIL import Image
from prefect_fixtures import prefect_harness  # noqa: F401 - session fixture, used by name below

from flows import build_dataset as bd
from flows.common import artifact_key
from pix2pix.errors import ConfigError, SourceError
from pix2pix.prepare.build import build_dataset
from pix2pix.prepare.config import BuildConfig
from pix2pix.prepare.download import DownloadError
from pix2pix.prepare.resolve import ResolvedSource, fetch_url_list, resolve_source

harness = pytest.mark.usefixtures("prefect_harness")


# --- data made on the spot ---------------------------------------------------------------------


def _image(seed: int, w: int, h: int) -> np.ndarray:
    """A smooth random colour field with a rectangle: distinct per seed, cheap to decode."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BILINEAR)).copy()
    x, y = rng.integers(0, w // 2), rng.integers(0, h // 2)
    img[y : y + h // 4, x : x + w // 4] = rng.integers(0, 256, 3, dtype=np.uint8)
    return img


def _jpeg_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_photos(folder: Path, n: int, *, seed: int = 0) -> Path:
    """`n` 320x240 JPEG photos, plus one truncated JPEG and one text file the build must reject."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"photo{i:02d}.jpg").write_bytes(_jpeg_bytes(_image(seed + i, 320, 240)))
    (folder / "broken.jpg").write_bytes(_jpeg_bytes(_image(999, 320, 240))[:600])
    (folder / "notes.md").write_text("not a photo\n")
    return folder


def official_archive(name: str, splits: dict[str, int]) -> bytes:
    """A .tar.gz in the official layout: `<name>/<split>/<k>.jpg`, 512x256 A|B JPEGs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for s, count in splits.items():
            for k in range(1, count + 1):
                half = _image(hash((s, k)) % 10_000, 256, 256)  # a real pair: B is A inverted
                data = _jpeg_bytes(np.concatenate([half, 255 - half], axis=1))
                info = tarfile.TarInfo(f"{name}/{s}/{k}.jpg")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _artifacts_of(flow_run_id) -> dict[str, object]:
    """The artifacts a flow run created, by type (progress, markdown, table)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {a.type: a for a in arts}


def _logs_of(flow_run_id, wait_for: str, timeout: float = 15.0) -> list[str]:
    """Log messages of a flow run; polls until one contains `wait_for` (logs reach the API in batches)."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + timeout
    of_run = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
    with get_client(sync_client=True) as client:
        while True:
            logs = [lg.message for lg in client.read_logs(of_run)]
            if any(wait_for in m for m in logs) or time.monotonic() > deadline:
                return logs
            time.sleep(0.5)


# --- source resolution (plain functions, no Prefect) -------------------------------------------


def test_local_sources_resolve_as_is_and_unknown_ones_are_named(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    res = resolve_source(str(tmp_path / "pics"), tmp_path / "raw")
    assert (res.path, res.kind, res.extra_rejected) == (str(tmp_path / "pics"), "local", [])
    with pytest.raises(SourceError, match="named dataset .*facades"):
        resolve_source("no-such-thing", tmp_path / "raw")
    with pytest.raises(SourceError, match="must point to a .tar.gz"):
        resolve_source("http://127.0.0.1:9/photo.jpg", tmp_path / "raw")
    assert not (tmp_path / "raw").exists()  # nothing downloaded for a bad source


def test_downloads_are_retried_in_one_place_only() -> None:
    # The library retries each file; a task retry on top multiplied a stalled URL into 11 min.
    assert bd.resolve.retries == 0


def test_archive_urls_with_the_same_file_name_do_not_share_a_cache_entry(tmp_path: Path) -> None:
    one, two = official_archive("facades", {"train": 1}), official_archive("facades", {"train": 2})
    with FaultServer() as srv:
        srv.add("/v1/data.tar.gz", one)
        srv.add("/v2/data.tar.gz", two)
        first = resolve_source(srv.url("/v1/data.tar.gz"), tmp_path / "raw")
        second = resolve_source(srv.url("/v2/data.tar.gz"), tmp_path / "raw")
        again = resolve_source(srv.url("/v1/data.tar.gz"), tmp_path / "raw")
        assert srv.count("/v1/data.tar.gz") == 1 and srv.count("/v2/data.tar.gz") == 1
    assert first.path != second.path and first.path == again.path and again.downloaded == 0
    assert Path(first.path).read_bytes() == one and Path(second.path).read_bytes() == two
    assert Path(first.path).name.startswith("data-") and first.path.endswith(".tar.gz")


def test_url_list_view_holds_only_images_and_failures_become_rejections(tmp_path: Path) -> None:
    with FaultServer() as srv:
        urls = [srv.add(f"/img/{i}.jpg", _jpeg_bytes(_image(i, 300, 200))) for i in range(3)]
        urls.insert(1, srv.url("/img/missing.jpg"))
        (tmp_path / "my list.txt").write_text("# photos\n" + "\n".join(urls) + "\n")
        res = fetch_url_list(tmp_path / "my list.txt", tmp_path / "raw")
        again = resolve_source(str(tmp_path / "my list.txt"), tmp_path / "raw")  # cached: no new GET
        assert srv.count("/img/0.jpg") == 1
    view = tmp_path / "raw" / "my_list" / "images"
    assert res.kind == "url-list" and Path(res.path) == view
    assert sorted(p.suffix for p in view.iterdir()) == [".jpg"] * 3  # no .sha256 sidecars to reject
    assert res.downloaded == 3 and again.downloaded == 0
    [failure] = res.extra_rejected
    assert failure["source"] == urls[1] and failure["kind"] == "download failed"
    assert failure["line"] == 3 and "404" in failure["reason"]


def test_url_list_with_nothing_downloadable_fails_without_retry(tmp_path: Path) -> None:
    with FaultServer() as srv:
        (tmp_path / "urls.txt").write_text(srv.url("/a.jpg") + "\n" + srv.url("/b.jpg") + "\n")
        with pytest.raises(DownloadError, match="none of its 2 URLs"):
            fetch_url_list(tmp_path / "urls.txt", tmp_path / "raw")
        assert srv.count("/a.jpg") == 1 and srv.count("/b.jpg") == 1  # a 404 is not retried


# --- tasks through .fn() and pure helpers --------------------------------------------------------


def test_tasks_fn_in_chunks_write_the_same_dataset_as_the_library(tmp_path: Path) -> None:
    src = make_photos(tmp_path / "photos", 7)
    cfg = BuildConfig(source=str(src), out=str(tmp_path / "flow"), op="edges", progress=False)
    res = bd.resolve.fn(str(src), str(tmp_path / "raw"), None, False)
    assert res.kind == "local"
    plan = bd.plan.fn(cfg)
    chunks = [plan.items[s : s + 3] for s in range(0, len(plan.items), 3)]
    records = [r for k, jobs in enumerate(chunks) for r in bd.build_chunk.fn(plan, jobs, 3 * k)]
    summary = bd.finalize.fn(plan, records, [], 0.0)
    reference = build_dataset(BuildConfig(source=str(src), out=str(tmp_path / "lib"), op="edges", progress=False))
    assert summary.counts == reference.counts and summary.total == 7
    for name in ("manifest.jsonl", "rejected.jsonl", "near_duplicates.jsonl"):
        assert (tmp_path / "flow" / name).read_bytes() == (tmp_path / "lib" / name).read_bytes(), name


def test_artifact_keys_and_dataset_card() -> None:
    assert artifact_key("dataset", "data/My_Set v2") == "dataset-my-set-v2"
    assert artifact_key("dataset", "data/facades/") == "dataset-facades"
    summary = {"out": "data/x", "total": 5, "counts": {"train": 4, "val": 1, "test": 0}, "source_kind": "folder",
               "rejected": {"not an image": 2}, "seconds": 1.5, "near_duplicates": 1,
               "near_duplicates_across_splits": 1}
    card = bd.dataset_card(summary, ResolvedSource(path="p", kind="local", origin="p"))
    assert "| train | 4 |" in card and "| not an image | 2 |" in card and "1 of them across splits" in card
    assert "data/x/rejected.jsonl" in card


def test_bad_parameters_fail_before_any_download() -> None:
    with pytest.raises(ConfigError, match="op"):
        bd.build_dataset_flow.fn(source="facades", out="x", op="sharpen")
    with pytest.raises(ConfigError, match="options: op: set by the flow's own parameters"):
        bd.build_dataset_flow.fn(source="facades", out="x", options={"op": "edges"})
    with pytest.raises(ConfigError, match="one or the other"):
        bd.chunk_task_runner(1, "tcp://127.0.0.1:8786", True)


# --- real flow runs --------------------------------------------------------------------------------


@harness
def test_flow_builds_a_local_folder_with_artifacts_and_rejections(tmp_path: Path) -> None:
    src = make_photos(tmp_path / "photos", 9)
    (src / "copy.jpg").write_bytes((src / "photo00.jpg").read_bytes())  # an exact duplicate
    out = tmp_path / "data" / "Demo_Set"
    state = bd.build_dataset_flow(str(src), str(out), op="grayscale", chunk_threads=2, chunk_size=4, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    meta = json.loads((out / "dataset.json").read_text())
    assert summary["counts"] == meta["counts"] and sum(meta["counts"].values()) == 9 == summary["total"]
    assert len(_jsonl(out / "manifest.jsonl")) == 9
    assert summary["rejected"] == {"exact duplicate": 1, "not an image": 1, "truncated": 1}
    rejected = {r["source"]: r["kind"] for r in _jsonl(out / "rejected.jsonl")}
    # copy.jpg sorts first, so it is the copy kept and photo00.jpg the duplicate
    assert rejected == {"broken.jpg": "truncated", "notes.md": "not an image", "photo00.jpg": "exact duplicate"}
    for split, n in meta["counts"].items():
        assert len(list((out / split).glob("*.jpg"))) == n
    assert not list(tmp_path.glob("data/.*"))  # no staging left behind

    arts = _artifacts_of(state.state_details.flow_run_id)
    assert set(arts) == {"progress", "markdown", "table"}
    assert arts["progress"].key == "dataset-demo-set-progress" and float(arts["progress"].data) == 100.0
    assert arts["markdown"].key == "dataset-demo-set-card" and "| train |" in arts["markdown"].data
    assert arts["table"].key == "dataset-demo-set-counts"
    table = json.loads(arts["table"].data)
    assert table[-1] == {"split": "total", "pairs": 9}
    logs = _logs_of(state.state_details.flow_run_id, "rejected notes.md")
    assert any("rejected broken.jpg: truncated image file" in m for m in logs), logs


@harness
def test_named_dataset_from_a_mirror_builds_end_to_end(tmp_path: Path) -> None:
    archive = official_archive("facades", {"train": 5, "val": 3})
    with FaultServer() as srv:
        srv.add("/mirror/facades.tar.gz", archive)
        srv.add("/mirror/maps.tar.gz", b"", [Status(404)])
        summary = bd.build_dataset_flow("facades", str(tmp_path / "facades"), base_url=srv.url("/mirror"),
                                        raw_dir=str(tmp_path / "raw"), size=128)
        # A 404 is a permanent answer: the resolve task does not retry it.
        state = bd.build_dataset_flow("maps", str(tmp_path / "maps"), base_url=srv.url("/mirror"),
                                      raw_dir=str(tmp_path / "raw"), return_state=True)
        assert state.is_failed() and srv.count("/mirror/maps.tar.gz") == 1
    assert summary["source_resolution"] == "named" and summary["source_kind"] == "ab"
    assert summary["counts"] == {"train": 5, "val": 3, "test": 0}  # the archive's splits are kept
    assert (tmp_path / "raw" / "facades.tar.gz").read_bytes() == archive
    manifest = _jsonl(tmp_path / "facades" / "manifest.jsonl")
    assert {r["op"] for r in manifest} == {"ab"} and {tuple(r["size"]) for r in manifest} == {(256, 128)}
    assert not (tmp_path / ".facades.extract").exists()


@harness
def test_url_list_with_a_404_rejects_it_and_builds_the_rest(tmp_path: Path) -> None:
    with FaultServer() as srv:
        urls = [srv.add(f"/p/{i}.jpg", _jpeg_bytes(_image(50 + i, 300, 300))) for i in range(4)]
        urls.append(srv.url("/p/gone.jpg"))
        srv.add("/p/flaky.jpg", _jpeg_bytes(_image(70, 300, 300)), [Status(503), Serve()])
        urls.append(srv.url("/p/flaky.jpg"))
        (tmp_path / "urls.csv").write_text("url\n" + "\n".join(urls) + "\n")
        summary = bd.build_dataset_flow(str(tmp_path / "urls.csv"), str(tmp_path / "out"), op="edges",
                                        raw_dir=str(tmp_path / "raw"))
    assert summary["total"] == 5 and summary["download_failures"] == 1
    assert summary["rejected"] == {"download failed": 1}
    [rej] = _jsonl(tmp_path / "out" / "rejected.jsonl")
    assert rej["source"] == urls[4] and rej["kind"] == "download failed" and rej["status"] == 404
    assert len(_jsonl(tmp_path / "out" / "manifest.jsonl")) == 5


@harness
def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = make_photos(tmp_path / "photos", 3)
    assert bd.main([str(src), str(tmp_path / "out"), "--op", "edges", "--option", "quality=90"]) == 0
    assert "pairs: 3" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "dataset.json").read_text())["config"]["quality"] == 90
    assert bd.main([str(src), str(tmp_path / "out")]) == 2  # exists, no --overwrite: a usage error
    assert "already exists" in capsys.readouterr().err
    assert bd.main([str(src), str(tmp_path / "o2"), "--option", "novalue"]) == 2
    assert bd.main(["--op", "edges"]) == 2 and "SOURCE is missing" in capsys.readouterr().err
    # A params.yaml section, as a DVC stage would pass it; flags win over the file.
    (tmp_path / "params.yaml").write_text("build:\n  op: grayscale\n  size: 128\n  quality: 80\n  progress: true\n")
    assert bd.main([str(src), str(tmp_path / "o3"), "--params", str(tmp_path / "params.yaml"), "--size", "64"]) == 0
    config = json.loads((tmp_path / "o3" / "dataset.json").read_text())["config"]
    assert (config["op"], config["size"], config["quality"]) == ("grayscale", 64, 80)


@pytest.mark.slow
def test_cli_error_is_one_line_without_prefect_traceback(tmp_path: Path) -> None:
    # As a user runs it, with no server configured (Prefect starts a temporary one, offline
    # here): the output exists and is not a dataset, so the flow fails inside Prefect, which logs
    # the exception. The user sees the one error line, and no traceback of the project's own
    # error nor of the temporary server's telemetry (Prefect's own log lines stay).
    import os
    import subprocess
    import sys

    src = make_photos(tmp_path / "photos", 2)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED")}
    env.update(PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
               PREFECT_HOME=str(tmp_path / "prefect-home"))
    run = subprocess.run([sys.executable, "-m", "flows.build_dataset", str(src), str(tmp_path / "out")],
                         capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert run.returncode == 2, run.stderr[-2000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {tmp_path / 'out'} already exists and is not empty; pass --overwrite to replace it"]
    assert "Traceback" not in run.stderr + run.stdout
    assert "telemetry" not in run.stderr.lower()
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


@harness
def test_serve_defines_the_deployments_and_needs_a_server(capsys: pytest.CaptureFixture) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.serve import build_deployments, train_deployments
    from pix2pix.cli.serve import run_serve
    from pix2pix.prepare.catalog import NAMED_DATASETS

    deps = {d.name: d for d in build_deployments()}
    assert set(deps) == {"default", *NAMED_DATASETS}
    assert deps["facades"].parameters == {"source": "facades", "out": "data/facades"}
    assert all(d.entrypoint == "flows.build_dataset.build_dataset_flow" for d in deps.values())
    assert [d.name for d in train_deployments()] == ["default"]
    from flows.serve import stage_deployments

    served = {f"{d.flow_name}/{d.name}" for d in stage_deployments()}
    assert served == {"train/default", "evaluate/default", "translate/default", "pipeline/default",
                      "dvc-repro/default"}
    assert {f"{d.flow_name}/{d.name}" for d in stage_deployments(include_train=False)} == {
        "evaluate/default", "translate/default", "dvc-repro/default"}
    import argparse

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert run_serve(argparse.Namespace(limit=None, no_train=False)) == 2
    assert "PREFECT_API_URL is not set" in capsys.readouterr().err


@harness
def test_chunks_run_on_a_local_dask_cluster(tmp_path: Path) -> None:
    src = make_photos(tmp_path / "photos", 6)
    summary = bd.build_dataset_flow(str(src), str(tmp_path / "out"), op="edges", chunk_size=2, use_dask_local=True)
    reference = build_dataset(BuildConfig(source=str(src), out=str(tmp_path / "ref"), op="edges", progress=False))
    assert summary["counts"] == reference.counts and summary["total"] == 6
    assert (tmp_path / "out" / "manifest.jsonl").read_bytes() == (tmp_path / "ref" / "manifest.jsonl").read_bytes()


# --- train, evaluate, translate, pipeline, dvc-repro flows -------------------------------------------

TINY_TRAIN = {"generator": "unet_128", "size": 128, "ngf": 4, "ndf": 4, "n_epochs": 2, "n_epochs_decay": 0,
              "num_workers": 0, "num_threads": 1, "sample_every": 2, "log_every": 1, "seed": 1}


def test_stage_flow_helpers_render_what_the_ui_shows() -> None:
    from flows import dvc_repro, evaluate, train_progress
    from flows.build_dataset import flow_kwargs

    metrics = {"L1": 0.25, "PSNR": 12.5, "SSIM": 0.4, "hist_intersection": {"L": 0.9, "a": 0.8, "b": 0.7},
               "split": "test", "count": 3, "eval_mode": "train",
               "baselines": {"identity (A as output)": {"L1": 0.5, "PSNR": 8.0, "SSIM": 0.1}}}
    md = evaluate.metrics_markdown(metrics, "reports/x")
    assert "| **model** | 0.2500 | 12.5000 | 0.4000 | 0.900/0.800/0.700 |" in md
    assert "| identity (A as output) | 0.5000 | 8.0000 | 0.1000 |  |" in md and "reports/x/report.html" in md
    assert "no baselines" in evaluate.metrics_markdown({k: v for k, v in metrics.items() if k != "baselines"}, "r")
    inpaint = {**metrics, "hole": {"L1": 0.6, "PSNR": 6.0},
               "baselines": {"telea": {"L1": 0.3, "PSNR": 9.0, "SSIM": 0.2, "hole": {"L1": 0.7, "PSNR": 5.5}}}}
    md = evaluate.metrics_markdown(inpaint, "r")
    assert "hole L1 | hole PSNR |" in md and "| 0.900/0.800/0.700 | 0.6000 | 6.0000 |" in md
    assert "| telea | 0.3000 | 9.0000 | 0.2000 |  | 0.7000 | 5.5000 |" in md
    assert train_progress.format_seconds(3725) == "1h02m" and train_progress.format_seconds(65) == "1m05s"
    rows = train_progress.metrics_table({"epoch": 2, "val_L1": 0.123456789, "device": "cpu", "other": 1})
    assert rows == [{"metric": "epoch", "value": 2}, {"metric": "val_L1", "value": 0.123457},
                    {"metric": "device", "value": "cpu"}]
    out = ("Running stage 'samples':\n> x\nStage 'build' didn't change, skipping\nRunning stage 'train':\n"
           "ERROR: failed to reproduce 'train': failed to run: x, exited with 1\n")
    assert dvc_repro.stage_outcomes(out) == {"samples": "ran", "build": "unchanged", "train": "failed"}
    shown = json.dumps({"": {"data": {"m.json": {"data": {"L1": 0.5, "hist": {"L": 0.9}}}}}})
    assert dvc_repro.metrics_rows(shown) == [{"file": "m.json", "metric": "L1", "value": 0.5},
                                             {"file": "m.json", "metric": "hist.L", "value": 0.9}]
    kw = flow_kwargs({"op": "edges", "quality": 90, "progress": True, "options": {"pad_color": "0,0,0"}})
    assert kw == {"op": "edges", "options": {"quality": 90, "pad_color": "0,0,0"}}


@pytest.mark.slow
@harness
def test_train_evaluate_translate_flows_report_in_the_ui(tmp_path: Path) -> None:
    from dsfactory import make_dataset

    from flows.evaluate import evaluate_flow
    from flows.train import train
    from flows.translate import translate_flow

    ds = make_dataset(tmp_path / "ds", n_train=3, n_val=1, n_test=2, size=128)
    run = tmp_path / "runs" / "Tiny_Run"
    state = train(str(ds), str(run), overrides=TINY_TRAIN, dvclive=False, return_state=True)
    assert state.is_completed(), state.message
    metrics = state.result()
    assert (metrics["epoch"], metrics["step"]) == (2, 6) and (run / "generator.pt").is_file()
    assert metrics["samples"] == str(run / "samples" / "step-0000006.png") and Path(metrics["samples"]).is_file()
    run_id = state.state_details.flow_run_id
    logs = _logs_of(run_id, "epoch 2/2")
    assert any("preset not given: using 'small' (no CUDA device" in m for m in logs), logs
    assert any(m.startswith("epoch 2/2: G_GAN") and "val L1" in m and "img/s" in m for m in logs), logs
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        arts = {a.key: a for a in client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_="train-tiny-run")))}
    assert set(arts) == {"train-tiny-run-progress", "train-tiny-run-metrics", "train-tiny-run-files"}
    assert float(arts["train-tiny-run-progress"].data) == 100.0
    assert "epoch 2/2, step 6, ETA 0s" in arts["train-tiny-run-progress"].description
    table = {r["metric"]: r["value"] for r in json.loads(arts["train-tiny-run-metrics"].data)}
    assert table["epoch"] == 2 and table["step"] == 6 and table["val_L1"] > 0
    assert str(run / "samples") in arts["train-tiny-run-files"].data

    state = evaluate_flow(str(run), str(ds), str(tmp_path / "report"), overrides={"num_threads": 1},
                          return_state=True)
    assert state.is_completed(), state.message
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert state.result()["L1"] == saved["L1"]
    [md] = [a for a in _artifacts_of(state.state_details.flow_run_id).values() if a.type == "markdown"]
    assert md.key == "eval-report" and f"| **model** | {saved['L1']:.4f} |" in md.data
    assert str(tmp_path / "report" / "report.html") in md.data

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.jpg").write_bytes(b"not a jpeg")
    for p in sorted((ds / "test").glob("*.jpg")):
        (tmp_path / "in" / p.name).write_bytes(p.read_bytes())
    result = translate_flow(str(run), [str(tmp_path / "in")], str(tmp_path / "t"), overrides={"eval_mode": "eval"})
    assert result["count"] == 2 and [Path(r["input"]).name for r in result["rejected"]] == ["bad.jpg"]
    assert len(list((tmp_path / "t").glob("*.png"))) == 2
    with pytest.raises(ConfigError, match="translate: unknown setting"):
        translate_flow.fn(str(run), [str(tmp_path / "in")], str(tmp_path / "t2"), overrides={"tiles": 3})


@pytest.mark.slow
@harness
def test_dvc_repro_flow_reports_stages_and_metrics(tmp_path: Path) -> None:
    import subprocess

    from flows.dvc_repro import dvc_command, dvc_repro

    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([*dvc_command(), "init", "-q"], cwd=repo, check=True)
    (repo / "score.sh").write_text("echo '{\"L1\": 0.5}' > m.json\n")
    (repo / "dvc.yaml").write_text(
        "stages:\n  make:\n    cmd: echo 1 > a.txt\n    outs: [a.txt]\n"
        "  score:\n    cmd: sh score.sh\n    deps: [a.txt, score.sh]\n    metrics: [{m.json: {cache: false}}]\n")
    first = dvc_repro(str(repo))
    assert first["stages"] == {"make": "ran", "score": "ran"}
    assert first["metrics"] == [{"file": "m.json", "metric": "L1", "value": 0.5}]
    assert (repo / "dvc.lock").is_file()
    state = dvc_repro(str(repo), return_state=True)
    assert state.result()["stages"] == {"make": "unchanged", "score": "unchanged"}
    arts = _artifacts_of(state.state_details.flow_run_id)
    assert json.loads(arts["table"].data)  # the stage table (the metrics table has the same type)
    (repo / "score.sh").write_text("exit 1\n")
    state = dvc_repro(str(repo), return_state=True)
    assert state.is_failed()
    exc = state.result(raise_on_failure=False)
    assert "dvc repro in" in str(exc) and "exited with 1" in str(exc) and "score" in str(exc)
    with get_client_sync() as client:
        [table] = [a for a in client.read_artifacts() if a.key == "dvc-repro-stages"
                   and a.flow_run_id == state.state_details.flow_run_id]
    assert json.loads(table.data) == [{"stage": "make", "outcome": "unchanged"},
                                      {"stage": "score", "outcome": "failed"}]


def get_client_sync():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)
