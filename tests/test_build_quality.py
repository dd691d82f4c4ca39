"""The builder's data-quality side on real files: near-blank and too-small filters, near-duplicate
groups kept in one split (bounded on look-alike crowds), and lossless copies of finished pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from imgutil import manifest, noise, rejected, save, tree_hashes
from PIL import Image

from pix2pix.cli import main
from pix2pix.prepare.build import build_dataset
from pix2pix.prepare.config import BuildConfig
from pix2pix.prepare.splits import split_for


def cfg(src: Path, out: Path, **kw) -> BuildConfig:
    kw.setdefault("size", 64)
    kw.setdefault("progress", False)
    return BuildConfig(source=str(src), out=str(out), **kw)


def _gray3(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img


def _overlay(h: int, w: int, seed: int) -> np.ndarray:
    """A mostly transparent RGBA overlay: a faint watermark at alpha 3 over nothing."""
    rgba = np.zeros((h, w, 4), np.uint8)
    rng = np.random.default_rng(seed)
    rgba[..., :3] = rng.integers(0, 256, (h, w, 3))
    rgba[h // 3 : h // 2, w // 4 : 3 * w // 4, 3] = 3
    return rgba


# --- filters ---------------------------------------------------------------------------------------


def test_near_blank_overlays_rejected_low_contrast_photos_kept(tmp_path: Path, photos) -> None:
    src = tmp_path / "src"
    save(src / "astronaut.jpg", photos["astronaut"], quality=95)
    save(src / "moon.png", _gray3(skimage.data.moon()))
    save(src / "hubble.png", skimage.data.hubble_deep_field())
    save(src / "micro.png", _gray3(skimage.data.microaneurysms()))
    for i in range(3):
        save(src / f"overlay{i}.png", _overlay(300, 300, i))
    out = tmp_path / "out"
    summary = build_dataset(cfg(src, out, size=128))
    assert sorted(r["id"] for r in manifest(out)) == ["astronaut", "hubble", "micro", "moon"]
    rej = rejected(out)
    assert sorted(r["source"] for r in rej) == ["overlay0.png", "overlay1.png", "overlay2.png"]
    assert {r["kind"] for r in rej} == {"near-blank"} and "--min-spread 10" in rej[0]["reason"]
    assert summary.rejected == {"near-blank": 3}
    assert json.loads((out / "dataset.json").read_text())["config"]["min_spread"] == 10

    kept_all = tmp_path / "all"
    build_dataset(cfg(src, kept_all, size=128, min_spread=0))
    assert len(manifest(kept_all)) == 7 and rejected(kept_all) == []


def test_sources_enlarged_more_than_twice_rejected_or_warned(tmp_path: Path) -> None:
    src = tmp_path / "src"
    save(src / "tiny.png", noise(100, 80, 1))  # short side 80 -> 256 is 3.2x
    save(src / "ok.png", noise(150, 300, 2))  # short side 150 -> 1.7x
    save(src / "wide.png", noise(60, 200, 3))  # short side 60, long side 200
    out = tmp_path / "out"
    build_dataset(cfg(src, out, size=256))
    assert [r["id"] for r in manifest(out)] == ["ok"]
    rej = {r["source"]: r for r in rejected(out)}
    assert set(rej) == {"tiny.png", "wide.png"} and {r["kind"] for r in rej.values()} == {"too small"}
    assert "80x100 would be enlarged 3.2x to 256" in rej["tiny.png"]["reason"]
    assert "--min-side 128" in rej["tiny.png"]["reason"] and "--small-images warn" in rej["tiny.png"]["reason"]

    padded = tmp_path / "padded"  # letterboxed, the long side is what gets enlarged
    build_dataset(cfg(src, padded, size=256, fit="pad"))
    assert sorted(r["id"] for r in manifest(padded)) == ["ok", "wide"]

    warned = tmp_path / "warned"
    assert main(["build", str(src), str(warned), "--size", "256", "--small-images", "warn", "--no-progress"]) == 0
    recs = {r["id"]: r for r in manifest(warned)}
    assert set(recs) == {"ok", "tiny", "wide"} and "warnings" not in recs["ok"]
    assert recs["tiny"]["warnings"] == ["80x100 would be enlarged 3.2x to 256 (short side 80 < --min-side 128)"]
    assert json.loads((warned / "dataset.json").read_text())["warnings"] == {"small image kept": 2}

    lenient = tmp_path / "lenient"
    assert main(["build", str(src), str(lenient), "--size", "256", "--min-side", "70", "--no-progress"]) == 0
    assert sorted(r["id"] for r in manifest(lenient)) == ["ok", "tiny"]


# --- near-duplicates -------------------------------------------------------------------------------


def test_one_photo_at_several_resolutions_lands_in_one_split(tmp_path: Path, photos) -> None:
    src = tmp_path / "src"
    sides = (512, 420, 360, 300, 260, 200)
    names = [f"astro_{s}.jpg" for s in sides]
    split = (0.34, 0.33, 0.33)
    assert len({split_for(n, 0, split) for n in names}) == 3  # hashed alone they would spread out
    for s, n in zip(sides, names):
        save(src / n, np.asarray(Image.fromarray(photos["astronaut"]).resize((s, s), Image.Resampling.LANCZOS)),
             quality=90)
    for name in ("chelsea", "coffee", "rocket"):
        save(src / f"{name}.jpg", photos[name], quality=90)
    for i in range(6):
        save(src / f"noise{i}.png", noise(120, 120, i))
    out = tmp_path / "out"
    summary = build_dataset(cfg(src, out, split=",".join(map(str, split))))
    recs = {r["id"]: r for r in manifest(out)}
    assert len({recs[n[:-4]]["split"] for n in names}) == 1
    for n in names:
        rec = recs[n[:-4]]
        assert rec["path"] == f"{rec['split']}/{rec['id']}.jpg" and (out / rec["path"]).is_file()
        assert rec["near_duplicate_group"] == 0
    assert all("near_duplicate_group" not in r for k, r in recs.items() if not k.startswith("astro"))
    (group,) = [json.loads(x) for x in (out / "near_duplicates.jsonl").read_text().splitlines()]
    assert group["size"] == 6 and len(group["splits"]) == 1 and group["moved"] >= 2
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["near_duplicates"]["groups"] == 1 and meta["near_duplicates"]["images"] == 6
    assert meta["near_duplicates"]["images_moved"] == group["moved"] == summary.near_duplicates_moved
    assert meta["near_duplicates"]["groups_across_splits"] == 0
    assert sum(meta["counts"].values()) == 15 and meta["counts"] == summary.counts
    from pix2pix.prepare.verify import inspect_dataset

    assert inspect_dataset(out).ok


def test_flat_and_smooth_images_of_other_colours_are_not_near_duplicates(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i, v in enumerate((30, 90, 150, 210)):
        save(src / f"flat{i}.png", np.full((80, 80, 3), (v, 255 - v, 60), np.uint8))
        ramp = np.linspace(v * 0.2, v, 80).astype(np.uint8)  # left-to-right ramps: one dHash
        save(src / f"ramp{i}.png", np.repeat(np.tile(ramp, (80, 1))[:, :, None], 3, axis=2))
    out = tmp_path / "out"
    summary = build_dataset(cfg(src, out, min_spread=0, image_format="png"))
    assert summary.total == 8 and summary.near_duplicates == 0
    assert (out / "near_duplicates.jsonl").read_text() == ""


def _lookalikes(root: Path, n: int, side: int = 24) -> None:
    """n tiny distinct files that all look alike: one gradient, a little noise each."""
    ramp = np.tile(np.linspace(60, 200, side), (side, 1))
    for i in range(n):
        jitter = np.random.default_rng(i).integers(0, 3, (side, side))
        img = np.repeat((ramp + jitter).astype(np.uint8)[:, :, None], 3, axis=2)
        save(root / f"{i:05d}.png", img)


@pytest.mark.slow
def test_near_duplicate_report_is_bounded_on_look_alike_crowds(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _lookalikes(src, 1200)
    out = tmp_path / "out"
    summary = build_dataset(cfg(src, out, size=16, workers=2, image_format="png"))
    assert summary.total == 1200
    rows = [json.loads(x) for x in (out / "near_duplicates.jsonl").read_text().splitlines()]
    # all pairs would be 719,400 lines; groups are one line each, with at most 50 members listed
    assert len(rows) == summary.near_duplicates <= 10
    assert (out / "near_duplicates.jsonl").stat().st_size < 20_000
    assert all(len(r["members"]) <= 50 for r in rows)
    assert sum(r["size"] for r in rows) >= 1100  # the crowd is found (chained), not dropped
    assert sum(r["size"] == 50 + r.get("members_not_listed", 0) for r in rows if r["size"] > 50) >= 1
    assert all(len(r["splits"]) == 1 for r in rows)


def test_near_duplicate_candidates_are_linear_in_the_crowd() -> None:
    """4,000 identical-hash records: the candidate count is bounded per image (here by counting the
    comparisons the grouping makes through its thumbnails)."""
    from pix2pix.prepare import splits

    n = 4000
    thumb = np.full(192, 128, np.uint8)
    records = [{"_dhash": 0, "_thumb": thumb.tobytes().hex()} for _ in range(n)]
    groups = splits.near_duplicate_groups(records, 4)
    assert [len(g) for g in groups] == [n]
    bound = n * (4 + 1) * splits.NEAR_DUPLICATE_NEIGHBOURS  # per image, per band, per neighbour
    assert bound < n * (n - 1) // 2 / 10


# --- lossless --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpg", "png"])
def test_rebuilding_a_built_dataset_copies_its_images_byte_for_byte(tmp_path: Path, photos, fmt: str) -> None:
    src = tmp_path / "src"
    for name, img in photos.items():
        save(src / f"{name}.jpg", img, quality=92)
    first = tmp_path / "first"
    build_dataset(cfg(src, first, op="edges", image_format=fmt))
    again = tmp_path / "again"
    build_dataset(cfg(first, again, source_type="ab", image_format=fmt))
    before = {k: v for k, v in tree_hashes(first).items() if k.endswith(f".{fmt}") and "/" in k}
    after = {k: v for k, v in tree_hashes(again).items() if k in before}  # (preview.jpg was an input too)
    assert len(before) == 4 and after == before
    recs = [r for r in manifest(again) if r["path"] in before]
    assert len(recs) == 4 and all(r["sha256"] == r["source_sha256"] for r in recs)

    other_size = tmp_path / "other"  # not at the target size: decoded, resized, re-encoded
    build_dataset(cfg(first, other_size, source_type="ab", image_format=fmt, size=32))
    assert all(r["sha256"] != r["source_sha256"] for r in manifest(other_size) if r["id"] != "preview")
    swapped = tmp_path / "swapped"  # swapped halves: new pixels, so new bytes
    build_dataset(cfg(first, swapped, source_type="ab", image_format=fmt, swap=True))
    assert all(r["sha256"] != r["source_sha256"] for r in manifest(swapped) if r["id"] != "preview")


# --- the fast JPEG path ----------------------------------------------------------------------------


def test_fast_jpeg_decode_gives_pillows_pixels_and_leaves_odd_files_to_the_guarded_loader(photos) -> None:
    import io

    from pix2pix.imageio import _decode_plain_jpeg, load_rgb

    c = BuildConfig(source="s", out="o")
    for name in ("astronaut", "coffee"):
        for wh in ((600, 400), (1333, 999), (2100, 1500)):
            buf = io.BytesIO()
            Image.fromarray(photos[name]).resize(wh).save(buf, "JPEG", quality=90)
            data = buf.getvalue()
            for floor in ((512, 512), (256, 256)):
                fast = _decode_plain_jpeg(data, c.max_pixels, floor)
                assert fast is not None and np.array_equal(fast, load_rgb(data, min_size=floor))
    buf = io.BytesIO()
    Image.fromarray(photos["chelsea"]).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    assert _decode_plain_jpeg(data[: len(data) // 2], c.max_pixels, (64, 64)) is None  # truncated: load_rgb rejects it
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(photos["chelsea"]).save(rotated, "JPEG", exif=exif)
    assert _decode_plain_jpeg(rotated.getvalue(), c.max_pixels, (64, 64)) is None
    cmyk = io.BytesIO()
    Image.fromarray(photos["chelsea"]).convert("CMYK").save(cmyk, "JPEG")
    assert _decode_plain_jpeg(cmyk.getvalue(), c.max_pixels, (64, 64)) is None
    small = BuildConfig(source="s", out="o", max_pixels=1000)
    assert _decode_plain_jpeg(data, small.max_pixels, (64, 64)) is None  # over the limit: load_rgb says so


def test_workers_start_cleanly_after_the_parent_used_opencv_threads(tmp_path: Path) -> None:
    """A plain fork after OpenCV's thread pool has run leaves workers waiting on a futex for ever;
    the builder's pool must not inherit that state."""
    import subprocess
    import sys

    src = tmp_path / "src"
    for i in range(20):
        save(src / f"{i:02d}.png", noise(80, 80, i))
    code = (
        "import sys, cv2, numpy as np\n"
        "cv2.resize(np.zeros((3000, 3000, 3), np.uint8), (1000, 1000), interpolation=cv2.INTER_LINEAR)\n"
        "from pix2pix.prepare.build import build_dataset\nfrom pix2pix.prepare.config import BuildConfig\n"
        f"s = build_dataset(BuildConfig(source={str(src)!r}, out={str(tmp_path / 'out')!r}, size=32, workers=2,"
        " progress=False))\nprint(s.total)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "20"
