"""`pix2pix evaluate`: pure metric functions, then one tiny trained model evaluated end to end.

The model (unet_128, ngf = ndf = 4, one epoch on 3 pairs) is trained once per module; each
evaluation of its 4 test images takes about a second on 2 CPU cores.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from dsfactory import make_dataset
from PIL import Image

from pix2pix.cli.evaluate import main as cli_main
from pix2pix.errors import ConfigError, OutputExistsError
from pix2pix.evaluation.evaluate import EmptySplitError, EvalConfig, EvaluateError, evaluate
from pix2pix.evaluation.metrics import PSNR_CAP, histogram_intersection, lab_histogram, pair_metrics
from pix2pix.training import TrainConfig, train

N_TEST = 4
FAST = {"num_threads": 1}


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds"), n_train=3, n_val=1, n_test=N_TEST, size=128)


@pytest.fixture(scope="module")
def run_dir(ds, tmp_path_factory) -> Path:
    cfg = TrainConfig.from_dict({
        "generator": "unet_128", "size": 128, "ngf": 4, "ndf": 4, "n_epochs": 1, "n_epochs_decay": 0,
        "num_workers": 0, "sample_every": 0, "log_every": 1, "seed": 1, "num_threads": 1,
    })
    run = tmp_path_factory.mktemp("run")
    train(cfg, ds, run, progress=False)
    return run


@pytest.fixture(scope="module")
def report(run_dir, ds, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "out"
    evaluate(run_dir, ds, out, EvalConfig(**FAST))
    return out


def images_of(out: Path) -> dict[str, np.ndarray]:
    return {p.stem: np.asarray(Image.open(p)) for p in sorted((out / "images").glob("*.png"))}


# --------------------------------------------------------------------------- pure metrics


def test_identical_images_score_perfectly(photos):
    img = photos["chelsea"][:128, :128]
    m = pair_metrics(img, img)
    assert m["L1"] == 0.0 and m["L1_255"] == 0.0
    assert m["PSNR"] == PSNR_CAP  # documented cap instead of inf
    assert m["SSIM"] == pytest.approx(1.0)
    h = lab_histogram(img)
    assert h.shape == (3, 64) and (h.sum(1) == 128 * 128).all()
    assert histogram_intersection(h, h) == pytest.approx([1.0, 1.0, 1.0])


def test_constant_offset_gives_known_l1_and_psnr():
    rng = np.random.default_rng(0)
    target = rng.integers(20, 200, (64, 64, 3), dtype=np.uint8)
    output = target + np.uint8(10)
    m = pair_metrics(output, target)
    assert m["L1_255"] == pytest.approx(10.0)
    assert m["L1"] == pytest.approx(10 / 127.5, abs=1e-6)  # [-1, 1] units
    assert m["PSNR"] == pytest.approx(10 * math.log10(255**2 / 100))  # MSE = 100 → 28.13 dB
    assert m["SSIM"] < 1.0


def test_histogram_intersection_of_disjoint_and_half_overlapping():
    p = np.array([[4, 0, 0, 0]])
    assert histogram_intersection(p, np.array([[0, 0, 0, 9]]))[0] == 0.0
    assert histogram_intersection(p, np.array([[1, 1, 0, 0]]))[0] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        histogram_intersection(p, np.array([[0, 0, 0, 0]]))


def test_config_is_validated():
    with pytest.raises(ConfigError, match="eval_mode"):
        EvalConfig(eval_mode="inference")
    with pytest.raises(ConfigError, match="batch_size"):
        EvalConfig(batch_size=0)
    with pytest.raises(ConfigError, match="device"):
        EvalConfig(device="tpu")


# --------------------------------------------------------------------------- end to end


def test_writes_every_file(report):
    for rel in ("metrics.json", "per_image.csv", "report.html", "plots/training_curves.png",
                "plots/psnr_hist.png"):
        assert (report / rel).is_file(), rel
    imgs = images_of(report)
    assert sorted(imgs) == [f"test{i:03d}" for i in range(N_TEST)]
    for img in imgs.values():
        assert img.dtype == np.uint8 and img.shape == (128, 3 * 128, 3)
    assert not list(report.parent.glob(".out.*")), "staging folder left behind"


def test_metrics_json_keys_and_ranges(report, run_dir):
    m = json.loads((report / "metrics.json").read_text())
    assert m["count"] == N_TEST and m["split"] == "test"
    stored = json.loads((run_dir / "config.json").read_text())["eval_mode"]
    assert m["eval_mode"] == stored and m["eval_mode_source"] == "checkpoint"
    assert 0 <= m["L1"] <= 2 and m["L1_255"] == pytest.approx(m["L1"] * 127.5, rel=1e-4)
    assert 0 < m["PSNR"] < PSNR_CAP
    assert -1 <= m["SSIM"] <= 1
    assert set(m["hist_intersection"]) == {"L", "a", "b"}
    assert all(0 <= v <= 1 for v in m["hist_intersection"].values())
    assert m["trained_on_this_dataset"] is True


def test_per_image_csv(report):
    rows = list(csv.DictReader((report / "per_image.csv").open()))
    assert [r["id"] for r in rows] == [f"test{i:03d}" for i in range(N_TEST)]
    assert set(rows[0]) == {"id", "L1", "PSNR", "SSIM"}
    m = json.loads((report / "metrics.json").read_text())
    assert np.mean([float(r["PSNR"]) for r in rows]) == pytest.approx(m["PSNR"], abs=1e-3)


def test_per_image_metrics_match_the_written_images(report):
    rows = {r["id"]: r for r in csv.DictReader((report / "per_image.csv").open())}
    for name, img in images_of(report).items():
        out, tgt = img[:, 128:256], img[:, 256:]
        assert pair_metrics(out, tgt)["L1"] == pytest.approx(float(rows[name]["L1"]), abs=1e-5)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        self.links += [v for k, v in attrs if k in ("src", "href") and v]


def test_report_links_exist_and_are_local(report):
    parser = _Links()
    parser.feed((report / "report.html").read_text(encoding="utf-8"))
    assert parser.scripts == 0
    links = parser.links
    for name in images_of(report):
        assert f"images/{name}.png" in links
    assert "plots/training_curves.png" in links and "plots/psnr_hist.png" in links
    for link in links:
        assert "://" not in link and not link.startswith("/"), link
        assert (report / unquote(link)).is_file(), link


def test_eval_mode_eval_is_deterministic(run_dir, ds, tmp_path):
    cfg = EvalConfig(eval_mode="eval", **FAST)
    evaluate(run_dir / "generator.pt", ds, tmp_path / "a", cfg)
    evaluate(run_dir / "generator.pt", ds, tmp_path / "b", cfg)
    a, b = images_of(tmp_path / "a"), images_of(tmp_path / "b")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["eval_mode"] == "eval"


def test_eval_mode_train_is_reproducible_with_a_seed(run_dir, ds, tmp_path):
    evaluate(run_dir, ds, tmp_path / "a", EvalConfig(eval_mode="train", seed=3, **FAST))
    evaluate(run_dir, ds, tmp_path / "b", EvalConfig(eval_mode="train", seed=3, **FAST))
    a, b = images_of(tmp_path / "a"), images_of(tmp_path / "b")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    evaluate(run_dir, ds, tmp_path / "c", EvalConfig(eval_mode="train", seed=4, **FAST))
    c = images_of(tmp_path / "c")
    assert any(not np.array_equal(a[k], c[k]) for k in a), "dropout should depend on the seed"


def test_refuses_non_empty_out_dir_unless_overwrite(run_dir, ds, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match=str(out)):
        evaluate(run_dir, ds, out, EvalConfig(max_images=1, **FAST))
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(OutputExistsError, match="not an earlier output"):
        evaluate(run_dir, ds, out, EvalConfig(max_images=1, **FAST), overwrite=True)
    assert (out / "keep.txt").read_text() == "mine"
    (out / "metrics.json").write_text("{}")  # an earlier report is replaced whole
    r = evaluate(run_dir, ds, out, EvalConfig(max_images=1, **FAST), overwrite=True)
    assert r.count == 1 and not (out / "keep.txt").exists()
    assert len(list((out / "images").iterdir())) == 1


def test_empty_split_names_the_splits_that_have_images(run_dir, tmp_path):
    no_test = make_dataset(tmp_path / "ds", n_train=2, n_val=1, size=128)
    with pytest.raises(EmptySplitError, match=r"'test' has no images.*train \(2\).*val \(1\)"):
        evaluate(run_dir, no_test, tmp_path / "out", EvalConfig(**FAST))
    assert not (tmp_path / "out").exists()


def test_missing_generator_is_a_clear_error(ds, tmp_path):
    with pytest.raises(EvaluateError, match="generator.pt"):
        evaluate(tmp_path, ds, tmp_path / "out", EvalConfig(**FAST))


def test_cli(run_dir, ds, tmp_path, capsys):
    out = tmp_path / "out"
    args = [str(run_dir), str(ds), str(out), "--max-images", "2", "--eval-mode", "eval", "--threads", "1"]
    assert cli_main(args) == 0
    assert json.loads((out / "metrics.json").read_text())["count"] == 2
    assert "report.html" in capsys.readouterr().out
    assert cli_main(args) == 2  # OUT exists: a usage error (see --overwrite)
    assert "--overwrite" in capsys.readouterr().err
    assert cli_main([*args, "--split", "val", "--overwrite"]) == 0


def test_eval_mode_model_and_its_old_name_checkpoint(run_dir, ds, tmp_path):
    """`model` (as stored with the generator) is the one name evaluate and translate share; the
    old `checkpoint` of evaluate still works, flag or params.yaml, with a FutureWarning."""
    stored = json.loads((run_dir / "config.json").read_text())["eval_mode"]
    assert EvalConfig().eval_mode == "model"
    with pytest.warns(FutureWarning, match="eval_mode 'checkpoint' is now 'model'"):
        assert EvalConfig(eval_mode="checkpoint").eval_mode == "model"
    base = [str(run_dir), str(ds)]
    fast = ["--max-images", "1", "--threads", "1", "--no-progress"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # the new name: no warning
        assert cli_main([*base, str(tmp_path / "new"), "--eval-mode", "model", *fast]) == 0
    with pytest.warns(FutureWarning, match="'checkpoint' is now 'model'"):
        assert cli_main([*base, str(tmp_path / "flag"), "--eval-mode", "checkpoint", *fast]) == 0
    params = tmp_path / "params.yaml"
    params.write_text("evaluate:\n  eval_mode: checkpoint\n")  # a params.yaml from before the rename
    with pytest.warns(FutureWarning, match="'checkpoint' is now 'model'"):
        assert cli_main([*base, str(tmp_path / "params"), "--params", str(params), *fast]) == 0
    for name in ("new", "flag", "params"):
        m = json.loads((tmp_path / name / "metrics.json").read_text())
        assert (m["eval_mode"], m["eval_mode_source"], m["config"]["eval_mode"]) == (stored, "checkpoint", "model")
    assert json.loads((tmp_path / "new" / "scores.json").read_text()) == \
        json.loads((tmp_path / "flag" / "scores.json").read_text())


# --------------------------------------------------------------------------- baselines, holes, the report


@pytest.fixture(scope="module")
def inpaint_ds(photos, tmp_path_factory) -> Path:
    """Real photos through the real builder: inpainting pairs, 128 px, lossless, all in test."""
    from pix2pix.prepare.build import build_dataset
    from pix2pix.prepare.config import BuildConfig

    root = tmp_path_factory.mktemp("inpaint")
    (root / "photos").mkdir()
    for name, img in photos.items():
        Image.fromarray(img).save(root / "photos" / f"{name}.png")
    out = root / "ds"
    build_dataset(BuildConfig.from_dict({"source": str(root / "photos"), "out": str(out), "op": "inpaint", "size": 128,
                                         "image_format": "png", "split": [0, 0, 1]}))
    return out


@pytest.fixture(scope="module")
def inpaint_report(run_dir, inpaint_ds, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval-inpaint") / "out"
    evaluate(run_dir, inpaint_ds, out, EvalConfig(eval_mode="eval", **FAST))
    return out


def _pairs(ds: Path) -> dict[str, tuple[np.ndarray, np.ndarray, dict]]:
    """id -> (A, B, record) read back from the dataset's files."""
    out = {}
    for line in (ds / "manifest.jsonl").read_text().splitlines():
        rec = json.loads(line)
        ab = np.asarray(Image.open(ds / rec["path"]).convert("RGB"))
        w = ab.shape[1] // 2
        out[rec["id"]] = (ab[:, :w], ab[:, w:], rec)
    return out


