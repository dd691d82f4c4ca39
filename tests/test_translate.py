"""`pix2pix translate`: real photos of any size through a tiny generator saved as the official
code saves it (a bare state dict), outputs read back and checked pixel by pixel.

The generator is unet_256 with ngf = 8 and its BatchNorm running statistics calibrated on
photo crops, so eval-mode outputs have real structure (a freshly initialised U-Net in eval mode
outputs an almost flat grey, which would hide both seams and padding mistakes).
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from imgutil import read, save
from PIL import Image

from pix2pix.cli import main as cli_main
from pix2pix.errors import OutputExistsError, OutputOverlapError
from pix2pix.inference import Engine, TranslateConfig, collect_inputs, translate
from pix2pix.inference.tiling import blend_window, pad_to_multiple, tile_starts
from pix2pix.models import build_generator, init_weights

sys.path.insert(0, str(Path(__file__).parent / "reference"))
from official_method import official_test_image  # noqa: E402

FAST = {"num_threads": 2, "eval_mode": "eval"}


def calibrated_unet(photos: dict[str, np.ndarray], ngf: int = 8) -> torch.nn.Module:
    G = init_weights(build_generator("unet_256", ngf=ngf), generator=torch.Generator().manual_seed(0))
    for m in G.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # a cumulative average over the calibration batch
            m.reset_running_stats()
    crops = [photos[k][:256, :256] for k in ("astronaut", "chelsea", "coffee")]
    with torch.no_grad():
        G.train()(torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 127.5 - 1)
    return G.eval()


@pytest.fixture(scope="module")
def model(photos, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "latest_net_G.pth"
    torch.save(calibrated_unet(photos).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def G(model) -> torch.nn.Module:
    from pix2pix.models.io import load_generator_file

    return load_generator_file(model).model.eval()


def photo(photos, w: int, h: int, name: str = "astronaut") -> np.ndarray:
    return np.asarray(Image.fromarray(photos[name]).resize((w, h), Image.BICUBIC))


def reference(G: torch.nn.Module, img: np.ndarray) -> np.ndarray:
    """The generator on one image, padded as documented, by hand: what translate must write."""
    padded, (top, left) = pad_to_multiple(img, 256)
    x = torch.from_numpy(padded.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        y = G(x)[0].permute(1, 2, 0).numpy()
    y = np.clip(np.round((y + 1) * 127.5), 0, 255).astype(np.uint8)
    return y[top: top + img.shape[0], left: left + img.shape[1]]


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "translate.jsonl").read_text().splitlines()]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- pure geometry


def test_pad_to_multiple_reflects_and_centres():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    p, (top, left) = pad_to_multiple(img, 4)
    assert p.shape == (4, 4, 3) and (top, left) == (1, 0)
    assert np.array_equal(p[top: top + 2, left: left + 3], img)
    assert np.array_equal(p[0, :3], img[1])  # reflected, not zero
    big, _ = pad_to_multiple(np.zeros((64, 64, 3), np.uint8), 256)  # pad wider than the image
    assert big.shape == (256, 256, 3)


def test_tile_starts_cover_with_overlap_on_the_grid():
    for length, tile, m in ((2816, 1024, 256), (1024, 512, 256), (4000, 1024, 4), (512, 512, 256)):
        s = tile_starts(length, tile, m)
        assert s[0] == 0 and s[-1] + tile == length and all(x % m == 0 for x in s)
        assert all(b - a <= tile - tile // 4 for a, b in zip(s, s[1:]))  # overlap >= tile/4
    w = blend_window(16, 4, at_start=False, at_end=True)
    assert (w > 0).all() and w[-1] == 1 and w[0] < 0.2 and np.all(np.diff(w[:4]) > 0)


# --------------------------------------------------------------------------- sizes and values


def test_padded_output_equals_the_generator_on_the_padded_image(photos, model, G, tmp_path):
    imgs = {"square.png": photo(photos, 256, 256), "odd.png": photo(photos, 517, 300, "coffee")}
    for name, img in imgs.items():
        save(tmp_path / "in" / name, img)
    translate(model, [tmp_path / "in"], tmp_path / "out", TranslateConfig(**FAST, batch_size=1))
    for name, img in imgs.items():
        d = np.abs(read(tmp_path / "out" / name).astype(int) - reference(G, img))
        # channels_last convolutions sum in another order: a rounding may flip, nothing more
        assert d.max() <= 1 and d.mean() < 0.01, name


@pytest.mark.slow
def test_any_size_keeps_the_input_size(photos, model, tmp_path):
    sizes = {"tiny.png": (64, 64), "wide.jpg": (517, 300), "mid.png": (1000, 700), "huge.jpg": (2600, 1900)}
    for name, (w, h) in sizes.items():
        save(tmp_path / "in" / name, photo(photos, w, h))
    result = translate(model, [tmp_path / "in"], tmp_path / "out", TranslateConfig(**FAST))
    assert result.count == 4 and not result.rejected
    recs = {r["output"]: r for r in records(tmp_path / "out")}
    for name, (w, h) in sizes.items():
        out = tmp_path / "out" / f"{Path(name).stem}.png"
        assert read(out).shape == (h, w, 3)
        r = recs[out.name]
        assert r["size_in"] == r["size_out"] == [w, h]
        assert r["output_sha256"] == sha(out) and r["input_sha256"] == sha(tmp_path / "in" / name)
        assert r["model_sha256"] == sha(model) and r["eval_mode"] == "eval" and r["seed"] == 0
    assert recs["huge.png"]["method"] == "tile" and recs["huge.png"]["tiles"] == 12
    assert recs["mid.png"]["method"] == "pad"  # 1024×768 once padded: one pass


class PerTileOffset(torch.nn.Module):
    """Output = input minus its own mean: every tile gets a different offset, as BatchNorm with
    batch statistics (train mode) gives each tile its own. The harshest case for stitching."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x - x.mean(dim=(2, 3), keepdim=True))


