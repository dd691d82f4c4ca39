"""Source scanning on real files: output naming, accounting of every input, detection."""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
import unicodedata
import zlib
from pathlib import Path

import numpy as np
import pytest
from imgutil import manifest, noise, rejected, save
from PIL import Image

from pix2pix.errors import SourceError
from pix2pix.prepare.build import build_dataset
from pix2pix.prepare.config import BuildConfig
from pix2pix.prepare.download import cache_name, url_file_name
from pix2pix.prepare.ids import make_id, safe_name
from pix2pix.prepare.verify import inspect_dataset


def cfg(src: Path, out: Path, **kw) -> BuildConfig:
    kw.setdefault("size", 32)
    kw.setdefault("progress", False)
    return BuildConfig(source=str(src), out=str(out), **kw)


def _written(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for s in ("train", "val", "test") for p in (out / s).glob("*")}


def _assert_consistent(out: Path) -> list[dict]:
    recs = manifest(out)
    assert _written(out) == {r["path"] for r in recs}  # nothing overwritten, nothing extra
    folded = [r["path"].casefold() for r in recs]
    assert len(set(folded)) == len(folded)  # no two names meet on a case-insensitive disk
    assert inspect_dataset(out).ok
    return recs


# --- naming -----------------------------------------------------------------------------------

def test_one_sanitiser_names_ids_downloads_and_url_list_folders() -> None:
    assert safe_name("my  list?.") == "my_list_"  # a run of unsafe characters is one '_'; no trailing dot
    assert safe_name("..hidden") == "hidden" and safe_name("???") == "_" and safe_name("") == ""
    assert safe_name("фото 1.jpg") == "фото_1.jpg"  # letters of any script are kept...
    assert safe_name("фото 1.jpg", ascii_only=True) == "_1.jpg"  # ...but not in names from URLs
    assert safe_name("con.jpg") == "con_.jpg" and safe_name("NUL.tar.gz") == "NUL_.tar.gz"  # extension stays last
    assert make_id("con") == "con_" and make_id("a b/c d") == "a_b__c_d"
    assert url_file_name("http://h/x/a%20b%C3%A9.jpg") == "a_b_.jpg" and url_file_name("http://h/") == "download"
    assert cache_name("http://h/aux.zip").startswith("aux_-") and cache_name("http://h/aux.zip").endswith(".zip")



def test_reported_names_build_five_distinct_pairs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    names = ["a b.jpg", "a_b.jpg", "猫.jpg", "犬.jpg", "фото.jpg"]
    for i, name in enumerate(names):
        save(src / name, noise(48, 48, i), quality=95)
    out = tmp_path / "out"
    summary = build_dataset(cfg(src, out, op="edges"))
    recs = _assert_consistent(out)
    assert summary.total == 5 and len(recs) == 5 and len(_written(out)) == 5
    ids = {r["source"]["B"]: r["id"] for r in recs}
    assert ids["a_b.jpg"] == "a_b" and ids["猫.jpg"] == "猫" and ids["犬.jpg"] == "犬" and ids["фото.jpg"] == "фото"
    assert ids["a b.jpg"].startswith("a_b-") and len(ids["a b.jpg"]) == len("a_b-") + 8
    assert rejected(out) == []


def test_colliding_names_with_equal_bytes_are_duplicates_not_a_crash(tmp_path: Path) -> None:
    """Was a FileNotFoundError traceback in finalize_build: three names sanitised to one id."""
    src = tmp_path / "src"
    save(src / "a b.jpg", noise(40, 40, 1), quality=95)
    for name in ("a_b.jpg", "a;b.jpg", "A B.jpg"):
        (src / name).write_bytes((src / "a b.jpg").read_bytes())
    save(src / "other.jpg", noise(40, 40, 2), quality=95)
    out = tmp_path / "out"
    build_dataset(cfg(src, out))
    recs = _assert_consistent(out)
    assert len(recs) == 2
    dups = rejected(out)
    assert len(dups) == 3 and {d["kind"] for d in dups} == {"exact duplicate"}