def test_identity_baseline_scores_the_input_itself(inpaint_report, inpaint_ds):
    m = json.loads((inpaint_report / "metrics.json").read_text())
    pairs = _pairs(inpaint_ds)
    assert m["count"] == len(pairs) == 4
    l1 = [np.mean(np.abs(a.astype(float) - b.astype(float))) for a, b, _ in pairs.values()]
    assert m["baselines"]["identity"]["L1_255"] == pytest.approx(np.mean(l1), abs=1e-9)
    assert m["baselines"]["identity"]["L1"] == pytest.approx(np.mean(l1) / 127.5, abs=1e-9)
    rows = {r["id"]: r for r in map(json.loads, (inpaint_report / "per_image.jsonl").read_text().splitlines())}
    for rid, (a, b, _) in pairs.items():
        assert rows[rid]["identity"]["PSNR"] == pytest.approx(pair_metrics(a, b)["PSNR"])


def test_hole_metrics_inside_the_known_box(inpaint_report, inpaint_ds):
    m = json.loads((inpaint_report / "metrics.json").read_text())
    side = round(128 / 3)  # the default inpaint_fraction, centred
    x0 = (128 - side) // 2
    box_area, total = side * side, 128 * 128
    hole_l1, ratios = [], []
    for a, b, rec in _pairs(inpaint_ds).values():
        assert rec["op_params"]["box"] == [x0, x0, x0 + side, x0 + side]
        assert (a[x0:x0 + side, x0:x0 + side] == 255).all() and np.array_equal(a[:x0], b[:x0])
        hole_l1.append(np.mean(np.abs(255.0 - b[x0:x0 + side, x0:x0 + side])))
    ident = m["baselines"]["identity"]
    assert ident["hole"]["L1_255"] == pytest.approx(np.mean(hole_l1), abs=1e-9)
    # Identity and Telea change nothing outside the box: whole-image L1 = hole L1 × box share.
    assert ident["L1_255"] == pytest.approx(ident["hole"]["L1_255"] * box_area / total, abs=1e-9)
    telea = m["baselines"]["telea"]
    assert telea["L1_255"] == pytest.approx(telea["hole"]["L1_255"] * box_area / total, abs=1e-9)
    assert telea["hole"]["L1"] < ident["hole"]["L1"] / 2  # a real fill beats white paint
    ratios = [pair_metrics(img[:, 128:256][x0:x0 + side, x0:x0 + side], img[:, 256:][x0:x0 + side, x0:x0 + side])
              for img in images_of(inpaint_report).values()]
    assert m["hole"]["L1"] == pytest.approx(np.mean([r["L1"] for r in ratios]), abs=1e-9)
    assert m["hole"]["SSIM"] == pytest.approx(np.mean([r["SSIM"] for r in ratios]), abs=1e-9)
    assert set(m["hole"]) == set(ident["hole"]) == {"L1", "L1_255", "PSNR", "SSIM"}


