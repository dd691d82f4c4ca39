"""The dataset builder end to end on real image files: sources, ops, fit, splits, atomicity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from imgutil import manifest, noise, read, rejected, save, tree_hashes

from pix2pix.errors import ConfigError, NothingUsableError, OutputExistsError, SourceError
from pix2pix.prepare.build import build_dataset
from pix2pix.prepare.config import BuildConfig
from pix2pix.prepare.splits import split_for
from pix2pix.prepare.verify import inspect_dataset


def cfg(src: Path, out: Path, **kw) -> BuildConfig:
    kw.setdefault("size", 64)
    kw.setdefault("progress", False)
    return BuildConfig(source=str(src), out=str(out), **kw)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for i in range(6):
        save(src / f"img{i}.jpg", noise(90, 120, i), quality=95)
    save(src / "sub" / "deep" / "nested.png", noise(100, 100, 99))
    (src / "LICENSE.txt").write_text("CC0")  # bookkeeping: neither an input nor a rejection
    (src / "img0.jpg.sha256").write_text("0" * 64)
    return src


# --- sources ----------------------------------------------------------------------------------


def test_folder_source_any_depth_sorted_and_inspectable(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = build_dataset(cfg(folder, out))
    recs = manifest(out)
    assert [r["id"] for r in recs] == [f"img{i}" for i in range(6)] + ["sub__deep__nested"]
    assert summary.total == 7 and sum(summary.counts.values()) == 7
    for r in recs:
        img = read(out / r["path"])
        assert img.shape == (64, 128, 3)
        assert r["size"] == [128, 64]
        assert r["path"] == f"{r['split']}/{r['id']}.jpg"
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["counts"] == summary.counts and meta["total"] == 7
    assert meta["config"]["op"] == "inpaint" and "workers" not in meta["config"]
    assert (out / "preview.jpg").stat().st_size > 1000
    assert rejected(out) == []
    assert inspect_dataset(out).ok


def test_paired_folders_match_by_stem_and_report_orphans(tmp_path: Path) -> None:
    src = tmp_path / "pairs"
    for i in range(3):
        save(src / "A" / f"x{i}.jpg", noise(60, 60, i), quality=95)
        save(src / "B" / f"x{i}.png", noise(60, 60, 10 + i))
    save(src / "A" / "onlyA.png", noise(60, 60, 5))
    save(src / "B" / "onlyB.png", noise(60, 60, 6))
    save(src / "A" / "broken.png", noise(60, 60, 3))
    (src / "B" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")  # the B half is unreadable
    save(src / "A" / "twice.png", noise(60, 60, 7))
    save(src / "B" / "twice.png", noise(60, 60, 8))
    save(src / "B" / "twice.jpg", noise(60, 60, 9))
    out = tmp_path / "out"
    build_dataset(cfg(src, out, size=32, image_format="png"))
    recs = manifest(out)
    assert [r["id"] for r in recs] == ["x0", "x1", "x2"]
    r0 = recs[0]
    assert r0["source"] == {"A": "A/x0.jpg", "B": "B/x0.png"} and r0["op"] == "pair"
    ab = read(out / r0["path"])
    b_expected = np.asarray(
        __import__("PIL.Image").Image.fromarray(noise(60, 60, 10)).resize((32, 32), 4)
    )
    assert np.abs(ab[:, 32:].astype(int) - b_expected.astype(int)).mean() < 6  # B is the right half
    rej = {(r["source"], r["kind"]) for r in rejected(out)}
    assert ("A/onlyA.png", "A has no B") in rej
    assert ("B/onlyB.png", "B has no A") in rej
    assert {s for s, k in rej if k == "ambiguous name"} == {"A/twice.png", "B/twice.png", "B/twice.jpg"}
    (broken,) = [r for r in rejected(out) if r.get("id") == "broken"]
    assert broken["source"] == "A/broken.png + B/broken.jpg" and broken["reason"].startswith("B/broken.jpg: ")


def test_paired_aspect_mismatch_rejected_with_sizes(tmp_path: Path) -> None:
    src = tmp_path / "pairs"
    save(src / "A" / "ok.png", noise(40, 40, 1))
    save(src / "B" / "ok.png", noise(80, 80, 2))  # same aspect, other size: fine
    save(src / "A" / "bad.png", noise(40, 80, 3))
    save(src / "B" / "bad.png", noise(40, 40, 4))
    out = tmp_path / "out"
    build_dataset(cfg(src, out, size=32))
    assert [r["id"] for r in manifest(out)] == ["ok"]
    (bad,) = rejected(out)
    assert bad["kind"] == "A and B shapes differ" and "80x40" in bad["reason"] and "40x40" in bad["reason"]


def _official_layout(root: Path, n: dict[str, int]) -> None:
    k = 0
    for split, count in n.items():
        for i in range(1, count + 1):
            # a real pair: B is A darkened (same edges in both halves), B's mean ~ 8 + 7k
            a = noise(256, 256, k)
            b = (a // 16 + (k * 7) % 240).astype(np.uint8)
            save(root / split / f"{i}.jpg", np.concatenate([a, b], axis=1), quality=95)
            k += 1


def test_ab_dataset_keeps_splits_resizes_and_swaps(tmp_path: Path) -> None:
    src = tmp_path / "facades"
    _official_layout(src, {"train": 3, "val": 2, "test": 2})
    out = tmp_path / "out"
    build_dataset(cfg(src, out, size=64))
    recs = manifest(out)
    assert {(r["split"], r["id"]) for r in recs} == {
        ("train", "1"), ("train", "2"), ("train", "3"), ("val", "1"), ("val", "2"), ("test", "1"), ("test", "2")
    }
    assert all(r["op"] == "ab" for r in recs)
    rec = next(r for r in recs if r["path"] == "train/2.jpg")
    ab = read(out / rec["path"])
    assert ab.shape == (64, 128, 3)
    assert abs(int(ab[:, 64:].mean()) - 15) <= 4  # the dark B half (mean ~15) stays on the right

    swapped = tmp_path / "swapped"
    build_dataset(cfg(src, swapped, size=64, swap=True))
    ab2 = read(swapped / "train" / "2.jpg")
    assert abs(int(ab2[:, :64].mean()) - 15) <= 4 and manifest(swapped)[0]["op_params"] == {"swapped": True}

    resplit = tmp_path / "resplit"
    build_dataset(cfg(src, resplit, size=64, resplit=True, split="1,0,0"))
    ids = sorted(r["id"] for r in manifest(resplit))
    assert ids == ["test__1", "test__2", "train__1", "train__2", "train__3", "val__1", "val__2"]
    assert {r["split"] for r in manifest(resplit)} == {"train"}


def test_ab_image_with_odd_width_is_rejected(tmp_path: Path) -> None:
    src = tmp_path / "ab"
    save(src / "train" / "good.png", noise(32, 64, 1))
    save(src / "train" / "odd.png", noise(32, 65, 2))
    out = tmp_path / "out"
    build_dataset(cfg(src, out, size=32, source_type="ab"))
    assert [r["id"] for r in manifest(out)] == ["good"]
    assert rejected(out)[0]["kind"] == "not an A|B image"


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_archive_source_in_official_layout(tmp_path: Path, kind: str) -> None:
    tree = tmp_path / "tree"
    _official_layout(tree / "facades", {"train": 2, "test": 1})
    arc = tmp_path / f"facades.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(arc, "w") as zf:
            for p in sorted((tree / "facades").rglob("*.jpg")):
                zf.write(p, p.relative_to(tree).as_posix())
    else:
        with tarfile.open(arc, "w:gz") as tf:
            tf.add(tree / "facades", arcname="facades")
    out = tmp_path / "out"
    summary = build_dataset(cfg(arc, out, size=32))
    assert summary.counts == {"train": 2, "val": 0, "test": 1}
    assert manifest(out)[0]["source"] == {"AB": "test/1.jpg"}
    assert not (tmp_path / ".out.extract").exists()  # the extraction folder is cleaned up


def test_unsafe_archive_refused_and_nothing_written(tmp_path: Path) -> None:
    arc = tmp_path / "evil.tar.gz"
    with tarfile.open(arc, "w:gz") as tf:
        data = (tmp_path / "x.txt")
        data.write_text("x")
        tf.add(data, arcname="../escape.jpg")
    out = tmp_path / "out"
    with pytest.raises(SourceError, match=r"escape\.jpg.*'\.\.'"):
        build_dataset(cfg(arc, out))
    assert not out.exists() and not (tmp_path / "escape.jpg").exists()


# --- operations and geometry ------------------------------------------------------------------


def test_inpaint_box_fraction_fill_and_random_position(tmp_path: Path) -> None:
    src = tmp_path / "src"
    save(src / "p.png", noise(64, 64, 3))
    out = tmp_path / "out"
    build_dataset(cfg(src, out, image_format="png", inpaint_fill="0,255,0"))
    (rec,) = manifest(out)
    assert rec["op_params"]["box"] == [21, 21, 42, 42]  # 1/3 of each side, centred
    ab = read(out / rec["path"])
    a, b = ab[:, :64], ab[:, 64:]
    assert (a[21:42, 21:42] == [0, 255, 0]).all()
    mask = np.ones((64, 64), bool)
    mask[21:42, 21:42] = False
    assert (a[mask] == b[mask]).all()  # outside the box A is exactly B (PNG: lossless)

    boxes = []
    for seed in (0, 0, 1):
        o = tmp_path / f"rnd{len(boxes)}"
        build_dataset(cfg(src, o, image_format="png", inpaint_position="random", inpaint_fraction=0.25, seed=seed))
        boxes.append(manifest(o)[0]["op_params"]["box"])
    assert boxes[0] == boxes[1] != boxes[2]
    x0, y0, x1, y1 = boxes[0]
    assert x1 - x0 == 16 and y1 - y0 == 16 and 0 <= x0 <= 48 and 0 <= y0 <= 48


def test_edges_are_black_lines_on_white(tmp_path: Path, photos) -> None:
    src = tmp_path / "src"
    save(src / "chelsea.png", photos["chelsea"])
    out = tmp_path / "out"
    build_dataset(cfg(src, out, op="edges", size=128, image_format="png"))
    a = read(out / manifest(out)[0]["path"])[:, :128]
    assert set(np.unique(a)) <= {0, 255}
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()
    black = (a[..., 0] == 0).mean()
    assert 0.01 < black < 0.3  # mostly white, real lines present


def test_edge_small_components_removed() -> None:
    from pix2pix.prepare import ops

    img = np.full((64, 64, 3), 128, np.uint8)
    img[10:50, 10:50] = 250  # a big square: long edges
    img[56:59, 56:59] = 0  # a dark dot: a small closed edge component
    with_small = ops.make_edges(img, min_component=1)
    without = ops.make_edges(img, min_component=20)
    assert (with_small[55:62, 55:62] == 0).any()
    assert not (without[55:62, 55:62] == 0).any()
    assert (without[8:13, 10:50] == 0).any()  # the square's edge survives


def test_grayscale_three_equal_channels_luma(tmp_path: Path) -> None:
    src = tmp_path / "src"
    save(src / "c.png", np.tile(np.array([255, 0, 0], np.uint8), (32, 32, 1)))
    out = tmp_path / "out"
    build_dataset(cfg(src, out, op="grayscale", size=32, image_format="png", min_spread=0))  # flat on purpose
    ab = read(out / manifest(out)[0]["path"])
    assert (ab[:, :32] == 76).all()  # ITU-R 601: 0.299 * 255
    assert (ab[:, 32:] == [255, 0, 0]).all()


def _stripes(h: int, w: int) -> np.ndarray:
    """Left third red, middle green, right third blue."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 3] = (255, 0, 0)
    img[:, w // 3 : 2 * w // 3] = (0, 255, 0)
    img[:, 2 * w // 3 :] = (0, 0, 255)
    return img


@pytest.mark.parametrize(
    "fit, left, top",
    [("crop", (0, 255, 0), (0, 255, 0)), ("pad", (255, 0, 0), (10, 20, 30)), ("stretch", (255, 0, 0), (0, 255, 0))],
)
def test_fit_policies(tmp_path: Path, fit: str, left, top) -> None:
    src = tmp_path / "src"
    save(src / "wide.png", _stripes(60, 180))
    out = tmp_path / "out"
    build_dataset(cfg(src, out, fit=fit, size=48, image_format="png", op="grayscale", pad_color="10,20,30",
                            min_spread=0))  # a crop of the middle stripe is flat on purpose
    b = read(out / manifest(out)[0]["path"])[:, 48:]
    assert tuple(b[24, 1]) == left  # leftmost column, middle row
    assert tuple(b[1, 24]) == top  # top row, middle column


# --- splits, duplicates, determinism ----------------------------------------------------------


def test_split_fractions_and_stability_when_images_are_added(tmp_path: Path) -> None:
    names = [f"photo{i}.jpg" for i in range(2000)]
    splits = [split_for(n, 0, (0.8, 0.1, 0.1)) for n in names]
    counts = {s: splits.count(s) for s in ("train", "val", "test")}
    assert 1500 < counts["train"] < 1700 and 140 < counts["val"] < 260 and 140 < counts["test"] < 260
    assert splits != [split_for(n, 1, (0.8, 0.1, 0.1)) for n in names]  # the seed matters

    src = tmp_path / "src"
    for i in range(12):
        save(src / f"{i:02d}.jpg", noise(40, 40, i), quality=90)
    first = tmp_path / "first"
    build_dataset(cfg(src, first, size=32, split="0.5,0.25,0.25"))
    for i in range(12, 30):
        save(src / f"{i:02d}.jpg", noise(40, 40, i), quality=90)
    second = tmp_path / "second"
    build_dataset(cfg(src, second, size=32, split="0.5,0.25,0.25"))
    before = {r["id"]: r["split"] for r in manifest(first)}
    after = {r["id"]: r["split"] for r in manifest(second)}
    assert len(after) == 30 and {k: after[k] for k in before} == before
    assert len(set(before.values())) == 3


def test_exact_and_near_duplicates_reported(tmp_path: Path, photos) -> None:
    src = tmp_path / "src"
    save(src / "a.jpg", photos["astronaut"], quality=95)
    (src / "copy_of_a.jpg").write_bytes((src / "a.jpg").read_bytes())
    save(src / "a_reencoded.jpg", photos["astronaut"], quality=70)
    save(src / "coffee.jpg", photos["coffee"], quality=95)
    out = tmp_path / "out"
    summary = build_dataset(cfg(src, out))
    assert sorted(r["id"] for r in manifest(out)) == ["a", "a_reencoded", "coffee"]
    (dup,) = rejected(out)
    assert dup["kind"] == "exact duplicate" and dup["source"] == "copy_of_a.jpg" and "a.jpg" in dup["reason"]
    near = [json.loads(x) for x in (out / "near_duplicates.jsonl").read_text().splitlines()]
    assert [[m.split("/")[1] for m in n["members"]] for n in near] == [["a.jpg", "a_reencoded.jpg"]]
    assert near[0]["size"] == 2 and len(near[0]["splits"]) == 1
    assert summary.duplicates == 1 and summary.near_duplicates == 1
    assert not (out / manifest(out)[0]["split"] / "copy_of_a.jpg").exists()


def test_output_identical_for_any_worker_count(tmp_path: Path, photos) -> None:
    src = tmp_path / "src"
    for i, (name, img) in enumerate(sorted(photos.items())):
        save(src / f"{name}.jpg", img, quality=92)
        save(src / "more" / f"{name}_{i}.png", noise(70, 90, i))
    hashes = []
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        build_dataset(cfg(src, out, op="edges", size=64, workers=workers))
        hashes.append(tree_hashes(out))
    assert len(hashes[0]) == 8 + 5 and hashes[0] == hashes[1]


# --- atomic output and errors -----------------------------------------------------------------


def test_existing_output_refused_unless_overwrite(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        build_dataset(cfg(folder, out))
    assert (out / "precious.txt").read_text() == "keep me"
    with pytest.raises(OutputExistsError, match="not an earlier output"):  # not ours: never deleted
        build_dataset(cfg(folder, out, overwrite=True))
    assert (out / "precious.txt").read_text() == "keep me"
    (out / "dataset.json").write_text("{}")  # an earlier build's folder is replaced whole
    build_dataset(cfg(folder, out, overwrite=True))
    assert not (out / "precious.txt").exists() and len(manifest(out)) == 7
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_nothing_usable_raises_and_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jpg").write_bytes(b"")
    (src / "b.jpg").write_text("hello, not an image")
    out = tmp_path / "out"
    with pytest.raises(NothingUsableError, match="empty file: 1; not an image: 1") as exc:
        build_dataset(cfg(src, out))
    # no dataset, only the list of why, beside OUT; the message names each file too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.rejected.jsonl", "src"]
    rows = [json.loads(x) for x in (tmp_path / "out.rejected.jsonl").read_text().splitlines()]
    assert [(r["source"], r["kind"]) for r in rows] == [("a.jpg", "empty file"), ("b.jpg", "not an image")]
    assert "\n  a.jpg: empty file" in str(exc.value) and "out.rejected.jsonl" in str(exc.value)


def test_killed_build_leaves_no_half_dataset(tmp_path: Path) -> None:
    src = tmp_path / "src"
    base = noise(600, 600, 0).copy()
    for i in range(150):
        base[:32, :32] = np.random.default_rng(i).integers(0, 256, (32, 32, 3))  # none is a duplicate
        save(src / f"{i:03d}.jpg", base, quality=95)
    out = tmp_path / "out"
    old = tmp_path / "old"
    old.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pix2pix.cli", "build", str(src), str(out), "--size", "256", "--no-progress",
         "--format", "png"],
        start_new_session=True,
    )
    staging = tmp_path / ".out.partial"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(staging.glob("*/*.png")) and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert any(staging.glob("*/*.png")), "the build never started writing"
    assert not out.exists()  # a half dataset is never where the finished one is expected
    # the next build cleans the leftover and finishes
    build_dataset(cfg(src, out, size=32))
    assert len(manifest(out)) == 150 and not staging.exists()


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="split"):
        BuildConfig(source="a", out="b", split="0.5,0.2")
    with pytest.raises(ConfigError, match="size"):
        BuildConfig(source="a", out="b", size=300 + 1)
    with pytest.raises(ConfigError, match="op: expected one of inpaint, edges, grayscale"):
        BuildConfig(source="a", out="b", op="blur")
    with pytest.raises(ConfigError, match="unknown build setting.*colour"):
        BuildConfig.from_dict({"source": "a", "out": "b", "colour": 1})
    with pytest.raises(SourceError, match="does not exist"):
        build_dataset(cfg(tmp_path / "missing", tmp_path / "out"))


