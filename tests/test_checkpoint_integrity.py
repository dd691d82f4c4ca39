"""Verified checkpoints (issue 8): flipped bits, a missing latest.pt, non-finite weights.

A tiny real run (unet_128, ngf = ndf = 4, 3 pairs, one checkpoint per epoch) is trained once;
each test copies its run folder and damages the copy the way a disk or a copy tool would.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from dsfactory import make_dataset

from pix2pix.cli import main as cli_main
from pix2pix.errors import EXIT_FAILED
from pix2pix.models.weights import CheckpointError, load_generator
from pix2pix.training import TrainConfig, train
from pix2pix.training.checkpoint import atomic_save, list_checkpoints, load_checkpoint

TINY = {"generator": "unet_128", "size": 128, "ngf": 4, "ndf": 4, "n_epochs": 3, "n_epochs_decay": 0,
        "num_workers": 0, "sample_every": 0, "log_every": 1, "seed": 0, "num_threads": 1, "keep_last": 3,
        "val_every": 0}


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds"), n_train=3, n_val=1, n_test=2, size=128)


@pytest.fixture(scope="module")
def run(ds, tmp_path_factory) -> Path:
    """A finished 3-epoch run: ckpt-3, ckpt-6, ckpt-9 and latest.pt (= ckpt-9)."""
    run = tmp_path_factory.mktemp("run") / "run"
    train(TrainConfig.from_dict(TINY), ds, run, progress=False)
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [3, 6, 9]
    return run


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)  # copies hard links as separate files
    return dest


def flip_middle(path: Path, n: int = 64) -> None:
    """XOR n bytes in the middle of the file: inside tensor data of a torch zip."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    for i in range(mid, mid + n):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_every_checkpoint_and_generator_carries_a_verified_checksum(run: Path) -> None:
    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert len(state["checksum"]) == 64
    payload = torch.load(run / "generator.pt", weights_only=True)
    assert len(payload["checksum"]) == 64


def test_flipped_bits_are_detected_on_load(run: Path, tmp_path: Path) -> None:
    r = copy_run(run, tmp_path / "r")
    flip_middle(r / "checkpoints" / "ckpt-9.pt")
    with pytest.raises(CheckpointError, match=r"ckpt-9.pt: (checksum mismatch|not a readable)"):
        load_checkpoint(r / "checkpoints" / "ckpt-9.pt")
    flip_middle(r / "generator.pt")
    with pytest.raises(CheckpointError, match=r"generator.pt: (checksum mismatch|not a readable)"):
        load_generator(r / "generator.pt")


def test_resume_falls_back_to_the_newest_good_checkpoint(run: Path, ds: Path, tmp_path: Path, capsys) -> None:
    r = copy_run(run, tmp_path / "r")
    flip_middle(r / "checkpoints" / "latest.pt")
    flip_middle(r / "checkpoints" / "ckpt-9.pt")
    result = train(TrainConfig.from_dict({**TINY, "n_epochs": 4}), ds, r, resume=True, progress=False)
    out = capsys.readouterr().out
    assert "latest.pt" in out and "ckpt-9.pt" in out and "trying an older checkpoint" in out
    assert result.resumed_from == r / "checkpoints" / "ckpt-6.pt"
    assert result.step == 12
    # The damaged ckpt-9 was replaced by a good one; nothing good was pruned.
    assert [s for s, _ in list_checkpoints(r / "checkpoints")] == [6, 9, 12]
    assert load_checkpoint(r / "checkpoints" / "ckpt-9.pt")["step"] == 9


def test_missing_latest_resumes_from_the_newest_checkpoint(run: Path, ds: Path, tmp_path: Path) -> None:
    r = copy_run(run, tmp_path / "r")
    (r / "checkpoints" / "latest.pt").unlink()
    result = train(TrainConfig.from_dict({**TINY, "n_epochs": 4}), ds, r, resume=True, progress=False)
    assert result.resumed_from == r / "checkpoints" / "ckpt-9.pt"
    assert result.step == 12
    assert [s for s, _ in list_checkpoints(r / "checkpoints")] == [6, 9, 12]


def test_all_checkpoints_damaged_stops_and_lists_them(run: Path, ds: Path, tmp_path: Path) -> None:
    r = copy_run(run, tmp_path / "r")
    names = ["latest.pt", "ckpt-3.pt", "ckpt-6.pt", "ckpt-9.pt"]
    for name in names:
        flip_middle(r / "checkpoints" / name)
    with pytest.raises(CheckpointError, match="no usable checkpoint") as e:
        train(TrainConfig.from_dict({**TINY, "n_epochs": 4}), ds, r, resume=True, progress=False)
    assert all(n in str(e.value) for n in names)
    assert sorted(p.name for p in (r / "checkpoints").iterdir()) == sorted(names)  # nothing pruned


def test_evaluate_refuses_a_damaged_or_non_finite_generator(run: Path, ds: Path, tmp_path: Path, capsys) -> None:
    r = copy_run(run, tmp_path / "r")
    flip_middle(r / "generator.pt")
    args = [str(ds), str(tmp_path / "out"), "--threads", "1", "--device", "cpu"]
    assert cli_main(["evaluate", str(r), *args]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "generator.pt" in err and len(err.splitlines()) == 1
    # A file with a valid checksum but weights of inf (e.g. saved from a diverged model).
    payload = torch.load(run / "generator.pt", weights_only=True)
    name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
    payload["state_dict"][name][0] = float("inf")
    del payload["checksum"]
    atomic_save(payload, r / "generator.pt")
    assert cli_main(["evaluate", str(r), *args]) == EXIT_FAILED
    assert "NaN or Inf" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
