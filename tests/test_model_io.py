"""pix2pix.models.io: every generator file we know loads, official ones with their architecture
read from the tensors; evaluate and `train --init-generator` take all of them.

"Official" files are written as the official code writes them: ``torch.save`` of a plain state
dict with the official key names (ours are the same by construction, tests/test_models.py checks
that against tests/reference/official_pix2pix_state_dict.json), optionally with DataParallel's
``module.`` prefix and without ``num_batches_tracked`` (files from PyTorch < 0.4.1).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from dsfactory import make_dataset
from PIL import Image

from pix2pix.errors import ConfigError
from pix2pix.evaluation.evaluate import EvalConfig, evaluate
from pix2pix.models import build_generator, init_weights
from pix2pix.models.io import (
    GeneratorSpec,
    ModelLoadError,
    infer_official_spec,
    load_generator_file,
    load_weights_into,
)
from pix2pix.models.weights import CheckpointError
from pix2pix.training import TrainConfig, train

REFERENCE = Path(__file__).parent / "reference" / "official_step_ngf8.pt"


def official_file(path: Path, spec: GeneratorSpec, *, seed: int = 0, prefix: str = "",
                  old: bool = False) -> dict[str, torch.Tensor]:
    G = init_weights(spec.build(), generator=torch.Generator().manual_seed(seed))
    for m in G.modules():  # non-trivial running statistics, so loading them is observable
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    sd = {prefix + k: v for k, v in G.state_dict().items() if not (old and k.endswith("num_batches_tracked"))}
    torch.save(sd, path)
    return G.state_dict()


@pytest.mark.parametrize("spec", [
    GeneratorSpec("unet_128", ngf=8, norm="batch"),
    GeneratorSpec("unet_256", ngf=8, norm="instance"),
    GeneratorSpec("unet_512", ngf=4, norm="batch"),
    GeneratorSpec("resnet_6blocks", ngf=8, norm="instance", dropout=False),
    GeneratorSpec("resnet_9blocks", ngf=4, norm="batch", dropout=True),
    GeneratorSpec("unet_128", ngf=8, norm="batch", in_channels=1, out_channels=3),
], ids=lambda s: f"{s.generator}-{s.norm}-ngf{s.ngf}-in{s.in_channels}")
def test_official_architecture_is_read_from_the_tensors(tmp_path, spec):
    path = tmp_path / "latest_net_G.pth"
    want = official_file(path, spec)
    lg = load_generator_file(path)
    # U-Net dropout cannot be seen in a state dict: the official default (True) is assumed.
    expect = spec if spec.generator.startswith("resnet") else GeneratorSpec(**{**spec.__dict__, "dropout": True})
    assert lg.spec == expect and lg.kind == "official" and lg.direction is None
    assert lg.eval_mode == "train"  # the official test.py without --eval
    assert lg.size == (spec.size_multiple if spec.generator.startswith("unet") else 256)
    got = lg.model.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert any("not visible" in n or "from the tensors" in n for n in lg.notes)
    assert len(lg.sha256) == 64


def test_official_prefix_and_old_files_load(tmp_path):
    spec = GeneratorSpec("unet_128", ngf=8)
    path = tmp_path / "old.pth"
    want = official_file(path, spec, prefix="module.", old=True)
    lg = load_generator_file(path)
    assert lg.spec.generator == "unet_128"
    assert torch.equal(lg.model.state_dict()["model.model.1.model.2.running_mean"],
                       want["model.model.1.model.2.running_mean"])


def test_flags_override_inference_and_are_refused_for_our_files(tmp_path):
    path = tmp_path / "g.pth"
    official_file(path, GeneratorSpec("unet_128", ngf=8))
    lg = load_generator_file(path, dropout=False)
    assert lg.spec.dropout is False and any("from flags" in n for n in lg.notes)
    with pytest.raises(ModelLoadError, match=r"(?s)g.pth does not fit unet_256.*missing"):
        load_generator_file(path, netG="unet_256")
    with pytest.raises(ConfigError, match="--netG: expected one of"):
        load_generator_file(path, netG="unet_100")


def test_non_finite_official_weights_are_refused_everywhere(tmp_path):
    path = tmp_path / "nan.pth"
    official_file(path, GeneratorSpec("unet_128", ngf=8))
    sd = torch.load(path, weights_only=True)
    sd["model.model.0.weight"][0, 0, 0, 0] = float("nan")
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"nan.pth: weights.model.model.0.weight holds NaN"):
        load_generator_file(path)
    with pytest.raises(CheckpointError, match="holds NaN"):
        load_weights_into(build_generator("unet_128", ngf=8), path)


def test_unrecognised_state_dict_names_the_file_and_the_flags(tmp_path):
    path = tmp_path / "weird.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, path)
    with pytest.raises(ModelLoadError, match=r"weird.pth: cannot infer the architecture.*--netG and --norm"):
        load_generator_file(path)
    torch.save({"a": 1}, path)
    with pytest.raises(ModelLoadError, match="neither a generator file"):
        load_generator_file(path)
    path.write_bytes(b"not a torch file")
    with pytest.raises(ModelLoadError, match="not a readable PyTorch weights file"):
        load_generator_file(path)
    with pytest.raises(ModelLoadError, match="no such generator file"):
        load_generator_file(tmp_path / "absent.pth")
    with pytest.raises(ModelLoadError, match="generator.pt"):
        load_generator_file(tmp_path)


def test_infer_depth_ignores_norm_and_bias_keys():
    for depth, name in ((7, "unet_128"), (8, "unet_256"), (9, "unet_512")):
        sd = build_generator(name, ngf=4, norm="instance").state_dict()
        spec, notes = infer_official_spec(sd)
        assert spec.generator == name and spec.norm == "instance" and spec.ngf == 4
        assert f"from {depth} down-convolutions" in notes[0]


@pytest.mark.skipif(not REFERENCE.is_file(), reason="tests/reference/official_step_ngf8.pt not present")
def test_a_real_official_state_dict_reproduces_the_official_output(tmp_path):
    ref = torch.load(REFERENCE, weights_only=True)
    path = tmp_path / "latest_net_G.pth"
    torch.save(ref["G0"], path)
    lg = load_generator_file(path)
    assert lg.spec == GeneratorSpec("unet_256", ngf=8, norm="batch", dropout=True)
    lg.set_mode("train")
    torch.manual_seed(1000)  # what the official step 0 ran under (see the reference's README)
    with torch.no_grad():
        out = lg.model(ref["A"][0])
    assert (out - ref["fake_B0"]).abs().max().item() < 1e-5


# --------------------------------------------------------------------------- our files, stages


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds"), n_train=2, n_val=1, n_test=2, size=128)


@pytest.fixture(scope="module")
def run(ds, tmp_path_factory) -> Path:
    cfg = TrainConfig.from_dict({
        "generator": "unet_128", "size": 128, "ngf": 4, "ndf": 4, "n_epochs": 1, "n_epochs_decay": 0,
        "num_workers": 0, "sample_every": 0, "log_every": 1, "seed": 1, "num_threads": 1,
        "direction": "BtoA", "eval_mode": "eval",
    })
    run = tmp_path_factory.mktemp("run")
    train(cfg, ds, run, progress=False)
    return run


def test_our_files_load_with_their_stored_settings(run):
    by_folder = load_generator_file(run)
    assert by_folder.kind == "generator" and by_folder.path == run / "generator.pt"
    assert (by_folder.size, by_folder.direction, by_folder.eval_mode) == (128, "BtoA", "eval")
    assert by_folder.spec == GeneratorSpec("unet_128", ngf=4, norm="batch", dropout=True)
    ckpt = load_generator_file(run / "checkpoints" / "latest.pt")
    assert ckpt.kind == "checkpoint" and ckpt.spec == by_folder.spec
    a, b = by_folder.model.state_dict(), ckpt.model.state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float()) for k in a)
    with pytest.raises(ConfigError, match="stores norm='batch'"):
        load_generator_file(run, norm="instance")


def test_run_folder_without_generator_pt_falls_back_to_latest_checkpoint(run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "generator.pt").unlink()
    lg = load_generator_file(copy)
    assert lg.kind == "checkpoint" and lg.path == copy / "checkpoints" / "latest.pt"


def test_init_weights_from_a_run_folder(run):
    G = build_generator("unet_128", ngf=4)
    load_weights_into(G, run)
    want = load_generator_file(run).model.state_dict()
    assert all(torch.equal(G.state_dict()[k], want[k]) for k in want)


def test_evaluate_takes_an_official_state_dict(ds, tmp_path):
    path = tmp_path / "latest_net_G.pth"
    official_file(path, GeneratorSpec("unet_128", ngf=8))
    out = tmp_path / "eval"
    result = evaluate(path, ds, out, EvalConfig(num_threads=1, eval_mode="eval", direction="BtoA"))
    m = json.loads((out / "metrics.json").read_text())
    assert result.count == 2 and m["generator_kind"] == "official"
    assert (m["size"], m["direction"], m["eval_mode"]) == (128, "BtoA", "eval")
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(f"{i}.png" for i in _test_ids(ds))
    # default direction of an official file (which does not store one): AtoB
    evaluate(path, ds, tmp_path / "eval2", EvalConfig(num_threads=1))
    assert json.loads((tmp_path / "eval2" / "metrics.json").read_text())["direction"] == "AtoB"


def _test_ids(ds: Path) -> list[str]:
    return [json.loads(line)["id"] for line in (ds / "manifest.jsonl").read_text().splitlines()
            if json.loads(line)["split"] == "test"]


def test_a_file_that_is_not_weights_gets_one_line_and_never_the_unsafe_advice(tmp_path, capsys) -> None:
    """torch's message told users to reload with weights_only=False (arbitrary code execution)."""
    from pix2pix.cli import main as cli_main

    cases = {"empty.pt": b"", "notes.pt": b"just some text\n",
             "model.onnx.pt": b"\x08\x07\x12\x07pytorch\x1a\x052.13.0" + bytes(40),
             "photo.pt": b"\xff\xd8\xff\xe0" + bytes(60), "junk.pt": bytes(range(256)) * 4}
    want = {"empty.pt": "an empty file", "notes.pt": "a text file", "model.onnx.pt": "an ONNX model",
            "photo.pt": "an image", "junk.pt": "not PyTorch weights"}
    img = tmp_path / "in.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(img)
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert cli_main(["translate", str(tmp_path / name), str(img), "--out", str(tmp_path / f"o-{name}")]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and want[name] in err, err
        assert "weights_only" not in err and "arbitrary code" not in err