def test_case_nfd_extension_and_subfolder_twins_get_distinct_ids(tmp_path: Path) -> None:
    src = tmp_path / "src"
    nfc = unicodedata.normalize("NFC", "café.jpg")
    nfd = unicodedata.normalize("NFD", "café.jpg")
    names = ["Photo.jpg", "photo.jpg", "PHOTO.png", nfc, nfd, "x.jpg", "x.png", "x_jpg.png", "sub/a.jpg", "sub__a.jpg"]
    for i, name in enumerate(names):
        save(src / name, noise(40, 40, 10 + i), quality=95)
    out = tmp_path / "out"
    build_dataset(cfg(src, out, split="1,0,0"))
    recs = _assert_consistent(out)
    assert sorted(r["source"]["B"] for r in recs) == sorted(names)
    by_src = {r["source"]["B"]: r["id"] for r in recs}
    assert by_src[nfc] == unicodedata.normalize("NFC", "café")  # the composed form keeps the plain id
    assert by_src[nfd].startswith(by_src[nfc] + "-")
    assert by_src["x_jpg.png"] == "x_jpg" and by_src["x.png"] == "x_png"
    # stable: a rebuild gives the same ids
    again = tmp_path / "again"
    build_dataset(cfg(src, again, split="1,0,0"))
    assert {r["source"]["B"]: r["id"] for r in manifest(again)} == by_src


_ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    " _-.,;:!?'\"()[]{}#%&+=@~^`$|<>*\\",
    "猫犬鳥花山川日本語中文한국어",
    "фотоФОТОжизньЖ",
    "éèêÉßøæÅñÑçΩωπΣσς",
    "\u0301\u0308\u200b\u00a0\u3000\u202e🙂🐱",
]


def _random_name(rng: random.Random) -> str:
    chars = "".join(rng.choice(rng.choice(_ALPHABETS)) for _ in range(rng.randint(1, 12)))
    return chars.strip() or "x"


def test_random_unicode_names_every_input_lands_once(tmp_path: Path) -> None:
    rng = random.Random(7)
    src = tmp_path / "src"
    inputs: list[str] = []
    k = 0
    while len(inputs) < 300:
        if inputs and rng.random() < 0.3:  # a twin of an earlier name: case, NFD, spaces, extension
            stem, ext = inputs[rng.randrange(len(inputs))].rsplit(".", 1)
            stem = rng.choice([stem.upper(), stem.lower(), stem.swapcase(), unicodedata.normalize("NFD", stem),
                               stem.replace(" ", "_"), stem.replace("_", " ") + " "])
            ext = rng.choice(["jpg", "png", "JPG", "jpeg"])
        else:
            stem = "/".join(_random_name(rng) for _ in range(rng.choice([1, 1, 1, 2])))
            ext = rng.choice(["jpg", "png"])
        name = f"{stem}.{ext}"
        parts = name.split("/")
        if (any(p.startswith(".") or not p.strip() or p in (".", "..") for p in parts)
                or any(len(p.encode()) > 200 for p in parts) or name in inputs):
            continue
        path = src / name
        if path.exists() or any(q.exists() and q.is_file() for q in path.parents if q != src and src in q.parents):
            continue
        try:
            save(path, noise(24, 24, k), **({"quality": 95} if ext.lower() != "png" else {}))
        except (OSError, ValueError):
            continue
        inputs.append(name)
        k += 1
    for name in rng.sample(inputs, 10):  # a few exact copies under new names: rejected as duplicates
        copy = f"copy {len(inputs)} of {name.replace('/', '_')}"
        (src / copy).write_bytes((src / name).read_bytes())
        inputs.append(copy)
    out = tmp_path / "out"
    build_dataset(cfg(src, out, size=16, image_format="png"))
    recs = _assert_consistent(out)
    rej = rejected(out)
    assert len(recs) + len(rej) == len(inputs)
    assert sorted([r["source"]["B"] for r in recs] + [r["source"] for r in rej]) == sorted(inputs)
    assert {r["kind"] for r in rej} <= {"exact duplicate"} and len(rej) == 10
    for r in recs:
        assert not r["id"].startswith(".") and "/" not in r["id"] and len(r["id"].encode()) < 200
    assert np.all([len(r["id"]) > 0 for r in recs])


# --- accounting -------------------------------------------------------------------------------


def _inputs_accounted(out: Path) -> set[str]:
    used = {p for r in manifest(out) for p in r["source"].values()}
    return used | {r["source"] for r in rejected(out)}


