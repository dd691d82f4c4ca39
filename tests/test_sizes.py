"""Sizes agree across stages: train and evaluate take the image size from the dataset (issue 10)."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import pytest
import torch
from dsfactory import make_dataset

from pix2pix.errors import ConfigError
from pix2pix.evaluation.evaluate import EvalConfig, evaluate
from pix2pix.training import TrainConfig
from pix2pix.training.checkpoint import compare_for_resume

FLAGS = ["--ngf", "4", "--ndf", "4", "--epochs", "1", "--epochs-decay", "0", "--workers", "0",
         "--threads", "1", "--no-progress", "--sample-every", "0", "--log-every", "1", "--no-dvclive"]


def cli(argv: list[str]) -> int:
    from pix2pix.cli.train import add_train_parser, run_train

    parser = argparse.ArgumentParser(prog="pix2pix")
    add_train_parser(parser.add_subparsers(dest="command"))
    return run_train(parser.parse_args(["train", *argv]))


def trained_at_dataset_size(tmp_path: Path, size: int) -> tuple[dict, dict]:
    ds = make_dataset(tmp_path / "ds", n_train=1, n_val=0, n_test=1, size=size)
    run = tmp_path / "run"
    assert cli([str(ds), str(run), *FLAGS]) == 0
    payload = torch.load(run / "generator.pt", map_location="cpu", weights_only=True)
    out = tmp_path / "eval"
    evaluate(run, ds, out, EvalConfig(num_threads=1))
    return payload, json.loads((out / "metrics.json").read_text())


def test_a_128_dataset_trains_unet_128_with_the_jitter_scaled(tmp_path: Path) -> None:
    payload, metrics = trained_at_dataset_size(tmp_path, 128)
    assert payload["size"] == 128 and payload["model"]["generator"] == "unet_128"
    assert (payload["config"]["crop_size"], payload["config"]["load_size"]) == (128, 143)
    assert (metrics["size"], metrics["model_size"]) == (128, 128)
    assert "128×128" in (tmp_path / "eval" / "report.html").read_text()


@pytest.mark.slow
def test_a_512_dataset_trains_unet_512_at_512(tmp_path: Path) -> None:
    payload, metrics = trained_at_dataset_size(tmp_path, 512)
    assert payload["size"] == 512 and payload["model"]["generator"] == "unet_512"
    assert (payload["config"]["crop_size"], payload["config"]["load_size"]) == (512, 572)
    assert (metrics["size"], metrics["model_size"]) == (512, 512)


def test_a_crop_size_that_would_resize_is_refused_naming_the_flag(tmp_path: Path, capsys) -> None:
    ds = make_dataset(tmp_path / "ds", n_train=1, n_val=0, size=128)
    for flag in ("--crop-size", "--size"):  # --size: the old spelling, same meaning
        assert cli([str(ds), str(tmp_path / "run"), *FLAGS, flag, "256", "--generator", "unet_256"]) == 2
        err = capsys.readouterr().err
        assert "128x128 images but crop_size is 256" in err and "upscaled" in err
        assert "--allow-resize" in err and "Drop --crop-size" in err
    assert not (tmp_path / "run" / "generator.pt").exists()
    # The library refuses it too (a TrainConfig made without the dataset's size).
    from pix2pix.training import train

    with pytest.raises(ConfigError, match="crop_size: .* would be upscaled.*--allow-resize"):
        train(TrainConfig.from_dict({"crop_size": 256, "ngf": 4, "ndf": 4}), ds, tmp_path / "lib",
              progress=False)


def test_allow_resize_trains_at_the_given_crop_size(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds", n_train=1, n_val=0, size=256)
    run = tmp_path / "run"
    assert cli([str(ds), str(run), *FLAGS, "--crop-size", "128", "--allow-resize"]) == 0
    payload = torch.load(run / "generator.pt", map_location="cpu", weights_only=True)
    # generator follows the crop size given, not the dataset's (unet_256 at 128 cannot run)
    assert payload["size"] == 128 and payload["model"]["generator"] == "unet_128"


def test_old_size_key_maps_to_crop_size_with_a_warning() -> None:
    with pytest.warns(FutureWarning, match="'size' is now 'crop_size'"):
        cfg = TrainConfig.from_dict({"size": 128, "generator": "unet_128"})
    assert (cfg.crop_size, cfg.load_size, cfg.size) == (128, 143, 128)
    with pytest.raises(ConfigError, match="size: renamed to crop_size"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        TrainConfig.from_dict({"size": 128, "crop_size": 256})
    # defaults from a dataset's size; explicit values are kept
    assert TrainConfig.from_dict({}, dataset_size=512).generator == "unet_512"
    assert TrainConfig.from_dict({}, dataset_size=512).load_size == 572
    assert TrainConfig.from_dict({"generator": "resnet_9blocks"}, dataset_size=64).crop_size == 64
    # a checkpoint written before the rename still resumes
    new = TrainConfig.from_dict({"crop_size": 128, "generator": "unet_128"})
    old_key = {("size" if k == "crop_size" else k): v for k, v in new.resume_key().items()}
    assert compare_for_resume({"resume_key": old_key, "dataset_fingerprint": "x"}, new.resume_key(), "x") == {}
