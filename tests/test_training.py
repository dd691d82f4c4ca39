"""Training: losses, data, schedule, config, the loop, checkpoints and exact resume.

Runs use unet_128 at 128×128 with ngf = ndf = 4 and a handful of images so the whole file
stays well under two minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from dsfactory import make_dataset

from pix2pix.errors import ConfigError
from pix2pix.training import (
    CheckpointError,
    PairDataset,
    ResumeMismatchError,
    TrainConfig,
    TrainingDivergedError,
    dataset_fingerprint,
    from_model_range,
    load_checkpoint,
    load_generator,
    lr_factor,
    to_model_range,
    train,
)
from pix2pix.training import losses as losses_mod
from pix2pix.training.callbacks import Callback
from pix2pix.training.data import EpochSampler, Jitter, apply_jitter, jitter_params, split_pair

TINY = {
    "generator": "unet_128",
    "size": 128,
    "ngf": 4,
    "ndf": 4,
    "n_epochs": 2,
    "n_epochs_decay": 2,
    "num_workers": 0,
    "sample_every": 0,
    "log_every": 1,
    "seed": 1,
    # One thread: tiny convolutions are dominated by OpenMP synchronisation, which collapses
    # when the 2 cores are shared with other processes (30 s vs 0.4 s for the same run).
    "num_threads": 1,
}


def tiny(**kw) -> TrainConfig:
    return TrainConfig.from_dict({**TINY, **kw})


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds"), n_train=3, n_val=1, size=128)


def state_equal(a: dict, b: dict) -> list[str]:
    """Names of tensors that differ between two state dicts (empty list = identical)."""
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


def weights(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / "checkpoints" / "latest.pt")


# --------------------------------------------------------------------------- losses


def test_vanilla_gan_loss_of_zero_logits_is_log2():
    z = torch.zeros(1, 1, 30, 30)
    assert losses_mod.gan_loss(z, True, "vanilla").item() == pytest.approx(math.log(2))
    assert losses_mod.gan_loss(z, False, "vanilla").item() == pytest.approx(math.log(2))
    loss, m = losses_mod.discriminator_loss(z, z, "vanilla")
    # D's objective is halved: ½(log 2 + log 2) = log 2, while each part is reported unhalved.
    assert loss.item() == pytest.approx(math.log(2))
    assert m == pytest.approx({"D_real": math.log(2), "D_fake": math.log(2)})


def test_vanilla_gan_loss_values():
    logits = torch.tensor([2.0, -1.0])
    expected_real = np.mean([math.log1p(math.exp(-2.0)), math.log1p(math.exp(1.0))])
    assert losses_mod.gan_loss(logits, True, "vanilla").item() == pytest.approx(expected_real)


def test_lsgan_loss_values():
    real = torch.full((1, 1, 4, 4), 0.5)
    fake = torch.full((1, 1, 4, 4), 2.0)
    loss, m = losses_mod.discriminator_loss(real, fake, "lsgan")
    assert m["D_real"] == pytest.approx(0.25)  # (0.5 − 1)²
    assert m["D_fake"] == pytest.approx(4.0)  # (2 − 0)²
    assert loss.item() == pytest.approx(0.5 * (0.25 + 4.0))


def test_generator_loss_is_gan_plus_100_l1():
    fake_logits = torch.zeros(1, 1, 2, 2)
    fake = torch.zeros(1, 3, 8, 8)
    target = torch.full((1, 3, 8, 8), 0.5)
    loss, m = losses_mod.generator_loss(fake_logits, fake, target, "vanilla", 100.0)
    assert m["G_L1"] == pytest.approx(50.0)  # 100 × mean |0.5 − 0|
    assert m["G_GAN"] == pytest.approx(math.log(2))
    assert loss.item() == pytest.approx(50.0 + math.log(2))
    _, m = losses_mod.generator_loss(torch.ones(1, 1, 2, 2), fake, target, "lsgan", 100.0)
    assert m["G_GAN"] == pytest.approx(0.0)


def test_unknown_gan_mode_raises():
    with pytest.raises(ValueError, match="gan_mode"):
        losses_mod.gan_loss(torch.zeros(1), True, "wgan")


# --------------------------------------------------------------------------- value range, jitter


def test_model_range_exact_mapping():
    u = torch.arange(256, dtype=torch.uint8)
    f = to_model_range(u)
    assert f.dtype == torch.float32
    assert f[0].item() == -1.0 and f[255].item() == 1.0
    assert f.min() >= -1 and f.max() <= 1
    assert torch.equal(from_model_range(f), u)
    assert torch.equal(from_model_range(torch.tensor([-3.0, 3.0])), torch.tensor([0, 255]).byte())


def coords_image(size: int) -> np.ndarray:
    """Each pixel encodes its own (x, y) so any crop/flip is recognisable."""
    y, x = np.mgrid[0:size, 0:size]
    return np.stack([x % 256, y % 256, (x * 7 + y * 13) % 256], -1).astype(np.uint8)


def test_jitter_is_the_same_for_input_and_target(tmp_path):
    a = coords_image(128)
    root = make_dataset(tmp_path, n_train=2, n_val=0, size=128, ext="png", pairs=[(a, a), (a, a)])
    ds = PairDataset(root, "train", load_size=143, crop_size=128, flip=True, seed=3)
    flips = set()
    for epoch in range(8):
        x, y = ds[(epoch, 0)]
        assert x.shape == (3, 128, 128) and x.dtype == torch.uint8
        assert torch.equal(x, y)  # one crop/flip sample shared by A and B
        j = jitter_params(np.random.default_rng((3, epoch, 0)), 143, 128, True)
        expected = apply_jitter(a, 143, 128, j)
        assert np.array_equal(x.permute(1, 2, 0).numpy(), expected)
        flips.add(j.flip)
    assert flips == {True, False}


def test_apply_jitter_crops_and_mirrors():
    a = coords_image(64)
    out = apply_jitter(a, 64, 32, Jitter(x=5, y=7, flip=False))
    assert out[0, 0, 0] == 5 and out[0, 0, 1] == 7
    out = apply_jitter(a, 64, 32, Jitter(x=5, y=7, flip=True))
    assert out[0, 0, 0] == 5 + 31 and out[0, -1, 0] == 5


def test_validation_items_have_no_jitter(tmp_path):
    a = coords_image(128)
    root = make_dataset(tmp_path, n_train=0, n_val=1, size=128, ext="png", pairs=[(a, a)])
    ds = PairDataset(root, "val", load_size=128, crop_size=128, train=False)
    x, _ = ds[(5, 0)]
    assert np.array_equal(x.permute(1, 2, 0).numpy(), a)


def test_dataset_reads_manifest_split_and_direction(tmp_path):
    root = make_dataset(tmp_path, n_train=3, n_val=2, size=64, ext="png")
    (root / "train" / "stray.png").write_bytes((root / "train" / "train000.png").read_bytes())
    val = PairDataset(root, "val", load_size=64, crop_size=64, train=False)
    assert val.ids() == ["val000", "val001"]
    assert len(PairDataset(root, "train", load_size=64, crop_size=64)) == 3  # stray not listed
    ab = PairDataset(root, "val", direction="AtoB", load_size=64, crop_size=64, train=False)
    ba = PairDataset(root, "val", direction="BtoA", load_size=64, crop_size=64, train=False)
    xa, ya = ab[0]
    xb, yb = ba[0]
    assert torch.equal(xa, yb) and torch.equal(ya, xb)
    assert torch.equal(ya, 255 - xa)  # dsfactory: B = 255 − A, A on the left
    img = np.zeros((4, 8, 3), np.uint8)
    img[:, 4:] = 9
    assert split_pair(img, "AtoB")[1].max() == 9


def test_in_memory_and_from_disk_give_the_same_items(tmp_path):
    root = make_dataset(tmp_path, n_train=2, n_val=0, size=64)
    mem = PairDataset(root, "train", load_size=72, crop_size=64, in_memory_mb=10)
    disk = PairDataset(root, "train", load_size=72, crop_size=64, in_memory_mb=0)
    assert mem.in_memory and not disk.in_memory
    for key in [(0, 0), (1, 1)]:
        assert all(torch.equal(p, q) for p, q in zip(mem[key], disk[key], strict=True))
    # the cache holds the resized halves: every epoch's crop and mirror, both directions, and the
    # jitter-free (validation) view equal reading from disk
    flips = set()
    for direction in ("AtoB", "BtoA"):
        for jitter in (True, False):
            kw = {"load_size": 72, "crop_size": 64, "direction": direction, "train": jitter, "seed": 3}
            mem = PairDataset(root, "train", in_memory_mb=10, **kw)
            disk = PairDataset(root, "train", in_memory_mb=0, **kw)
            for epoch in range(6):
                for i in range(2):
                    a, b = mem[(epoch, i)], disk[(epoch, i)]
                    assert a[0].shape == (3, 64, 64)
                    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True)), (direction, jitter, epoch, i)
                    if jitter:
                        flips.add(jitter_params(np.random.default_rng((3, epoch, i)), 72, 64, True).flip)
    assert flips == {True, False}
    # the budget counts the resized halves (2 × 72² × 3 B per pair at load_size 72), not the file
    per_pair = 2 * 72 * 72 * 3
    assert not PairDataset(root, "train", load_size=72, crop_size=64, in_memory_mb=(2 * per_pair - 1) / 2**20).in_memory
    assert PairDataset(root, "train", load_size=72, crop_size=64, in_memory_mb=2 * per_pair / 2**20).in_memory


def test_sampler_shards_and_resumes():
    s = EpochSampler(5, seed=0, rank=0, world_size=2)
    t = EpochSampler(5, seed=0, rank=1, world_size=2)
    a, b = s.order(3), t.order(3)
    assert len(a) == len(b) == 3 and set(a) | set(b) == set(range(5))
    s.set_epoch(3, start=1)
    assert [i for _, i in s] == a[1:] and len(s) == 2
    assert s.order(3) != s.order(4) or s.order(3) != s.order(5)


def test_missing_manifest_is_a_clear_error(tmp_path):
    from pix2pix.training import DatasetError

    with pytest.raises(DatasetError, match="manifest"):
        PairDataset(tmp_path, "train")


# --------------------------------------------------------------------------- schedule, config


def test_lr_schedule_values():
    assert [lr_factor(e, 100, 100) for e in (0, 50, 99)] == [1.0, 1.0, 1.0]
    assert lr_factor(100, 100, 100) == pytest.approx(1 - 1 / 101)
    assert lr_factor(149, 100, 100) == pytest.approx(1 - 50 / 101)
    assert lr_factor(199, 100, 100) == pytest.approx(1 / 101)
    assert lr_factor(200, 100, 100) == pytest.approx(0.0)


def test_config_defaults_are_the_papers():
    c = TrainConfig()
    assert (c.generator, c.ngf, c.ndf, c.d_receptive_field) == ("unet_256", 64, 64, 70)
    assert (c.lr, c.beta1, c.beta2, c.lambda_l1) == (2e-4, 0.5, 0.999, 100.0)
    assert (c.n_epochs, c.n_epochs_decay, c.batch_size) == (100, 100, 1)
    assert (c.size, c.load_size, c.eval_mode, c.gan_mode) == (256, 286, "train", "vanilla")
    assert TrainConfig.from_dict({"size": 128, "generator": "unet_128"}).load_size == 143
    assert TrainConfig.from_dict(preset="small").ngf < 64


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"learning_rate": 1e-3}, "learning_rate"),
        ({"size": 200}, "size"),
        ({"size": 256, "load_size": 200}, "load_size"),
        ({"lr": "fast"}, "lr"),
        ({"gan_mode": "wgan"}, "gan_mode"),
        ({"direction": "AB"}, "direction"),
        ({"eval_mode": "test"}, "eval_mode"),
        ({"batch_size": 0}, "batch_size"),
        ({"dropout": "yes"}, "dropout"),
        ({"d_receptive_field": 34}, "d_receptive_field"),
    ],
)
def test_bad_config_names_the_key(values, key):
    with pytest.raises(ConfigError, match=f"^{key}:"):
        TrainConfig.from_dict(values)


def test_config_from_params_yaml(tmp_path):
    from pix2pix.training import load_train_config

    p = tmp_path / "params.yaml"
    p.write_text("build: {size: 128}\ntrain:\n  lr: 0.0001\n  n_epochs: 3\n")
    c = load_train_config(p, section="train")
    assert c.lr == 1e-4 and c.n_epochs == 3
    p.write_text("train:\n  nepochs: 3\n")
    with pytest.raises(ConfigError, match="nepochs"):
        load_train_config(p)


# --------------------------------------------------------------------------- the loop


class Crash(Exception):
    pass


class CrashAfterCheckpoints(Callback):
    def __init__(self, n: int):
        self.n, self.seen = n, 0

    def on_checkpoint(self, path):
        self.seen += 1
        if self.seen == self.n:
            raise Crash(str(path))


class Recorder(Callback):
    def __init__(self):
        self.steps, self.epochs, self.images, self.ckpts, self.ended = [], [], [], [], False

    def on_step(self, metrics, step):
        self.steps.append((step, metrics))

    def on_epoch(self, metrics, epoch):
        self.epochs.append((epoch, metrics))

    def on_images(self, name, image, step):
        self.images.append((name, image.shape, image.dtype, step))

    def on_checkpoint(self, path):
        self.ckpts.append(path)

    def on_end(self):
        self.ended = True


def test_train_writes_the_run_folder(ds, tmp_path):
    rec = Recorder()
    run = tmp_path / "run"
    cfg = tiny(sample_every=4, keep_last=2, n_epochs=1, n_epochs_decay=1)
    result = train(cfg, ds, run, callbacks=[rec], progress=False)
    assert result.step == 6 and result.epoch == 2
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["ckpt-3.pt", "ckpt-6.pt", "latest.pt"]
    assert json.loads((run / "config.json").read_text()) == cfg.to_dict()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == 6 and "val_L1" in metrics and "G_L1" in metrics
    # metrics.json: numbers to compare experiments by (`dvc metrics show`); the rest elsewhere.
    assert set(metrics) == {"step", "epoch", "G_GAN", "G_L1", "D_real", "D_fake", "val_L1",
                            "best_val_L1", "best_val_epoch"}
    assert all(isinstance(v, (int, float)) for v in metrics.values())
    info = json.loads((run / "run_info.json").read_text())
    assert info["device"] == "cpu" and info["dataset_fingerprint"] == dataset_fingerprint(ds)
    assert info["lr_last"] == pytest.approx(2e-4 * 0.5) and info["resumed_from"] is None
    assert result.metrics == metrics and result.info == info
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-0000004.png",
                                                                  "step-0000006.png"]
    # callbacks: every step (log_every 1), both epochs, images as (H, W, 3) uint8
    assert [s for s, _ in rec.steps] == [1, 2, 3, 4, 5, 6]
    assert {"G_GAN", "G_L1", "D_real", "D_fake", "lr"} <= set(rec.steps[0][1])
    assert rec.steps[-1][1]["lr"] == pytest.approx(2e-4 * 0.5)
    assert [e for e, _ in rec.epochs] == [1, 2] and "val_L1" in rec.epochs[0][1]
    assert rec.images[0] == ("samples", (128, 3 * 128, 3), np.uint8, 4)  # 1 val row
    assert len(rec.ckpts) == 2 and rec.ended
    assert len((run / "history.jsonl").read_text().splitlines()) == 2


def test_generator_file_rebuilds_the_model(ds, tmp_path):
    run = tmp_path / "run"
    train(tiny(n_epochs=1, n_epochs_decay=0), ds, run, progress=False)
    raw = torch.load(run / "generator.pt", weights_only=True)
    assert raw["model"]["generator"] == "unet_128" and raw["eval_mode"] == "train"
    assert all(v.dtype != torch.float16 for v in raw["state_dict"].values())
    full = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert full["config"]["ngf"] == 4 and isinstance(full["rng_per_rank"][0]["torch"],
                                                      torch.Tensor)
    G, info = load_generator(run / "generator.pt")
    assert info["size"] == 128 and info["direction"] == "AtoB"
    assert state_equal(G.state_dict(), full["G"]) == []
    G2, _ = load_generator(run / "checkpoints" / "latest.pt")
    assert state_equal(G2.state_dict(), full["G"]) == []
    G.eval()
    with torch.no_grad():
        out = G(torch.zeros(1, 3, 128, 128))
    assert out.shape == (1, 3, 128, 128)


def test_seeded_runs_are_identical_and_workers_do_not_matter(ds, tmp_path):
    cfg = tiny(n_epochs=1, n_epochs_decay=1)
    train(cfg, ds, tmp_path / "a", progress=False)
    disk = {"num_workers": 2, "in_memory_mb": 0}  # 2 worker processes reading from disk
    train(TrainConfig.from_dict({**cfg.to_dict(), **disk}), ds, tmp_path / "b",
          progress=False)
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert state_equal(a["G"], b["G"]) == [] and state_equal(a["D"], b["D"]) == []
    train(tiny(n_epochs=1, n_epochs_decay=1, seed=2), ds, tmp_path / "c", progress=False)
    assert state_equal(a["G"], weights(tmp_path / "c")["G"]) != []


def test_resume_is_exact(ds, tmp_path):
    # 4 epochs (2 constant + 2 decaying) straight ...
    train(tiny(), ds, tmp_path / "straight", progress=False)
    # ... equals 2 epochs, then a resumed run extended to the same 4 epochs ...
    train(tiny(n_epochs=2, n_epochs_decay=0), ds, tmp_path / "resumed", progress=False)
    r = train(tiny(), ds, tmp_path / "resumed", resume=True, progress=False)
    assert r.resumed_from is not None and r.step == 12
    # ... and equals a run that crashed mid-epoch after a step checkpoint (step 5 of 3/epoch).
    with pytest.raises(Crash):
        train(tiny(checkpoint_every=5), ds, tmp_path / "crashed",
              callbacks=[CrashAfterCheckpoints(2)], progress=False)
    assert load_checkpoint(tmp_path / "crashed/checkpoints/latest.pt")["batch"] == 2
    train(tiny(checkpoint_every=5), ds, tmp_path / "crashed", resume=True, progress=False)
    s = weights(tmp_path / "straight")
    for other in ("resumed", "crashed"):
        o = weights(tmp_path / other)
        assert o["step"] == s["step"] == 12
        for part in ("G", "D"):
            assert state_equal(s[part], o[part]) == [], (other, part)
        for part in ("opt_G", "opt_D"):
            for k, st in s[part]["state"].items():
                for name, t in st.items():
                    assert torch.equal(t, o[part]["state"][k][name]), (other, part, name)
    hist = [json.loads(x)["epoch"] for x in (tmp_path / "crashed/history.jsonl").open()]
    assert hist == [1, 2, 3, 4]


def test_resume_refuses_a_changed_config_or_dataset(ds, tmp_path):
    run = tmp_path / "run"
    train(tiny(n_epochs=1, n_epochs_decay=0), ds, run, progress=False)
    with pytest.raises(ResumeMismatchError, match="lr: checkpoint 0.0002, now 0.001") as e:
        train(tiny(lr=1e-3), ds, run, resume=True, progress=False)
    assert set(e.value.differences) == {"lr"}
    other = make_dataset(tmp_path / "ds2", n_train=3, n_val=1, size=128, seed=5)
    with pytest.raises(ResumeMismatchError, match="dataset_fingerprint"):
        train(tiny(), other, run, resume=True, progress=False)
    # A run folder with checkpoints is not overwritten without --resume.
    with pytest.raises(CheckpointError, match="--resume"):
        train(tiny(), ds, run, progress=False)
    # on_mismatch="fresh": says why, starts over.
    r = train(tiny(lr=1e-3, n_epochs=1, n_epochs_decay=0), ds, run, resume=True,
              on_mismatch="fresh", progress=False)
    assert r.resumed_from is None and r.step == 3
    assert weights(run)["config"]["lr"] == 1e-3


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(ds, tmp_path, monkeypatch):
    real = losses_mod.generator_loss
    calls = {"n": 0}

    def poisoned(*args, **kw):
        calls["n"] += 1
        loss, m = real(*args, **kw)
        if calls["n"] == 5:  # step 5 = second step of epoch 2
            return loss * float("nan"), {**m, "G_L1": float("nan")}
        return loss, m

    monkeypatch.setattr(losses_mod, "generator_loss", poisoned)
    rec = Recorder()
    run = tmp_path / "run"
    with pytest.raises(TrainingDivergedError, match="G_L1") as e:
        train(tiny(), ds, run, callbacks=[rec], progress=False)
    assert e.value.checkpoint is not None and e.value.checkpoint.name == "ckpt-3.pt"
    assert "ckpt-3.pt" in str(e.value)
    good = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert good["step"] == 3
    assert all(torch.isfinite(v).all() for v in good["G"].values() if v.is_floating_point())
    assert rec.ended


def test_absurd_lr_is_caught(ds, tmp_path):
    with pytest.raises(TrainingDivergedError, match="non-finite"):
        train(tiny(lr=1e30, gan_mode="lsgan", beta1=0.0), ds, tmp_path / "run", progress=False)


# --------------------------------------------------------------------------- CLI and flow


def cli(argv: list[str]) -> int:
    import argparse

    from pix2pix.cli.train import add_train_parser, run_train

    parser = argparse.ArgumentParser(prog="pix2pix")
    add_train_parser(parser.add_subparsers(dest="command"))
    return run_train(parser.parse_args(["train", *argv]))


TINY_FLAGS = ["--generator", "unet_128", "--size", "128", "--ngf", "4", "--ndf", "4",
              "--epochs", "1", "--epochs-decay", "0", "--workers", "0", "--threads", "1",
              "--no-progress", "--sample-every", "2", "--log-every", "1"]


def test_cli_trains_with_dvclive_and_maps_errors(ds, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli([str(ds), str(run), *TINY_FLAGS, "--set", "seed=4"]) == 0
    assert json.loads((run / "config.json").read_text())["seed"] == 4
    summary = json.loads((run / "dvclive" / "metrics.json").read_text())
    assert {"G_GAN", "G_L1", "D_real", "D_fake", "lr", "images_per_s"} <= set(summary["train"])
    assert "val_L1" in summary["epoch"]
    assert (run / "dvclive" / "plots" / "images" / "samples.png").is_file()
    assert not (tmp_path / "dvc.yaml").exists()
    # resume with a changed lr: exit 4, message names the key
    assert cli([str(ds), str(run), *TINY_FLAGS, "--resume", "--lr", "0.001"]) == 4
    assert "lr: checkpoint 0.0002, now 0.001" in capsys.readouterr().err
    # bad config: exit 2, message names the key
    assert cli([str(ds), str(tmp_path / "x"), *TINY_FLAGS, "--size", "100"]) == 2
    assert "size:" in capsys.readouterr().err
    assert cli([str(ds), str(tmp_path / "x"), "--set", "nope=1"]) == 2
    assert "nope" in capsys.readouterr().err


def test_cli_help_has_examples(capsys):
    with pytest.raises(SystemExit) as e:
        cli(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "--preset small" in out and "torchrun" in out


def test_flow_task_runs_the_library(ds, tmp_path):
    pytest.importorskip("prefect")
    from flows.train import train_task

    summary = train_task.fn(tiny(n_epochs=1, n_epochs_decay=0).to_dict(), str(ds),
                            str(tmp_path / "run"), True, "stop", False)
    assert summary["step"] == 3 and (tmp_path / "run" / "generator.pt").is_file()


def test_a_shorter_schedule_starts_fresh_and_a_longer_one_resumes(ds, tmp_path, capsys):
    run = tmp_path / "run"
    train(tiny(n_epochs=2, n_epochs_decay=1, sample_every=4), ds, run, progress=False)  # 9 steps
    # `dvc exp run -S train.n_epochs=1 -S train.n_epochs_decay=0` after it: not a resume
    # (that would train nothing and report the 3-epoch model as the 1-epoch experiment).
    with pytest.raises(ResumeMismatchError,
                       match="schedule: the checkpoint has trained 3 epochs") as e:
        train(tiny(n_epochs=1, n_epochs_decay=0), ds, run, resume=True, progress=False)
    assert set(e.value.differences) == {"schedule"}
    capsys.readouterr()
    # on_mismatch="fresh" (what dvc.yaml runs): says why, trains the 1 epoch from scratch.
    r = train(tiny(n_epochs=1, n_epochs_decay=0, sample_every=4), ds, run, resume=True,
              on_mismatch="fresh", progress=False)
    assert "starting fresh" in capsys.readouterr().out
    # samples/ persists across DVC runs: the discarded run's grids (steps 4, 8, 9) are gone.
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-0000003.png"]
    assert r.resumed_from is None and (r.step, r.epoch) == (3, 1)
    assert json.loads((run / "metrics.json").read_text())["step"] == 3
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt-3.pt", "latest.pt"]
    train(tiny(n_epochs=1, n_epochs_decay=0), ds, tmp_path / "ref", progress=False)
    assert state_equal(weights(run)["G"], weights(tmp_path / "ref")["G"]) == []
    # A longer schedule continues it: epoch 1 -> 3.
    r = train(tiny(n_epochs=2, n_epochs_decay=1), ds, run, resume=True, on_mismatch="fresh",
              progress=False)
    assert r.resumed_from is not None and (r.step, r.epoch) == (9, 3)
    # A finished run asked for another schedule of the same length would train nothing either.
    with pytest.raises(ResumeMismatchError, match="schedule"):
        train(tiny(n_epochs=3, n_epochs_decay=0), ds, run, resume=True, progress=False)


def test_resuming_a_finished_run_rewrites_its_outputs_only(ds, tmp_path):
    run = tmp_path / "run"
    train(tiny(n_epochs=1, n_epochs_decay=0, sample_every=2), ds, run, progress=False)
    before = weights(run)
    m1 = json.loads((run / "metrics.json").read_text())
    # What `dvc repro` does to non-persistent outputs before re-running the stage:
    shutil.rmtree(run / "samples")
    (run / "generator.pt").unlink()
    r = train(tiny(n_epochs=1, n_epochs_decay=0, sample_every=5), ds, run, resume=True,
              progress=False)
    assert r.step == 3 and state_equal(before["G"], weights(run)["G"]) == []
    m2 = json.loads((run / "metrics.json").read_text())
    assert m2["G_L1"] == m1["G_L1"] and m2["val_L1"] == m1["val_L1"]
    assert (run / "generator.pt").is_file()
    assert [p.name for p in (run / "samples").iterdir()] == ["step-0000003.png"]


def test_collate_pairs_packs_input_and_target_into_one_tensor() -> None:
    from pix2pix.training.data import collate_pairs

    samples = [(torch.full((3, 4, 4), 10 * i, dtype=torch.uint8), torch.full((3, 4, 4), 10 * i + 1, dtype=torch.uint8))
               for i in range(3)]
    xy = collate_pairs(samples)
    assert xy.shape == (3, 6, 4, 4) and xy.dtype == torch.uint8
    for i in range(3):
        assert (xy[i, :3] == 10 * i).all() and (xy[i, 3:] == 10 * i + 1).all()


def test_init_generator_fine_tunes_from_an_official_state_dict(ds, tmp_path):
    from pix2pix.models import build_generator, init_weights
    from pix2pix.models.weights import CheckpointError

    cfg = tiny(n_epochs=1, n_epochs_decay=0)
    # A state dict as the official code saves it (same names as ours), from other random weights.
    start = init_weights(build_generator(cfg.generator, ngf=cfg.ngf, norm=cfg.norm),
                         generator=torch.Generator().manual_seed(1234))
    official = {f"module.{k}": v for k, v in start.state_dict().items()}  # DataParallel prefix too
    path = tmp_path / "latest_net_G.pth"
    torch.save(official, path)

    tuned = train(tiny(n_epochs=1, n_epochs_decay=0, init_generator=str(path)), ds, tmp_path / "ft", progress=False)
    fresh = train(cfg, ds, tmp_path / "fresh", progress=False)
    names = [n for n, _ in start.named_parameters()]
    moved = max((dict(tuned.G.named_parameters())[n] - dict(start.named_parameters())[n]).abs().max().item()
                for n in names)
    apart = max((dict(fresh.G.named_parameters())[n] - dict(start.named_parameters())[n]).abs().max().item()
                for n in names)
    assert moved < 0.01 < apart  # 3 Adam steps of lr 2e-4 from the given weights, not a fresh init

    bad = tmp_path / "other.pth"
    torch.save({"model.model.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointError, match="other.pth does not fit this generator"):
        train(tiny(init_generator=str(bad)), ds, tmp_path / "bad", progress=False)
