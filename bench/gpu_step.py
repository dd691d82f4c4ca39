"""Step time of the paper's networks on this device, per precision / layout / compile, with MFU.

    python bench/gpu_step.py                 # CUDA: batch 1 and 16; fp32, bf16, channels_last, compile
    python bench/gpu_step.py --smoke         # any device: tiny networks, 1 timed step (tests the path)

Every variant runs ``pix2pix_step`` (the function ``train()`` runs) on fixed tensors and is timed
against fp32 in the same process. MFU = achieved FLOP/s ÷ the GPU's dense bf16 peak (table below
by device name, or ``PEAK_TFLOPS=...``). One batch-1 iteration of the paper's networks is 86.9
GFLOP (PAPER.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import torch

from pix2pix.training import TrainConfig
from pix2pix.training.loop import build_models
from pix2pix.training.step import make_adam, pix2pix_step

GFLOP_PER_ITER = 86.9
# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity), by a substring of the device name.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0,
                    "A10G": 70.0, "A10": 125.0, "RTX 4090": 165.0, "RTX 3090": 71.0, "V100": 125.0,
                    "T4": 65.0}


def peak_tflops(name: str) -> float | None:
    if os.environ.get("PEAK_TFLOPS"):
        return float(os.environ["PEAK_TFLOPS"])
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value
    return None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_variant(device: torch.device, batch: int, *, bf16: bool, channels_last: bool,
                 compile: bool, iters: int, cfg: TrainConfig, size: int) -> list[float]:
    G, D = (m.to(device) for m in build_models(cfg))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    G, D = G.to(memory_format=fmt), D.to(memory_format=fmt)
    opt_G, opt_D = (make_adam(m, cfg.lr, (cfg.beta1, cfg.beta2)) for m in (G, D))
    Gt, Dt = (torch.compile(G), torch.compile(D)) if compile else (G, D)
    a, b = (torch.rand(batch, 3, size, size, device=device).mul(2).sub(1).contiguous(memory_format=fmt)
            for _ in range(2))

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    times = []
    for i in range(iters + 2):  # 2 warm-up steps (compile, cudnn autotuning)
        sync(device)
        t0 = time.perf_counter()
        pix2pix_step(Gt, Dt, opt_G, opt_D, a, b, autocast=autocast)
        sync(device)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, nargs="*", default=[1, 16])
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--smoke", action="store_true", help="tiny networks at 128², 1 timed step")
    a = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    cfg = TrainConfig()
    size, gflop = 256, GFLOP_PER_ITER
    if a.smoke:
        cfg = TrainConfig.from_dict({"generator": "unet_128", "crop_size": 128, "ngf": 8, "ndf": 8})
        size, gflop, a.iters, a.batch = 128, None, 1, [1, 2]
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    peak = peak_tflops(name)
    print(f"device: {name} | torch {torch.__version__} | CUDA {torch.version.cuda} | "
          f"cuDNN {torch.backends.cudnn.version() if device.type == 'cuda' else None} | "
          f"bf16 peak {f'{peak:.0f} TFLOP/s' if peak else 'unknown (set PEAK_TFLOPS)'}")
    variants = {"fp32": {}, "bf16": {"bf16": True}, "channels_last": {"channels_last": True},
                "bf16 + channels_last": {"bf16": True, "channels_last": True},
                "bf16 + channels_last + compile": {"bf16": True, "channels_last": True,
                                                   "compile": True}}
    if a.smoke:  # Inductor compiles for minutes on a small CPU; tests/test_gpu_paths.py runs it
        del variants["bf16 + channels_last + compile"]
        print("smoke: the compile variant is skipped (tests/test_gpu_paths.py covers compile on CPU)")
    print(f"\n| {'batch':>5} | {'variant':<30} | {'median s':>8} | {'vs fp32':>7} | {'img/s':>7} | "
          f"{'TFLOP/s':>7} | {'MFU':>6} |")
    print(f"|{'-' * 7}|{'-' * 32}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 8}|")
    for batch in a.batch:
        base = None
        for label, opts in variants.items():
            kw = {"bf16": False, "channels_last": False, "compile": False, **opts}
            t = statistics.median(time_variant(device, batch, iters=a.iters, cfg=cfg, size=size, **kw))
            base = base or t
            tflops = gflop * batch / t / 1e3 if gflop else None
            mfu = f"{100 * tflops / peak:5.1f}%" if (tflops and peak) else "   n/a"
            print(f"| {batch:5d} | {label:<30} | {t:8.4f} | {base / t:6.2f}x | {batch / t:7.1f} | "
                  f"{f'{tflops:7.1f}' if tflops else '    n/a'} | {mfu} |", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