def column_jumps(out: np.ndarray) -> np.ndarray:
    """Mean |difference| between neighbouring columns (index c: columns c and c + 1)."""
    return np.abs(np.diff(out.astype(float), axis=1)).mean(axis=(0, 2))


def test_tiles_blend_without_seams(photos):
    img = photo(photos, 1024, 512)
    dev = torch.device("cpu")
    engine = Engine(PerTileOffset(), multiple=4, size=256, device=dev, eval_mode="eval", tile=512)
    tiled = engine.run([img])[0]
    assert engine.last_tiles == 3 and tiled.shape == img.shape  # tiles at x = 0, 384, 512 wide 512
    # The naive alternative: each tile's output up to the middle of its overlap, cut hard.
    parts = [Engine(PerTileOffset(), multiple=4, size=256, device=dev, eval_mode="eval", tile=0).run(
        [np.ascontiguousarray(img[:, x: x + 512])])[0] for x in (0, 384, 512)]
    hard = np.concatenate([parts[0][:, :448], parts[1][:, 64:320], parts[2][:, 192:]], axis=1)
    cuts = [447, 703]
    # Offsets do not change neighbour differences: what the stitching adds shows against the
    # same model run on the whole image.
    full = Engine(PerTileOffset(), multiple=4, size=256, device=dev, eval_mode="eval", tile=0).run([img])[0]
    excess_hard = column_jumps(hard) - column_jumps(full)
    excess_tiled = column_jumps(tiled) - column_jumps(full)
    assert excess_hard[cuts].max() > 5  # a visible step: the measure sees seams
    assert np.abs(excess_tiled).max() < 0.5  # blended: nowhere more than half a level


def test_tiled_unet_differs_little_from_untiled(photos, G):
    img = photo(photos, 1024, 512)
    dev = torch.device("cpu")
    full = Engine(G, multiple=256, size=256, device=dev, eval_mode="eval", tile=0).run([img])[0]
    tiled = Engine(G, multiple=256, size=256, device=dev, eval_mode="eval", tile=512).run([img])[0]
    diff = np.abs(full.astype(int) - tiled.astype(int))[32:-32, 32:-32]
    assert diff.mean() < 4  # levels of 255: the tiles see less context, little else changes
    jumps = column_jumps(tiled)
    assert jumps[[383, 639]].max() < np.percentile(jumps, 99)  # overlap middles are not outliers


