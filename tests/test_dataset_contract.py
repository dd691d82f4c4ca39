"""The on-disk contract has one owner (pix2pix/dataset.py): builder, fixtures and readers agree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dsfactory import make_dataset
from imgutil import noise, save

from pix2pix import dataset
from pix2pix.prepare.build import build_dataset
from pix2pix.prepare.config import BuildConfig
from pix2pix.prepare.verify import inspect_dataset


def test_builder_and_fixture_write_the_same_version_key(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(3):
        save(src / f"p{i}.jpg", noise(80, 90, i), quality=95)
    build_dataset(BuildConfig(source=str(src), out=str(tmp_path / "built"), size=64, progress=False))
    make_dataset(tmp_path / "fixture", n_train=2, n_val=1, size=32)
    built = json.loads((tmp_path / "built" / "dataset.json").read_text())
    fixture = json.loads((tmp_path / "fixture" / "dataset.json").read_text())
    for meta, size in ((built, 64), (fixture, 32)):
        assert meta["format"] == "pix2pix-ab" and meta["format_version"] == dataset.FORMAT_VERSION
        assert "version" not in meta
        assert meta["size"] == size
    assert dataset.image_size(tmp_path / "built") == 64 and dataset.image_size(tmp_path / "fixture") == 32
    # The fixture is a sound dataset by the same rules `pix2pix inspect` applies to a build.
    assert inspect_dataset(tmp_path / "fixture").problems == []


def test_old_version_key_is_read_and_a_newer_format_refused(tmp_path: Path) -> None:
    (tmp_path / "dataset.json").write_text(json.dumps({"version": 1, "config": {"size": 48}}))
    meta = dataset.read_meta(tmp_path)
    assert meta is not None and meta["format_version"] == 1 and "version" not in meta
    assert dataset.image_size(tmp_path) == 48
    (tmp_path / "dataset.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(dataset.DatasetError, match=r"dataset.json: format_version 99 is newer"):
        dataset.read_meta(tmp_path)
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(dataset.DatasetError, match="dataset.json: cannot be read as JSON"):
        dataset.read_meta(tmp_path)
    assert dataset.read_meta(tmp_path / "nowhere") is None
    with pytest.raises(dataset.DatasetError, match="missing"):
        dataset.read_meta(tmp_path / "nowhere", required=True)


def test_split_by_direction_and_one_decoder(tmp_path: Path) -> None:
    ab = np.zeros((4, 8, 3), np.uint8)
    ab[:, 4:] = 200
    a, b = dataset.split_ab(ab, "AtoB")
    assert a.max() == 0 and b.min() == 200
    x, y = dataset.split_ab(ab, "BtoA")
    assert x.min() == 200 and y.max() == 0
    with pytest.raises(ValueError, match="even width"):
        dataset.split_ab(ab[:, :7])
    with pytest.raises(ValueError, match="direction"):
        dataset.split_ab(ab, "AtoC")
    save(tmp_path / "p.png", np.concatenate([noise(16, 16, 1), noise(16, 16, 2)], axis=1))
    assert np.array_equal(dataset.read_ab(tmp_path / "p.png")[:, :16], noise(16, 16, 1))
    save(tmp_path / "cut.jpg", noise(64, 128, 3), quality=95)
    data = (tmp_path / "cut.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(dataset.DatasetError, match=r"cut.jpg: truncated"):
        dataset.read_ab(tmp_path / "cut.jpg")
    with pytest.raises(dataset.DatasetError, match="missing"):
        dataset.read_ab(tmp_path / "gone.jpg")


def test_manifest_round_trip_and_fingerprint(tmp_path: Path) -> None:
    recs = [{"id": "a", "split": "train", "path": "train/a.jpg", "size": [8, 4]},
            {"id": "b", "split": "val", "path": "val/b.jpg", "size": [8, 4]}]
    sha = dataset.write_manifest(tmp_path, recs)
    assert sha == dataset.dataset_fingerprint(tmp_path)
    assert dataset.read_manifest(tmp_path) == recs
    assert dataset.read_manifest(tmp_path, "val") == recs[1:]
    (tmp_path / dataset.MANIFEST).write_text('{"id": "x", "split": "train"}\n')
    with pytest.raises(dataset.DatasetError, match=r"manifest.jsonl:1: record lacks key\(s\) \['path'\]"):
        dataset.read_manifest(tmp_path)


@pytest.mark.parametrize("bad, message", [
    ('"id split path"', "expected a JSON object"),
    ('["id", "split", "path"]', "expected a JSON object"),
    ('{"id": "", "split": "test", "path": "test/x.jpg"}', "id must be a non-empty string"),
    ('{"id": 5, "split": "test", "path": "test/x.jpg"}', "id must be a non-empty string"),
    ('{"id": null, "split": "test", "path": "test/x.jpg"}', "id must be a non-empty string"),
    ('{"id": "sub/deep/x", "split": "test", "path": "test/x.jpg"}', "must be a plain name"),
    ('{"id": "x", "split": "holdout", "path": "test/x.jpg"}', "is not one of train, val, test"),
])
def test_a_malformed_manifest_line_is_named_never_a_traceback(tmp_path, bad, message) -> None:
    """Lines the breaker wrote by hand: tracebacks in inspect/train/evaluate, or silent overwrites."""
    from pix2pix.dataset import DatasetError, read_manifest

    (tmp_path / "manifest.jsonl").write_text('{"id": "x", "split": "test", "path": "test/x.jpg"}\n' + bad + "\n")
    with pytest.raises(DatasetError, match=rf"manifest.jsonl:2: .*{message}"):
        read_manifest(tmp_path)


def test_one_jsonl_reader_names_the_file_and_line_in_the_callers_error(tmp_path) -> None:
    """history.jsonl (evaluate), rejected.jsonl (the flow) and the manifest share one reader."""
    from pix2pix.evaluation.evaluate import EvaluateError
    from pix2pix.prepare.chunked import read_rejections

    history = tmp_path / "history.jsonl"
    history.write_text('{"epoch": 1, "loss_G": 2.5}\n\n{"epoch": 2, "loss_G": NaN}\n')
    rows = dataset.read_jsonl(history, error=EvaluateError)
    assert rows[0] == {"epoch": 1, "loss_G": 2.5} and rows[1]["epoch"] == 2 and np.isnan(rows[1]["loss_G"])
    history.write_text('{"epoch": 1}\n{"epoch": 2,\n')
    with pytest.raises(EvaluateError, match=r"history.jsonl:2: not valid JSON"):
        dataset.read_jsonl(history, error=EvaluateError)
    assert read_rejections(tmp_path / "absent.jsonl") == []
    (tmp_path / "rejected.jsonl").write_text('{"source": "a.jpg", "kind": "truncated"}\n[1]\n')
    with pytest.raises(dataset.DatasetError, match=r"rejected.jsonl:2: expected a JSON object, got list"):
        read_rejections(tmp_path / "rejected.jsonl")


def test_ids_are_unique_per_split_ignoring_case(tmp_path) -> None:
    from pix2pix.dataset import DatasetError, read_manifest

    lines = ['{"id": "camera", "split": "test", "path": "test/camera.jpg"}',
             '{"id": "camera", "split": "train", "path": "train/camera.jpg"}',
             '{"id": "CAMERA", "split": "test", "path": "test/CAMERA.jpg"}']
    (tmp_path / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"manifest.jsonl:3: id 'CAMERA' is already used in split 'test' \(line 1\)"):
        read_manifest(tmp_path)
