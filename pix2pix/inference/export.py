"""Export a generator to ONNX and prove the file right before calling it done: ``pix2pix export``.

    from pix2pix.inference.export import export_onnx
    result = export_onnx("runs/facades", "facades.onnx")
    print(result.checks)          # [((256, 256), 3.1e-07), ((512, 256), 2.9e-07)]

The file has one input ``input`` (float32, N×C×H×W in [−1, 1]) and one output ``output`` (the
same shape, [−1, 1]); batch, height and width are dynamic, H and W multiples of the generator's
``size_multiple`` (256 for ``unet_256``, 4 for a ResNet). It is the generator in eval mode
(dropout off, BatchNorm running statistics): an ONNX runtime has no train-mode batch statistics.

Exporter: the TorchScript exporter (``dynamo=False``), which needs only ``onnx``, records the
U-Net's skip concatenations with symbolic shapes, and exports in seconds with torch 2.13. The
file is written beside the target, checked with onnxruntime on two sizes against PyTorch
(``tolerance``, default 1e-3) and only then renamed into place.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pix2pix.atomic import atomic_path
from pix2pix.errors import ConfigError, OutputExistsError, OutputOverlapError, Pix2PixError


class ExportError(Pix2PixError):
    """The export failed or onnxruntime disagrees with PyTorch; the message says by how much."""


@dataclass
class ExportResult:
    path: str
    generator: str
    multiple: int
    checks: list[tuple[tuple[int, int], float]] = field(default_factory=list)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"256x256,512x768"`` → [(256, 256), (512, 768)] (height × width)."""
    sizes = []
    for part in text.split(","):
        try:
            h, w = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--check-sizes: expected HxW[,HxW], e.g. 256x256,512x256; got {part!r}") from None
        sizes.append((h, w))
    return sizes


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ExportError(f"`{module}` is not installed; install the export extra: "
                          f"pip install 'pix2pix-pipeline[export]'") from e


def _check_target(out: Path, model_path: Path, overwrite: bool, onnx: Any) -> None:
    """Never replace the model being exported, nor a file that is not an earlier export."""
    if not out.exists() and not out.is_symlink():
        return
    if out.is_dir():
        raise OutputExistsError(f"--onnx {out}: a folder; give the path of the .onnx file to write")
    if out.exists() and out.samefile(model_path):
        raise OutputOverlapError(f"--onnx {out} is the model being exported; choose another file name")
    if not overwrite:
        raise OutputExistsError(f"--onnx {out} already exists; pass --overwrite to replace it")
    try:  # protobuf parses many byte strings: an ONNX model also has a version and a graph
        proto = onnx.load(str(out), load_external_data=False)
        is_onnx = proto.ir_version > 0 and len(proto.graph.node) > 0
    except Exception:
        is_onnx = False
    if not is_onnx:
        raise OutputExistsError(f"--onnx {out} is not an ONNX file, so --overwrite will not replace it; "
                                f"choose another file name") from None


def export_onnx(
    model_path: str | Path,
    onnx_path: str | Path,
    *,
    check_sizes: list[tuple[int, int]] | None = None,
    tolerance: float = 1e-3,
    opset: int = 17,
    netG: str | None = None,
    norm: str | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write ``onnx_path`` from any generator file and verify it with onnxruntime.

    ``check_sizes``: two (H, W) checked (default: the multiple, at least 64, then twice its
    height; batch 2 for the second). Raises ``ExportError`` (nothing left at ``onnx_path``) when the maximum absolute
    difference exceeds ``tolerance``, ``ConfigError`` for a size the generator cannot take,
    ``OutputOverlapError`` when ``onnx_path`` is the model file, ``OutputExistsError`` when it
    exists and ``overwrite`` is not given or it is not an ONNX file (only an earlier export is
    ever replaced).
    """
    import torch

    from pix2pix.models.io import load_generator_file

    onnx = _require("onnx")
    ort = _require("onnxruntime")
    loaded = load_generator_file(model_path, netG=netG, norm=norm)
    m = loaded.spec.size_multiple
    G = loaded.model.eval()
    base = m * -(-64 // m)  # a ResNet's reflect padding needs sides of at least 16 inside
    sizes = check_sizes or [(base, base), (2 * base, base)]
    for h, w in sizes:
        if h <= 0 or w <= 0 or h % m or w % m:
            raise ConfigError(f"--check-sizes: {h}x{w} is not a multiple of {m}, which "
                              f"{loaded.spec.generator} needs")
    out = Path(onnx_path)
    _check_target(out, loaded.path, overwrite, onnx)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written and checked under a temporary name: the target holds a verified export or nothing new.
    with atomic_path(out) as tmp:
        example = torch.zeros(1, loaded.spec.in_channels, base, base)
        with warnings.catch_warnings():
            # The deprecation notice of the TorchScript exporter, and the tracer's remark that the
            # forward's size check is a Python bool: both expected, neither actionable here.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                G, (example,), str(tmp), dynamo=False, opset_version=opset,
                input_names=["input"], output_names=["output"],
                dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                              "output": {0: "batch", 2: "height", 3: "width"}})
        proto = onnx.load(str(tmp))
        onnx.checker.check_model(proto)
        meta = {"pix2pix.generator": loaded.spec.generator, "pix2pix.size_multiple": str(m),
                "pix2pix.size": str(loaded.size), "pix2pix.direction": str(loaded.direction),
                "pix2pix.source_sha256": loaded.sha256, "pix2pix.value_range": "[-1, 1]",
                "pix2pix.eval_mode": "eval"}
        for k, v in meta.items():
            proto.metadata_props.add(key=k, value=v)
        onnx.save(proto, str(tmp))

        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        checks = []
        for n, (h, w) in enumerate(sizes):
            x = rng.uniform(-1, 1, (1 + n % 2, loaded.spec.in_channels, h, w)).astype(np.float32)
            with torch.inference_mode():
                want = G(torch.from_numpy(x)).numpy()
            got = session.run(["output"], {"input": x})[0]
            if got.shape != want.shape:
                raise ExportError(f"onnxruntime returned {got.shape} for {x.shape}, PyTorch {want.shape}")
            diff = float(np.abs(got - want).max())
            checks.append(((h, w), diff))
            if not diff <= tolerance:
                raise ExportError(f"onnxruntime differs from PyTorch by {diff:.2e} at {h}x{w} "
                                  f"(tolerance {tolerance:g}); {out} not written")
    return ExportResult(path=str(out), generator=loaded.spec.generator, multiple=m, checks=checks)