def test_batched_equals_one_at_a_time(photos, model, tmp_path):
    for i, name in enumerate(("astronaut", "chelsea", "coffee")):
        save(tmp_path / "in" / f"{i}.png", photo(photos, 300, 200, name))
    translate(model, [tmp_path / "in"], tmp_path / "b1", TranslateConfig(**FAST, batch_size=1))
    translate(model, [tmp_path / "in"], tmp_path / "b3", TranslateConfig(**FAST, batch_size=3))
    for i in range(3):
        a, b = read(tmp_path / "b1" / f"{i}.png"), read(tmp_path / "b3" / f"{i}.png")
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_train_mode_is_seeded_per_input(photos, model, tmp_path):
    for name in ("astronaut", "chelsea"):
        save(tmp_path / "in" / f"{name}.png", photo(photos, 256, 256, name))
    cfg = TranslateConfig(num_threads=2)  # eval_mode "model": an official file's default is train
    translate(model, [tmp_path / "in"], tmp_path / "a", cfg)
    translate(model, [tmp_path / "in" / "chelsea.png"], tmp_path / "b", cfg)  # alone this time
    translate(model, [tmp_path / "in" / "chelsea.png"], tmp_path / "c", TranslateConfig(num_threads=2, seed=1))
    rec = {r["output"]: r for r in records(tmp_path / "a")}["chelsea.png"]
    assert rec["eval_mode"] == "train" and isinstance(rec["dropout_seed"], int)
    same, other = read(tmp_path / "a" / "chelsea.png"), read(tmp_path / "b" / "chelsea.png")
    assert np.array_equal(same, other)  # independent of the other inputs of the run
    assert not np.array_equal(same, read(tmp_path / "c" / "chelsea.png"))  # the seed matters