def test_stray_files_beside_a_and_b_are_rejected_not_dropped(tmp_path: Path) -> None:
    src = tmp_path / "pairs"
    for i in range(2):
        save(src / "A" / f"x{i}.png", noise(40, 40, i))
        save(src / "B" / f"x{i}.png", noise(40, 40, 10 + i))
    save(src / "stray.jpg", noise(40, 40, 5), quality=95)
    (src / "notes.txt").write_text("my notes")
    (src / "README.md").write_text("readme: aside, documented")
    (src / ".hidden.jpg").write_bytes(b"x")
    out = tmp_path / "out"
    build_dataset(cfg(src, out))
    rej = {r["source"]: r for r in rejected(out)}
    assert set(rej) == {"stray.jpg", "notes.txt"}
    assert {r["kind"] for r in rej.values()} == {"outside the layout"}
    assert "A/ + B/" in rej["stray.jpg"]["reason"]
    assert _inputs_accounted(out) == {"A/x0.png", "A/x1.png", "B/x0.png", "B/x1.png", "stray.jpg", "notes.txt"}


def test_links_fifos_loops_and_dangling_links_are_rejected_never_followed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    save(src / "good.jpg", noise(40, 40, 1), quality=95)
    secret = save(tmp_path / "outside" / "secret.jpg", noise(40, 40, 2), quality=95)
    (src / "out_link.jpg").symlink_to(secret)
    (src / "in_link.jpg").symlink_to(src / "good.jpg")
    (src / "loop.jpg").symlink_to(src / "loop.jpg")
    (src / "dangling.jpg").symlink_to(tmp_path / "missing.jpg")
    (src / "dir_link").symlink_to(tmp_path / "outside", target_is_directory=True)
    os.mkfifo(src / "pipe.jpg")
    out = tmp_path / "out"
    # a FIFO opened for reading would block forever: run the real command with a deadline
    proc = subprocess.run([sys.executable, "-m", "pix2pix.cli", "build", str(src), str(out), "--size", "32",
                           "--no-progress"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [r["source"] for r in manifest(out)] == [{"B": "good.jpg"}]
    rej = {r["source"]: r for r in rejected(out)}
    assert set(rej) == {"out_link.jpg", "in_link.jpg", "loop.jpg", "dangling.jpg", "dir_link", "pipe.jpg"}
    assert "outside the source" in rej["out_link.jpg"]["reason"] and "dir_link" in rej
    assert "inside the source" in rej["in_link.jpg"]["reason"]
    assert "loop" in rej["loop.jpg"]["reason"] and "dangling" in rej["dangling.jpg"]["reason"]
    assert rej["pipe.jpg"]["kind"] == "not a regular file" and "FIFO" in rej["pipe.jpg"]["reason"]
    assert not any("secret" in str(r["source"]) for r in manifest(out))


def test_nothing_usable_exits_1_lists_20_and_writes_all_beside_out(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(25):
        (src / f"bad{i:02d}.jpg").write_bytes(b"" if i % 2 else b"<html>not found</html>")
    out = tmp_path / "data" / "out"
    proc = subprocess.run([sys.executable, "-m", "pix2pix.cli", "build", str(src), str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: no usable pair") and str(out) + ".rejected.jsonl" in lines[0]
    assert lines[1] == "  bad00.jpg: not an image (a text file)" and lines[2] == "  bad01.jpg: empty file (0 bytes)"
    assert len(lines) == 1 + 20 + 1 and lines[-1] == "  ... and 5 more"
    rows = [json.loads(x) for x in (tmp_path / "data" / "out.rejected.jsonl").read_text().splitlines()]
    assert sorted(r["source"] for r in rows) == [f"bad{i:02d}.jpg" for i in range(25)]
    assert not out.exists()
    # a later successful build removes the stale list
    save(src / "good.jpg", noise(40, 40, 1), quality=95)
    build_dataset(cfg(src, out))
    assert not (tmp_path / "data" / "out.rejected.jsonl").exists()


def test_own_dataset_as_source_keeps_splits_and_skips_its_bookkeeping(tmp_path: Path, photos) -> None:
    src = tmp_path / "src"
    for name, img in photos.items():
        save(src / f"{name}.jpg", img, quality=95)
    first = tmp_path / "first"
    build_dataset(cfg(src, first, size=64, op="edges", split="0.5,0.25,0.25"))
    second = tmp_path / "second"
    summary = build_dataset(cfg(first, second, size=32))
    assert summary.source_kind == "ab" and "dataset written by pix2pix-pipeline" in summary.source_reason
    assert rejected(second) == []  # manifest.jsonl, dataset.json, preview.jpg ... are not inputs
    assert sorted((r["split"], r["id"]) for r in manifest(second)) == sorted(
        (r["split"], r["id"]) for r in manifest(first))
    meta = json.loads((second / "dataset.json").read_text())
    assert meta["source_kind"] == "ab" and "dataset.json" in meta["source_detection"]


def test_own_dataset_without_its_dataset_json_never_trains_on_its_preview(tmp_path: Path, photos) -> None:
    src = tmp_path / "src"
    for name, img in photos.items():
        save(src / f"{name}.jpg", img, quality=95)
    first = tmp_path / "first"
    build_dataset(cfg(src, first, size=64, op="edges", split="0.5,0.25,0.25"))
    (first / "dataset.json").unlink()  # copied without it, or hand-edited
    second = tmp_path / "second"
    build_dataset(cfg(first, second, size=64, source_type="ab"))
    sources = {r["source"]["AB"] for r in manifest(second)}
    assert "preview.jpg" not in sources and len(sources) == len(manifest(first))
    skipped = {r["source"]: r["kind"] for r in rejected(second)}
    assert skipped["preview.jpg"] == skipped["manifest.jsonl"] == "not an input"  # accounted for, not used


# --- detection --------------------------------------------------------------------------------


def _pair(photo: np.ndarray, w: int, h: int) -> np.ndarray:
    """A real A|B pair: edges of the photo | the photo, each w×h."""
    from pix2pix.prepare import ops

    b = np.asarray(Image.fromarray(photo).resize((w, h), Image.Resampling.LANCZOS))
    return np.concatenate([ops.make_edges(b), b], axis=1)


def test_users_combined_1280x480_pairs_in_train_test_are_read_as_ab(tmp_path: Path, photos) -> None:
    src = tmp_path / "mine"
    for i, (name, img) in enumerate(sorted(photos.items())):
        save(src / ("test" if i == 0 else "train") / f"{name}.jpg", _pair(img, 640, 480), quality=95)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "pix2pix.cli", "build", str(src), str(out), "--size", "64",
                           "--no-progress"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "source: A|B: 4 of 4 decodable images are two halves of 640×480" in proc.stdout
    recs = manifest(out)
    assert {r["op"] for r in recs} == {"ab"}
    assert {(r["split"], r["id"]) for r in recs} == {("test", "astronaut"), ("train", "chelsea"),
                                                    ("train", "coffee"), ("train", "rocket")}
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["source_kind"] == "ab" and "640×480" in meta["source_detection"]


@pytest.mark.parametrize("layout", ["nested", "root"])
def test_cyclegan_layouts_are_pairs_with_their_splits(tmp_path: Path, layout: str) -> None:
    src = tmp_path / "cg"
    for split, n in (("train", 3), ("test", 2)):
        for i in range(n):
            a_dir = src / "A" / f"{split}A" if layout == "nested" else src / f"{split}A"
            b_dir = src / "B" / f"{split}B" if layout == "nested" else src / f"{split}B"
            save(a_dir / f"{i}.png", noise(40, 40, i))
            save(b_dir / f"{i}.png", noise(40, 40, 100 + 10 * i + len(split)))
    out = tmp_path / "out"
    summary = build_dataset(cfg(src, out))
    assert summary.source_kind == "paired" and rejected(out) == []
    recs = manifest(out)
    assert sorted((r["split"], r["id"]) for r in recs) == [
        ("test", "0"), ("test", "1"), ("train", "0"), ("train", "1"), ("train", "2")]
    pre = "A/trainA" if layout == "nested" else "trainA"
    assert next(r for r in recs if r["split"] == "train" and r["id"] == "2")["source"]["A"] == f"{pre}/2.png"


def test_a_folder_alone_stops_with_a_clear_message(tmp_path: Path) -> None:
    src = tmp_path / "inputs"
    for i in range(3):
        save(src / "A" / f"{i}.png", noise(40, 40, i))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "pix2pix.cli", "build", str(src), str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "found A/ (3 files) but no B/" in proc.stderr and "--source-type folder" in proc.stderr
    assert not out.exists()


def test_empty_and_non_image_files_first_do_not_make_photos_ab(tmp_path: Path, photos) -> None:
    """Issue 8: after a URL-list download whose first files were broken, photos were cut in half."""
    src = tmp_path / "images"
    src.mkdir()
    for i in range(8):
        (src / f"00{i}.jpg").write_bytes(b"" if i % 2 else b"<html>503</html>")
    for name, img in photos.items():
        h, w = img.shape[:2]
        save(src / f"1_{name}.jpg", img[: w // 2] if h >= w // 2 else img[:, : 2 * h], quality=95)  # 2:1 photos
    out = tmp_path / "out"
    summary = build_dataset(cfg(src, out))
    assert summary.source_kind == "folder" and summary.total == 4
    assert {r["op"] for r in manifest(out)} == {"inpaint"}
    assert len(rejected(out)) == 8


def test_wide_photos_in_split_folders_are_ambiguous_and_say_which_flag(tmp_path: Path, photos) -> None:
    src = tmp_path / "wide"
    for i, (name, img) in enumerate(sorted(photos.items())):
        h, w = img.shape[:2]
        side = min(h, w // 2)
        save(src / ("test" if i == 0 else "train") / f"{name}.png", img[:side, : 2 * side])
    with pytest.raises(SourceError, match=r"cannot tell.*0 of 4 checked.*--source-type ab.*--source-type folder"):
        build_dataset(cfg(src, tmp_path / "out"))
    summary = build_dataset(cfg(src, tmp_path / "forced", source_type="folder"))
    assert summary.total == 4 and summary.source_reason == "--source-type folder"


def _huge_png(path: Path, side: int) -> None:
    """A valid 1-bit PNG of side×side pixels, written in chunks (a few hundred KB on disk)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = b"\0" + bytes((side + 7) // 8)
    body = b"".join(z.compress(row * 1000) for _ in range(side // 1000)) + z.compress(row * (side % 1000))
    body += z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def test_huge_png_among_photos_does_not_crash_detection(tmp_path: Path, photos) -> None:
    src = tmp_path / "src"
    for name, img in photos.items():
        save(src / f"{name}.jpg", img, quality=95)
    _huge_png(src / "00_huge.png", 30000)  # first in order: the old detector opened it first
    out = tmp_path / "out"
    summary = build_dataset(cfg(src, out))
    assert summary.source_kind == "folder" and summary.total == 4
    (rej,) = rejected(out)
    assert rej["source"] == "00_huge.png" and rej["kind"] == "over the pixel limit"


# --- truncated JPEGs (issue 8) ----------------------------------------------------------------


def _jpeg(img: np.ndarray, progressive: bool) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=90, progressive=progressive)
    return buf.getvalue()


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("fraction", [0.3, 0.6])
def test_jpeg_whose_data_ends_early_is_rejected_not_grey(photos, progressive: bool, fraction: float) -> None:
    from pix2pix.errors import ImageRejected
    from pix2pix.imageio import load_rgb

    data = _jpeg(photos["astronaut"], progressive)
    closed = data[: int(len(data) * fraction)] + b"\xff\xd9"  # cut, then a proper end marker: decodes flat
    for min_size in (None, (128, 128)):
        with pytest.raises(ImageRejected, match="truncated JPEG") as exc:
            load_rgb(closed, min_size=min_size)
        assert exc.value.kind == "truncated"
        with pytest.raises(ImageRejected, match="truncated"):
            load_rgb(data[: int(len(data) * fraction)], min_size=min_size)  # cut without a marker


@pytest.mark.parametrize("progressive", [False, True])
def test_fast_decoder_checks_flat_and_progressive_jpegs_itself(photos, progressive: bool) -> None:
    # decode_rgb's OpenCV path re-checks a possibly cut file with OpenCV: a complete file with a
    # flat last row keeps its pixels (equal to Pillow's), a cut-and-closed one is still refused.
    from pix2pix.errors import ImageRejected
    from pix2pix.imageio import decode_rgb, load_rgb

    boxed = photos["coffee"].copy()
    boxed[-80:] = 0
    data = _jpeg(boxed, progressive)
    assert np.array_equal(decode_rgb(data), load_rgb(data))
    for fraction in (0.3, 0.6):
        with pytest.raises(ImageRejected, match="truncated JPEG") as exc:
            decode_rgb(data[: int(len(data) * fraction)] + b"\xff\xd9")
        assert exc.value.kind == "truncated"


def test_complete_jpegs_with_flat_edges_are_still_accepted(photos) -> None:
    from pix2pix.imageio import load_rgb

    boxed = photos["coffee"].copy()
    boxed[-80:] = 0  # a letterbox bar: the last row ends flat, like a cut file would
    white = photos["chelsea"].copy()
    white[:, -120:] = 255
    for img in (boxed, white, photos["rocket"]):
        for progressive in (False, True):
            for min_size in (None, (64, 64)):
                out = load_rgb(_jpeg(img, progressive), min_size=min_size)
                assert out.ndim == 3 and out.shape[2] == 3


def test_build_rejects_a_truncated_jpeg_among_photos(tmp_path: Path, photos) -> None:
    src = tmp_path / "src"
    for name in ("coffee", "chelsea"):
        save(src / f"{name}.jpg", photos[name], quality=95)
    data = _jpeg(photos["astronaut"], False)
    (src / "cut.jpg").write_bytes(data[: int(len(data) * 0.3)] + b"\xff\xd9")
    out = tmp_path / "out"
    build_dataset(cfg(src, out))
    assert sorted(r["id"] for r in manifest(out)) == ["chelsea", "coffee"]
    (rej,) = rejected(out)
    assert rej["source"] == "cut.jpg" and rej["kind"] == "truncated"



def test_images_named_like_notes_are_inputs_and_split_folders_keep_any_case(tmp_path: Path, photos) -> None:
    """`License.jpg`, `readme.png` vanished without a record; `TEST/` images were re-split by hash."""
    src = tmp_path / "notes"
    names = ["License.jpg", "readme.png", "COPYING.jpeg", "ok.jpg"]
    for name, img in zip(names, photos.values()):
        save(src / name, img, quality=95)
    (src / "LICENSE.txt").write_text("CC0")
    out = tmp_path / "out"
    build_dataset(cfg(src, out, size=64, op="edges", min_side=0))
    assert sorted(r["source"]["B"] for r in manifest(out)) == sorted(names)

    ab = tmp_path / "ab"
    for i, (split, img) in enumerate(zip(["Train", "TEST", "Val", "train"], photos.values())):
        half = np.asarray(Image.fromarray(img).resize((64, 64)))
        save(ab / split / f"p{i}.png", np.concatenate([half, half[:, ::-1]], axis=1))
    out2 = tmp_path / "out2"
    build_dataset(cfg(ab, out2, size=64, source_type="ab"))
    got = {r["source"]["AB"]: r["split"] for r in manifest(out2)}
    assert got == {"Train/p0.png": "train", "TEST/p1.png": "test", "Val/p2.png": "val", "train/p3.png": "train"}


def test_a_and_b_names_pair_across_unicode_normalisation(tmp_path: Path, photos) -> None:
    """`A/café.jpg` (NFC) and `B/café.jpg` (NFD, as macOS writes it) were two orphans."""
    img = next(iter(photos.values()))
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    save(tmp_path / "pp" / "A" / f"{nfc}.jpg", img, quality=95)
    save(tmp_path / "pp" / "B" / f"{nfd}.jpg", img, quality=95)
    out = tmp_path / "out"
    build_dataset(cfg(tmp_path / "pp", out, size=64))
    assert [r["source"]["A"] for r in manifest(out)] == [f"A/{nfc}.jpg"] and rejected(out) == []


def test_long_names_keep_their_ids_within_the_limit_when_rebuilt(tmp_path: Path, photos) -> None:
    """Ids of 130-byte twins reached 129 bytes and were renamed by every rebuild."""
    src = tmp_path / "odd"
    for i, img in enumerate(list(photos.values())[:2]):
        save(src / f"{'L' * 130}{i}.jpg", img, quality=95)
        save(src / f"{'é' * 70}{i}.jpg", img[::-1], quality=95)
    first, second = tmp_path / "first", tmp_path / "second"
    build_dataset(cfg(src, first, size=64, op="edges", split="1,0,0"))
    ids = sorted(r["id"] for r in manifest(first))
    assert len(set(ids)) == 4 and max(len(i.encode()) for i in ids) <= 120
    build_dataset(cfg(first, second, size=64))
    assert sorted(r["id"] for r in manifest(second)) == ids