# --- crops per photo ----------------------------------------------------------------------------


def test_crops_per_image_at_native_resolution_share_their_photos_split(tmp_path: Path, photos) -> None:
    src = tmp_path / "src"
    for name, img in photos.items():
        save(src / f"{name}.png", img)
    out = tmp_path / "out"
    summary = build_dataset(cfg(src, out, size=128, crops_per_image=5, image_format="png",
                                split=(0.5, 0.25, 0.25), op="grayscale"))
    recs = manifest(out)
    assert summary.total == len(recs) == 5 * len(photos)
    assert sorted(r["id"] for r in recs) == sorted(f"{n}-c{k}" for n in photos for k in range(5))
    by_photo: dict[str, set[str]] = {}
    for r in recs:
        name, k = r["id"].rsplit("-c", 1)
        by_photo.setdefault(name, set()).add(r["split"])
        crop = r["op_params"]["crop"]
        assert crop["index"] == int(k) and crop["of"] == 5
        x0, y0, x1, y1 = crop["box"]
        assert x1 - x0 == y1 - y0 == 128
        assert crop["source_size"] == [photos[name].shape[1], photos[name].shape[0]]
        b = read(out / r["path"])[:, 128:]
        assert np.array_equal(b, photos[name][y0:y1, x0:x1])  # native pixels: no resampling
    assert all(len(splits) == 1 for splits in by_photo.values())  # no photo leaks across splits
    assert len({s for splits in by_photo.values() for s in splits}) > 1  # the photos do spread
    assert len({tuple(r["op_params"]["crop"]["box"]) for r in recs if r["id"].startswith("astronaut")}) == 5
    again = tmp_path / "again"
    build_dataset(cfg(src, again, size=128, crops_per_image=5, image_format="png",
                      split=(0.5, 0.25, 0.25), op="grayscale"))
    assert tree_hashes(again) == tree_hashes(out)  # positions are drawn from seed + path


def test_crops_are_refused_for_pairs_and_validated(tmp_path: Path) -> None:
    src = tmp_path / "pairs"
    for side in ("A", "B"):
        save(src / side / "x.png", noise(80, 80, 1))
    with pytest.raises(ConfigError, match="crops_per_image"):
        build_dataset(cfg(src, tmp_path / "out", crops_per_image=2))
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="crops_per_image"):
        BuildConfig(source="s", out="o", crops_per_image=-1)