def test_eval_mode_names_are_evaluates(photos, model, tmp_path, capsys):
    """`--eval-mode model` (what the model stores: train for an official file) as in evaluate;
    evaluate's old name `checkpoint` means the same here, with a FutureWarning."""
    save(tmp_path / "in" / "a.png", photo(photos, 256, 256))
    run = ["translate", str(model), str(tmp_path / "in"), "--threads", "2", "--no-progress", "--out"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        assert cli_main([*run, str(tmp_path / "new"), "--eval-mode", "model"]) == 0
    with pytest.warns(FutureWarning, match="eval_mode 'checkpoint' is now 'model'"):
        assert cli_main([*run, str(tmp_path / "old"), "--eval-mode", "checkpoint"]) == 0
    with pytest.warns(FutureWarning, match="'checkpoint' is now 'model'"):
        assert TranslateConfig(eval_mode="checkpoint").eval_mode == "model"
    assert [r["eval_mode"] for r in records(tmp_path / "new") + records(tmp_path / "old")] == ["train", "train"]
    assert np.array_equal(read(tmp_path / "new" / "a.png"), read(tmp_path / "old" / "a.png"))
    assert cli_main([*run, str(tmp_path / "bad"), "--eval-mode", "sideways"]) == 2
    assert "error: eval_mode: expected one of model, train, eval, got 'sideways'" in capsys.readouterr().err


# --------------------------------------------------------------------------- files and names


def test_inputs_names_and_clashes(photos, tmp_path):
    img = photo(photos, 64, 64)
    for rel in ("top/a.jpg", "top/a.png", "top/sub/b.png", "top/.hidden.png", "other/b.png", "other/notes.txt"):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x") if rel.endswith(".txt") else save(p, img)
    save(tmp_path / "sub" / "b.png", img)
    jobs, rejected = collect_inputs([tmp_path / "top", str(tmp_path / "other" / "*.png"),
                                     tmp_path / "top" / "a.png", tmp_path / "missing.png", str(tmp_path / "*.gif")])
    assert [(j.src.relative_to(tmp_path).as_posix(), str(j.out)) for j in jobs] == [
        ("top/a.jpg", "a-jpg.png"), ("top/a.png", "a-png.png"), ("top/sub/b.png", "sub/b.png"),
        ("other/b.png", "b.png")]
    assert [(Path(r["input"]).name, r["kind"]) for r in rejected] == [
        ("missing.png", "missing"), ("*.gif", "no match")]
    # The same name from three folders: every one is translated, each under a name from its own path
    # (a clash used to reject all but the first, which depended on the order of the inputs).
    dirs = [tmp_path / "top" / "sub", tmp_path / "sub", tmp_path / "other"]
    jobs, rejected = collect_inputs(dirs)
    want = {str(d / "b.png"): f"b-{hashlib.sha256(str(d / 'b.png').encode()).hexdigest()[:8]}.png" for d in dirs}
    assert {str(j.src): str(j.out) for j in jobs} == want
    assert [(Path(r["input"]).name, r["kind"]) for r in rejected] == [("notes.txt", "not an image")]
    again, _ = collect_inputs(dirs[::-1])
    assert {str(j.src): str(j.out) for j in again} == want  # independent of the order


def test_broken_and_odd_files(photos, model, tmp_path, capsys):
    src = tmp_path / "in"
    save(src / "good.jpg", photo(photos, 200, 120))
    rgba = np.dstack([photo(photos, 100, 80), np.full((80, 100), 128, np.uint8)])
    save(src / "alpha.png", rgba)
    Image.fromarray(photo(photos, 90, 70)[..., 0].astype(np.uint16) * 257).save(src / "deep16.png")
    Image.fromarray(photo(photos, 50, 40)).convert("CMYK").save(src / "cmyk.jpg")
    (src / "broken.png").write_bytes(save(tmp_path / "x.png", photo(photos, 64, 64)).read_bytes()[:200])
    save(src / "huge.png", np.zeros((300, 400, 3), np.uint8))
    out = tmp_path / "out"
    code = cli_main(["translate", str(model), str(src), "--out", str(out), "--eval-mode", "eval",
                     "--max-pixels", "100000", "--threads", "2", "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert "broken.png: truncated" in err and "huge.png: over the pixel limit" in err
    assert sorted(p.name for p in out.glob("*.png")) == ["alpha.png", "cmyk.png", "deep16.png", "good.png"]
    assert read(out / "deep16.png").shape == (70, 90, 3) and read(out / "cmyk.png").shape == (40, 50, 3)
    rejected = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    assert sorted(Path(r["input"]).name for r in rejected) == ["broken.png", "huge.png"]

    ok = tmp_path / "ok"
    assert cli_main(["translate", str(model), str(src / "good.jpg"), "--out", str(ok), "--threads", "2",
                     "--eval-mode", "eval", "--no-progress"]) == 0
    assert [r["output"] for r in records(ok)] == ["good.png"]
    with pytest.raises(OutputExistsError):
        translate(model, [src / "good.jpg"], ok, TranslateConfig(**FAST))
    assert cli_main(["translate", str(model), str(src / "good.jpg"), "--out", str(ok)]) == 2
    assert "already exists" in capsys.readouterr().err
    with pytest.raises(OutputOverlapError, match="lies inside INPUT 1"):
        translate(model, [src], src / "out", TranslateConfig(**FAST))


# --------------------------------------------------------------------------- official parity


def test_fit_matches_the_official_test_pipeline(photos, model, G, tmp_path):
    save(tmp_path / "in" / "wide.png", photo(photos, 517, 300, "chelsea"))
    save(tmp_path / "in" / "small.jpg", photo(photos, 180, 200, "coffee"), quality=90)
    translate(model, [tmp_path / "in"], tmp_path / "out", TranslateConfig(**FAST, fit=True))
    for name in ("wide.png", "small.jpg"):
        ours = read(tmp_path / "out" / f"{Path(name).stem}.png").astype(int)
        theirs = official_test_image(G, str(tmp_path / "in" / name), 256).astype(int)
        assert ours.shape == theirs.shape == (256, 256, 3)
        d = ours - theirs
        assert d.min() >= 0 and d.max() <= 1  # we round, they truncate: never lower, at most 1 up
        assert d.mean() > 0.2  # and the difference really is the rounding
    assert {r["method"] for r in records(tmp_path / "out")} == {"fit"}
