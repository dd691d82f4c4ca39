"""Parity with the official PyTorch pix2pix: the training step and the loader's jitter.

tests/reference/official_step_ngf8.pt holds three training steps recorded from the official
code (upstream 2a7afba) by tests/reference/make_official_step_reference.py (README.md beside it
gives the setup): unet_256 with ngf = 8, the 70×70 PatchGAN with ndf = 8, batch 1 at 256²,
torch's default Adam, ``torch.manual_seed(1000 + k)`` before step k (the dropout masks).
tests/reference/official_method.py transcribes the official step and loader for side-by-side
runs on this machine. Our step is ``pix2pix_step``, the function ``train()`` runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pix2pix.models import build_generator, patch_discriminator_for
from pix2pix.models.official import load_official_discriminator, load_official_generator
from pix2pix.training.step import make_adam, pix2pix_step

sys.path.insert(0, str(Path(__file__).parent / "reference"))
from official_method import official_step  # noqa: E402

REF = Path(__file__).parent / "reference" / "official_step_ngf8.pt"
LOSS_KEYS = ("G_GAN", "G_L1", "D_real", "D_fake")  # columns 0-3 of ref["losses"]
LR = 2e-4

# Against the recording (another machine's CPU kernels): G's forward output there and here
# differ by float rounding (2.5e-6 at step 0, before any update). Adam's update is lr·m/√v, so
# for a weight whose gradient is at noise level such a difference moves it by up to ~lr per
# step. Measured with the official optimizer (docs/training.md): losses 4e-7 relative, D3 7e-6,
# G3 94 % of values within 1e-6, 18 of 54k beyond 1e-4, max 4e-4.
RECORDED_LOSS_RTOL = 1e-6
RECORDED_D_ATOL = 2e-5
RECORDED_G_ATOL = 3 * LR  # three steps
RECORDED_G_WITHIN_1E6 = 0.90
# The default fused Adam rounds differently: after three steps at these widths it stays within
# this of the official update run here (measured: docs/training.md).
FUSED_LOSS_RTOL = 1e-5
FUSED_ATOL = 3 * LR


@pytest.fixture(scope="module")
def ref() -> dict:
    return torch.load(REF, map_location="cpu", weights_only=True)


def networks(ref: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
    G = build_generator("unet_256", ngf=8, norm="batch", dropout=True, in_channels=3, out_channels=3)
    D = patch_discriminator_for(70, in_channels=6, ndf=8, norm="batch")
    load_official_generator(G, ref["G0"])
    load_official_discriminator(D, ref["D0"])
    return G.train(), D.train()


def replay(ref: dict, adam: str, *, official: bool = False):
    """The three recorded steps: (losses (3, 5) float64, G, D). ``official``: the transcribed
    official step with torch's default Adam instead of ours."""
    G, D = networks(ref)
    if official:
        opt_G, opt_D = (torch.optim.Adam(m.parameters(), lr=LR, betas=(0.5, 0.999)) for m in (G, D))
    else:
        opt_G, opt_D = (make_adam(m, LR, (0.5, 0.999), adam) for m in (G, D))
    rows = []
    for k in range(3):
        torch.manual_seed(1000 + k)
        a, b = ref["A"][k], ref["B"][k]
        m = (official_step(G, D, opt_G, opt_D, a, b) if official else
             pix2pix_step(G, D, opt_G, opt_D, a, b, gan_mode="vanilla", lambda_l1=100.0))
        rows.append([m[key] for key in LOSS_KEYS] + [0.5 * (m["D_real"] + m["D_fake"])])
    return torch.tensor(rows, dtype=torch.float64), G, D


@pytest.fixture(scope="module")
def runs(ref: dict) -> dict:
    """Each replay once (about 5 s of CPU each): ours with each optimizer, and the official."""
    return {"foreach": replay(ref, "foreach"), "fused": replay(ref, "fused"),
            "official": replay(ref, "", official=True)}


def diffs(ours: dict, theirs: dict) -> torch.Tensor:
    assert list(ours) == list(theirs)  # same keys, same order (the official names)
    return torch.cat([(ours[k].double() - theirs[k].double()).abs().flatten() for k in theirs])