def test_telea_and_holes_only_for_inpainting(report, inpaint_report):
    pairs = json.loads((report / "metrics.json").read_text())
    assert pairs["task"] == "pairs" and set(pairs["baselines"]) == {"identity"}
    assert "hole" not in pairs and "hole" not in pairs["baselines"]["identity"]
    inp = json.loads((inpaint_report / "metrics.json").read_text())
    assert inp["task"] == "inpaint" and set(inp["baselines"]) == {"identity", "telea"}
    html = (inpaint_report / "report.html").read_text(encoding="utf-8")
    assert "Inside the masked box" in html and "telea" in html
    assert "Inside the masked box" not in (report / "report.html").read_text(encoding="utf-8")


def test_report_says_task_dataset_model_and_mode(inpaint_report, run_dir):
    m = json.loads((inpaint_report / "metrics.json").read_text())
    assert m["dataset_info"]["size"] == 128 and m["dataset_info"]["counts"] == {"train": 0, "val": 0, "test": 4}
    cfg = json.loads((run_dir / "config.json").read_text())
    assert m["model"]["generator"] == "unet_128" and (m["model"]["ngf"], m["model"]["ndf"]) == (4, 4)
    assert m["model"]["epochs"] == cfg["n_epochs"] + cfg["n_epochs_decay"] and m["model"]["step"] == 3
    html = (inpaint_report / "report.html").read_text(encoding="utf-8")
    for text in ("inpainting", "unet_128", "ngf 4, ndf 4", "step 3", "Test-time mode: eval", "test 4"):
        assert text in html, text
    # The paper's numbers were measured on Cityscapes labels→photo: not shown next to inpainting.
    assert "paper, L1+cGAN" not in html


