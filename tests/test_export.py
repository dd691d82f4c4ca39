"""`pix2pix export`: ONNX files checked against PyTorch by the command itself, then again here
with onnxruntime on a size the export did not check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pix2pix.cli import main as cli_main
from pix2pix.errors import ConfigError
from pix2pix.inference.export import ExportError, export_onnx
from pix2pix.models import init_weights
from pix2pix.models.io import GeneratorSpec, load_generator_file

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def official(path, spec: GeneratorSpec) -> None:
    G = init_weights(spec.build(), generator=torch.Generator().manual_seed(0))
    torch.save(G.state_dict(), path)


@pytest.mark.parametrize("spec", [GeneratorSpec("unet_128", ngf=8), GeneratorSpec("resnet_6blocks", ngf=4)],
                         ids=lambda s: s.generator)
def test_export_runs_at_sizes_it_was_not_checked_at(tmp_path, spec, capsys):
    src, dst = tmp_path / "g.pth", tmp_path / "out" / "g.onnx"
    official(src, spec)
    assert cli_main(["export", str(src), "--onnx", str(dst)]) == 0
    text = capsys.readouterr().out
    assert text.count("max |difference|") == 2 and "verified" in text
    m = spec.size_multiple
    session = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).uniform(-1, 1, (3, 3, 3 * m, 2 * m)).astype(np.float32)
    G = load_generator_file(src).model.eval()
    with torch.no_grad():
        want = G(torch.from_numpy(x)).numpy()
    got = session.run(None, {"input": x})[0]
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-4
    meta = {p.key: p.value for p in onnx.load(str(dst)).metadata_props}
    assert meta["pix2pix.generator"] == spec.generator and meta["pix2pix.size_multiple"] == str(m)
    assert not list(dst.parent.glob(".*tmp*"))


def test_export_refuses_bad_sizes_and_a_failed_check_leaves_nothing(tmp_path, capsys):
    src, dst = tmp_path / "g.pth", tmp_path / "g.onnx"
    official(src, GeneratorSpec("unet_128", ngf=8))
    with pytest.raises(ConfigError, match="300x128 is not a multiple of 128"):
        export_onnx(src, dst, check_sizes=[(300, 128), (128, 128)])
    with pytest.raises(ExportError, match=r"differs from PyTorch by .* \(tolerance 0\)"):
        export_onnx(src, dst, tolerance=0.0)
    assert list(tmp_path.iterdir()) == [src]
    assert cli_main(["export", str(src), "--onnx", str(dst), "--check-sizes", "12x"]) == 2
    assert "--check-sizes: expected HxW" in capsys.readouterr().err


def test_export_never_replaces_the_model_or_a_file_that_is_not_an_earlier_export(tmp_path, capsys):
    """`export MODEL --onnx MODEL` once turned the only trained generator into an ONNX file."""
    from pix2pix.errors import OutputExistsError, OutputOverlapError

    src = tmp_path / "g.pth"
    official(src, GeneratorSpec("unet_128", ngf=8))
    before = src.read_bytes()
    with pytest.raises(OutputOverlapError, match="is the model being exported"):
        export_onnx(src, src, overwrite=True)
    assert src.read_bytes() == before
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 a photo of the user's")
    assert cli_main(["export", str(src), "--onnx", str(photo)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    with pytest.raises(OutputExistsError, match="is not an ONNX file"):
        export_onnx(src, photo, overwrite=True)
    assert photo.read_bytes() == b"\xff\xd8\xff\xe0 a photo of the user's"
    dst = tmp_path / "g.onnx"
    export_onnx(src, dst)
    assert cli_main(["export", str(src), "--onnx", str(dst), "--overwrite"]) == 0  # an earlier export
    assert onnx.load(str(dst)).graph.node
