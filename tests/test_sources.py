"""Source scanning on real files: output naming, accounting of every input, detection."""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path

import numpy as np
from imgutil import manifest, noise, rejected, save

from pix2pix.build import build_dataset
from pix2pix.config import BuildConfig
from pix2pix.inspect import inspect_dataset


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
