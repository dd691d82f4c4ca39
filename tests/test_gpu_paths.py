"""The CUDA-only code paths, run on the CPU: a failure here is a bug the first GPU user would hit.

bf16 autocast, channels_last, torch.compile (Inductor on CPU), fp16 with GradScaler, and DDP
wrapping + compile (gloo, 1 process), each for a few steps at tiny widths; then the checkpoint is
reloaded and the run resumed. ``amp: bf16|fp16`` and ``memory_format: channels_last`` force
the paths on CPU (documented config values, docs/training.md).
"""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.multiprocessing as mp
from dsfactory import make_dataset
from test_ddp import _worker, free_port

from pix2pix.training import TrainConfig, load_checkpoint, load_generator, train

pytestmark = pytest.mark.slow

TINY = {"generator": "unet_128", "size": 128, "ngf": 8, "ndf": 8, "n_epochs": 1,
        "n_epochs_decay": 0, "num_workers": 0, "num_threads": 2, "sample_every": 0,
        "log_every": 1, "val_max_images": 1, "seed": 1}


class Losses:
    def __init__(self) -> None:
        self.steps: list[dict] = []

    def on_step(self, metrics: dict, step: int) -> None:
        self.steps.append(metrics)


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("gpu") / "ds", n_train=2, n_val=1, size=128)


def run_and_resume(ds, run, extra: dict) -> tuple[list[dict], dict, object]:
    """2 steps (1 epoch), then resume from the checkpoint for a 2nd epoch: (losses, ckpt, result)."""
    rec = Losses()
    train(TrainConfig.from_dict({**TINY, **extra}), ds, run, progress=False, callbacks=[rec])
    first = load_checkpoint(run / "checkpoints" / "latest.pt")
    result = train(TrainConfig.from_dict({**TINY, **extra, "n_epochs": 2}), ds, run,
                   progress=False, resume=True, callbacks=[rec])
    assert result.resumed_from is not None and result.step == 4 and first["step"] == 2
    ckpt = load_checkpoint(run / "checkpoints" / "latest.pt")
    for part in ("G", "D"):  # plain module keys: what load_generator and official tools expect
        assert list(ckpt[part]) == list(getattr(result, part).state_dict())
        assert not any("_orig_mod" in k or k.startswith("module.") for k in ckpt[part])
    G, info = load_generator(run / "generator.pt")
    assert info["step"] == 4
    moved = max((ckpt["G"][k].float() - first["G"][k].float()).abs().max().item()
                for k in ckpt["G"] if ckpt["G"][k].is_floating_point())
    assert moved > 0  # the resumed epoch trained
    assert all(math.isfinite(v) for m in rec.steps for k, v in m.items() if k != "lr")
    return rec.steps, ckpt, result


@pytest.fixture(scope="module")
def fp32(ds, tmp_path_factory):
    return run_and_resume(ds, tmp_path_factory.mktemp("fp32") / "run", {})


def close_to_fp32(steps: list[dict], fp32_steps: list[dict], rtol: float) -> None:
    a, b = steps[0], fp32_steps[0]  # step 1: same weights, same data, same dropout masks
    for k in ("G_GAN", "G_L1", "D_real", "D_fake"):
        assert a[k] == pytest.approx(b[k], rel=rtol), k


def test_bf16_autocast(ds, tmp_path, fp32):
    steps, ckpt, result = run_and_resume(ds, tmp_path / "run", {"amp": "bf16"})
    close_to_fp32(steps, fp32[0], rtol=0.05)
    assert steps[0]["G_L1"] != fp32[0][0]["G_L1"]  # autocast did run in bf16
    assert ckpt["G"]["model.model.0.weight"].dtype == torch.float32  # weights stay fp32
    assert ckpt["scaler"] == {}


def test_fp16_autocast_with_grad_scaler(ds, tmp_path, fp32):
    steps, ckpt, _ = run_and_resume(ds, tmp_path / "run", {"amp": "fp16"})
    close_to_fp32(steps, fp32[0], rtol=0.05)
    assert ckpt["scaler"]["scale"] > 0 and "_growth_tracker" in ckpt["scaler"]


def test_channels_last(ds, tmp_path, fp32):
    steps, _, result = run_and_resume(ds, tmp_path / "run", {"memory_format": "channels_last"})
    close_to_fp32(steps, fp32[0], rtol=1e-2)  # other conv kernels; Adam amplifies
    w = result.G.model.model[0].weight
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()


@pytest.mark.timeout(1200)  # Inductor compiles G and D for minutes on a small CPU
def test_compile(ds, tmp_path, fp32):
    steps, _, _ = run_and_resume(ds, tmp_path / "run", {"compile": True})
    close_to_fp32(steps, fp32[0], rtol=1e-2)


@pytest.mark.timeout(1800)  # two processes compiling, twice (run + resume)
def test_ddp_wrapping_and_compile(ds, tmp_path, fp32):
    """Two gloo processes, each compiling its DDP-wrapped G and D; then a resumed epoch."""
    run, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    cfg = {**TINY, "compile": True, "num_threads": 1}
    mp.spawn(_worker, args=(2, free_port(), str(ds), str(run), str(out), cfg), nprocs=2, join=True)
    cfg2 = {**cfg, "n_epochs": 2}
    mp.spawn(_worker, args=(2, free_port(), str(ds), str(run), str(out), cfg2, True), nprocs=2,
             join=True)
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["step"] == r1["step"] == 2  # 2 images over 2 ranks: 1 step per epoch
    assert all(torch.equal(r0["G"][k], r1["G"][k]) for k in r0["G"])
    ckpt = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert ckpt["world_size"] == 2 and ckpt["step"] == 2
    for part in ("G", "D"):
        assert list(ckpt[part]) == list(fp32[1][part])  # the bare modules' keys
    assert all(torch.equal(ckpt["G"][k], r0["G"][k]) for k in r0["G"])


def test_gpu_check_script_without_cuda_says_so_and_runs_the_cpu_smoke(tmp_path):
    """bench/gpu_check.sh on a CPU-only machine: a clear message, the same path, exit 0."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path)}
    proc = subprocess.run(["bash", str(root / "bench" / "gpu_check.sh")], capture_output=True,
                          text=True, timeout=900, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "no CUDA device here" in out and "gpu_check: done" in out
    rows = [line for line in out.splitlines() if line.startswith("|") and "| fp32 " in line]
    assert len(rows) == 2 and all("1.00x" in r for r in rows)  # fp32 is the baseline per batch
    assert "| bf16 + channels_last " in out and "compile variant is skipped" in out
    assert "metrics: device cpu," in out