@pytest.mark.slow  # three replays: ~30 s of CPU
def test_our_step_with_the_official_optimizer_is_the_official_step_bit_for_bit(ref: dict, runs: dict) -> None:
    ours, G, D = runs["foreach"]
    theirs, G_off, D_off = runs["official"]
    assert torch.equal(ours, theirs)
    assert diffs(G.state_dict(), G_off.state_dict()).max().item() == 0.0
    assert diffs(D.state_dict(), D_off.state_dict()).max().item() == 0.0
    assert diffs(G.state_dict(), ref["G0"]).max().item() > 1e-4  # and the weights did move


@pytest.mark.slow  # three replays: ~30 s of CPU
def test_official_optimizer_reproduces_the_recorded_official_steps(ref: dict, runs: dict) -> None:
    losses, G, D = runs["foreach"]
    assert torch.allclose(losses, ref["losses"], rtol=RECORDED_LOSS_RTOL, atol=0), (losses, ref["losses"])
    d = diffs(D.state_dict(), ref["D3"])
    g = diffs(G.state_dict(), ref["G3"])
    assert d.max().item() <= RECORDED_D_ATOL
    assert g.max().item() <= RECORDED_G_ATOL
    assert (g <= 1e-6).double().mean().item() >= RECORDED_G_WITHIN_1E6


@pytest.mark.slow  # three replays: ~30 s of CPU
def test_default_fused_optimizer_stays_within_the_documented_tolerance(runs: dict) -> None:
    fused, G, D = runs["fused"]
    official, G_off, D_off = runs["official"]
    assert torch.allclose(fused, official, rtol=FUSED_LOSS_RTOL, atol=0)
    g = diffs(G.state_dict(), G_off.state_dict()).max().item()
    d = diffs(D.state_dict(), D_off.state_dict()).max().item()
    assert 0 < g <= FUSED_ATOL and d <= FUSED_ATOL, (g, d)


def test_step_fake_output_matches_the_recording_to_float_rounding(ref: dict) -> None:
    G, _ = networks(ref)
    torch.manual_seed(1000)
    with torch.no_grad():
        out = G(ref["A"][0])
    assert np.abs((out - ref["fake_B0"]).numpy()).max() <= 1e-5


# --------------------------------------------------------------------------- the loader's jitter


def _photo_pairs(side: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from PIL import Image
    from skimage import data

    out = []
    for photo in (data.astronaut(), data.chelsea(), data.coffee()):
        b = np.asarray(Image.fromarray(photo).resize((side, side), Image.BICUBIC))
        edges = np.abs(np.diff(b.astype(int).sum(2), axis=1, prepend=0)) > 60  # hard edges
        out.append((np.repeat((edges * 255).astype(np.uint8)[..., None], 3, 2), b))
    return out


@pytest.mark.parametrize(("ext", "side", "load_size", "crop_size"), [
    ("jpg", 256, 286, 256),   # the paper's jitter
    ("png", 300, 286, 256),   # shrinking (antialiased in Pillow)
    ("png", 100, 143, 128),   # the dataset smaller than the training size
])
def test_jitter_matches_the_official_loader_bit_for_bit(tmp_path, ext, side, load_size, crop_size) -> None:
    from dsfactory import make_dataset
    from official_method import official_item

    from pix2pix.training.data import PairDataset, jitter_params, to_model_range

    root = make_dataset(tmp_path / "ds", n_train=3, n_val=0, ext=ext, pairs=_photo_pairs(side))
    ds = PairDataset(root, "train", load_size=load_size, crop_size=crop_size, seed=5)
    for epoch in range(2):
        for i, rec in enumerate(ds.records):
            x, y = ds[(epoch, i)]
            j = jitter_params(np.random.default_rng((5, epoch, i)), load_size, crop_size, True)
            A, B = official_item(str(root / rec["path"]), load_size, crop_size,
                                 params={"crop_pos": (j.x, j.y), "flip": j.flip})
            assert torch.equal(to_model_range(x), A) and torch.equal(to_model_range(y), B)


def test_resize_is_pillows_bicubic() -> None:
    from PIL import Image

    from pix2pix.training.data import resize

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for size in (16, 37, 90):
        want = np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC))
        assert np.array_equal(resize(img, size), want)
    # not OpenCV's bicubic (a = -0.75, no antialiasing), which the loader used before
    import cv2

    assert not np.array_equal(resize(img, 90), cv2.resize(img, (90, 90), interpolation=cv2.INTER_CUBIC))