def test_paper_numbers_only_next_to_their_task():
    from pix2pix.evaluation.report import paper_reference

    assert paper_reference({"dataset_info": {"source": "data/cityscapes"}, "direction": "BtoA"}) is not None
    assert paper_reference({"dataset_info": {"source": "data/cityscapes"}, "direction": "AtoB"}) is None
    assert paper_reference({"dataset_info": {"source": "data/facades"}, "direction": "BtoA"}) is None


def test_build_warnings_reach_the_report(run_dir, ds, tmp_path):
    import shutil

    warned = tmp_path / "ds"
    shutil.copytree(ds, warned)
    meta = json.loads((warned / "dataset.json").read_text())
    meta.update(warnings={"small image kept": 2}, near_duplicates={"groups_across_splits": 1})
    (warned / "dataset.json").write_text(json.dumps(meta))
    evaluate(run_dir, warned, tmp_path / "out", EvalConfig(max_images=1, **FAST))
    warnings = json.loads((tmp_path / "out" / "metrics.json").read_text())["dataset_info"]["warnings"]
    assert any("small image kept: 2" in w for w in warnings)
    assert any("cross splits" in w for w in warnings)
    assert "small image kept: 2" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")


def test_dataset_json_is_read_by_the_contract_module(run_dir, ds, tmp_path, capsys):
    """evaluate reads dataset.json through pix2pix.dataset.read_meta: missing is a warning, an
    old `version` key still reads, a malformed or newer file is one error line naming it."""
    import shutil

    from pix2pix.dataset import DatasetError

    cases = {}
    for name in ("missing", "old", "broken", "newer"):
        cases[name] = tmp_path / name
        shutil.copytree(ds, cases[name])
    (cases["missing"] / "dataset.json").unlink()
    meta = json.loads((ds / "dataset.json").read_text())
    old = {k: v for k, v in meta.items() if k not in ("format", "format_version")}
    (cases["old"] / "dataset.json").write_text(json.dumps({**old, "version": 1}))
    (cases["broken"] / "dataset.json").write_text("{not json")
    (cases["newer"] / "dataset.json").write_text(json.dumps({**meta, "format_version": 99}))

    evaluate(run_dir, cases["missing"], tmp_path / "o-missing", EvalConfig(max_images=1, **FAST))
    info = json.loads((tmp_path / "o-missing" / "metrics.json").read_text())["dataset_info"]
    assert info["size"] is None and info["counts"] is None
    assert "no dataset.json: not a `pix2pix build` output, so its settings are unknown" in info["warnings"]
    evaluate(run_dir, cases["old"], tmp_path / "o-old", EvalConfig(max_images=1, **FAST))
    info = json.loads((tmp_path / "o-old" / "metrics.json").read_text())["dataset_info"]
    assert (info["size"], info["counts"]) == (meta["size"], meta["counts"])
    assert not any("no dataset.json" in w for w in info["warnings"])
    with pytest.raises(DatasetError, match=r"broken/dataset.json: cannot be read as JSON"):
        evaluate(run_dir, cases["broken"], tmp_path / "o-broken", EvalConfig(max_images=1, **FAST))
    assert cli_main([str(run_dir), str(cases["newer"]), str(tmp_path / "o-newer"), "--threads", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "newer/dataset.json: format_version 99 is newer" in err
    assert not (tmp_path / "o-broken").exists() and not (tmp_path / "o-newer").exists()


def test_image_rows_worst_first(inpaint_report):
    parser = _Links()
    parser.feed((inpaint_report / "report.html").read_text(encoding="utf-8"))
    shown = [Path(unquote(x)).stem for x in parser.links if x.startswith("images/")]
    l1 = {r["id"]: float(r["L1"]) for r in csv.DictReader((inpaint_report / "per_image.csv").open())}
    assert sorted(shown) == sorted(l1)
    assert [l1[i] for i in shown] == sorted(l1.values(), reverse=True)
    assert len(set(l1.values())) > 1  # the order is a real test


def test_cli_params_section_and_flags_win(run_dir, ds, tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("evaluate:\n  split: val\n  eval_mode: eval\n  max_images: 1\n  num_threads: 1\n")
    out = tmp_path / "out"
    assert cli_main([str(run_dir), str(ds), str(out), "--params", str(params)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert (m["split"], m["eval_mode"], m["count"]) == ("val", "eval", 1)
    assert "baseline identity" in capsys.readouterr().out
    assert cli_main([str(run_dir), str(ds), str(out), "--params", str(params), "--split", "test",
                     "--max-images", "2", "--overwrite"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert (m["split"], m["eval_mode"], m["count"]) == ("test", "eval", 2)
    params.write_text("evaluate:\n  splitt: val\n")
    assert cli_main([str(run_dir), str(ds), str(tmp_path / "o2"), "--params", str(params)]) == 2
    assert "splitt" in capsys.readouterr().err
