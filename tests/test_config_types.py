"""Every stage config checks each value against its field's type before using it
(`pix2pix.params.check_field_types`): a wrong type given in --params, --set, a flag or a flow's
--option is one `error:` line naming the key, the value and the type, exit 2, nothing written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from imgutil import noise, save

from pix2pix.cli import main
from pix2pix.errors import ConfigError
from pix2pix.evaluation.evaluate import EvalConfig
from pix2pix.inference.translate import TranslateConfig
from pix2pix.prepare.config import BuildConfig
from pix2pix.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def _photos(folder: Path) -> Path:
    for i in range(3):
        save(folder / f"p{i}.png", noise(64, 64, i))
    return folder


def _one_error_line(err: str, key: str, value: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {key}: expected "), lines[0]
    assert value in lines[0] and "Traceback" not in err


BUILD_BAD = [
    ("quality", "abc", "an integer"),
    ("inpaint_fraction", "abc", "a number"),
    ("workers", "two", "an integer"),
    ("seed", "abc", "an integer"),
    ("seed", "1.5", "an integer"),
    ("seed", "true", "an integer"),  # True is an int in Python; not a seed
    ("size", "'256'", "an integer"),
    ("resplit", "'yes'", "true or false"),
    ("resplit", "1", "true or false"),
    ("pad_color", "[1.5, 2, 3]", "a list of 3 integers"),
    ("split", "[true, 0, 0]", "a list of 3 numbers"),
    ("min_side", "1.5", "an integer or null"),
    ("op", "[inpaint]", "a string"),
    ("edge_sigma", ".nan", "a number"),
]


@pytest.mark.parametrize(("key", "value", "expected"), BUILD_BAD)
def test_build_refuses_a_wrong_type_in_params(tmp_path: Path, capsys, key: str, value: str, expected: str) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(f"build:\n  {key}: {value}\n")
    out = tmp_path / "out"
    assert main(["build", str(_photos(tmp_path / "src")), str(out), "--params", str(params), "--no-progress"]) == 2
    err = capsys.readouterr().err
    _one_error_line(err, key, f"expected {expected}, got ")
    assert "`build:` section of --params" in err
    assert not out.exists() and not list(tmp_path.glob("out*"))  # nothing written, no staging, no rejected list


def test_build_type_error_through_the_real_command(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("build:\n  quality: abc\n")
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "pix2pix.cli", "build", str(_photos(tmp_path / "src")), str(out),
                          "--params", str(params), "--no-progress"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2, run.stderr
    assert run.stderr.splitlines() == [
        "error: quality: expected an integer, got 'abc' (a string); fix it in the `build:` section of --params, "
        "its `pix2pix build` flag or the flow's --option KEY=VALUE"]
    assert not out.exists()


@pytest.mark.parametrize(("option", "key", "value"), [
    ("quality=abc", "quality", "'abc'"),
    ("inpaint_fraction=abc", "inpaint_fraction", "'abc'"),
    ("edge_min_component=true", "edge_min_component", "True"),
    ("max_pixels=2.5", "max_pixels", "2.5"),
])
def test_build_flow_refuses_a_wrong_type_before_prefect_starts(tmp_path: Path, capsys, option: str, key: str,
                                                               value: str) -> None:
    import flows.build_dataset as bd

    out = tmp_path / "out"
    assert bd.main([str(_photos(tmp_path / "src")), str(out), "--option", option]) == 2
    _one_error_line(capsys.readouterr().err, key, f"got {value} (")
    assert not out.exists()


def test_build_flow_refuses_a_wrong_type_of_its_own_parameters_from_params(tmp_path: Path, capsys) -> None:
    """`workers: two` in --params went to Prefect's parameter validation (exit 1, its wording)."""
    import flows.build_dataset as bd

    params = tmp_path / "params.yaml"
    params.write_text("build:\n  workers: two\n")
    assert bd.main([str(_photos(tmp_path / "src")), str(tmp_path / "out"), "--params", str(params)]) == 2
    _one_error_line(capsys.readouterr().err, "workers", "'two'")
    params.write_text("build:\n  chunk_size: many\n")
    assert bd.main([str(tmp_path / "src"), str(tmp_path / "out"), "--params", str(params)]) == 2
    assert "error: chunk_size: expected 1 or more images per task, got 'many'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_flow_options_keep_their_json_and_text_forms() -> None:
    import inspect

    from flows.build_dataset import _parse_options, build_dataset_flow, flow_config, flow_kwargs

    options = _parse_options(["quality=90", "pad_color=0,0,0", "inpaint_fill=#ff0000", "min_side=null",
                              "inpaint_position=random", "edge_sigma=1", "max_pixels=1e6"])
    kw = flow_kwargs({"source": "s", "out": "o", "swap": True}, options)
    bound = inspect.signature(build_dataset_flow.fn).bind(**kw)
    bound.apply_defaults()
    cfg = flow_config(bound.arguments)
    assert (cfg.quality, cfg.pad_color, cfg.inpaint_fill, cfg.min_side) == (90, (0, 0, 0), (255, 0, 0), None)
    assert (cfg.inpaint_position, cfg.edge_sigma, cfg.max_pixels, cfg.swap) == ("random", 1.0, 1_000_000, True)
    assert type(cfg.edge_sigma) is float and type(cfg.max_pixels) is int


TRAIN_BAD = [
    ("lr", "fast", "a number"),
    ("n_epochs", "1.5", "an integer"),
    ("batch_size", "true", "an integer"),
    ("dropout", "'yes'", "true or false"),
    ("ngf", "[16]", "an integer"),
    ("lambda_l1", ".inf", "a number"),
    ("device", "0", "a string"),
]


@pytest.mark.parametrize(("key", "value", "expected"), TRAIN_BAD)
def test_train_refuses_a_wrong_type(tmp_path: Path, capsys, key: str, value: str, expected: str) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(f"train:\n  {key}: {value}\n")
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "ds"), str(run), "--params", str(params), "--no-dvclive"]) == 2
    _one_error_line(capsys.readouterr().err, key, f"expected {expected}, got ")
    assert not run.exists()
    # --set reads YAML the same way: the same error
    assert main(["train", str(tmp_path / "ds"), str(run), "--set", f"{key}={value}", "--no-dvclive"]) == 2
    _one_error_line(capsys.readouterr().err, key, f"expected {expected}, got ")
    assert not run.exists()


EVAL_BAD = [
    ("seed", "true", "an integer"),
    ("batch_size", "2.5", "an integer"),
    ("split", "3", "a string"),
    ("eval_mode", "[model]", "a string"),  # was a TypeError (unhashable list) in check_eval_mode
    ("max_images", "'10'", "an integer"),
]


@pytest.mark.parametrize(("key", "value", "expected"), EVAL_BAD)
def test_evaluate_refuses_a_wrong_type(tmp_path: Path, capsys, key: str, value: str, expected: str) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(f"evaluate:\n  {key}: {value}\n")
    out = tmp_path / "report"
    assert main(["evaluate", str(tmp_path / "run"), str(tmp_path / "ds"), str(out), "--params", str(params)]) == 2
    _one_error_line(capsys.readouterr().err, key, f"expected {expected}, got ")
    assert not out.exists()


TRANSLATE_BAD = [
    ("fit", "'yes'", "true or false"),  # was accepted: any non-empty string meant fit
    ("tile", "512.5", "an integer"),
    ("seed", "false", "an integer"),
    ("eval_mode", "{}", "a string"),
    ("precision", "16", "a string"),
]


@pytest.mark.parametrize(("key", "value", "expected"), TRANSLATE_BAD)
def test_translate_refuses_a_wrong_type(tmp_path: Path, capsys, key: str, value: str, expected: str) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(f"translate:\n  {key}: {value}\n")
    out = tmp_path / "o"
    assert main(["translate", str(tmp_path / "none.pt"), str(tmp_path), "--out", str(out),
                 "--params", str(params)]) == 2
    _one_error_line(capsys.readouterr().err, key, f"expected {expected}, got ")
    assert not out.exists()


def test_the_rules_of_each_type() -> None:
    c = BuildConfig(source=Path("s"), out="o", size=256.0, edge_sigma=1, split=[1, 0, 0],
                    pad_color=[0, 0, 0.0], min_side=None)
    assert (c.source, c.size, c.edge_sigma, c.split, c.pad_color) == ("s", 256, 1.0, (1.0, 0.0, 0.0), (0, 0, 0))
    assert type(c.size) is int and type(c.edge_sigma) is float and type(c.pad_color[2]) is int
    assert json.loads(json.dumps(c.to_dict()))["split"] == [1.0, 0.0, 0.0]
    for bad in ({"seed": 1.5}, {"seed": True}, {"swap": 0}, {"swap": "true"}, {"split": (0.5, 0.5)},
                {"quality": None}, {"min_side": "1"}, {"inpaint_fraction": float("inf")}):
        key = next(iter(bad))
        with pytest.raises(ConfigError, match=f"^{key}: expected "):
            BuildConfig(source="s", out="o", **bad)
    assert TrainConfig.from_dict({"lr": 1, "ngf": 8.0}).lr == 1.0
    assert EvalConfig(seed=3.0).seed == 3
    with pytest.raises(ConfigError, match=r"^crop_size: expected an integer, got 'x' \(a string\)"):
        TrainConfig.from_dict({"crop_size": "x"})
    with pytest.raises(ConfigError, match=r"^fit: expected true or false, got 1 \(an integer\)"):
        TranslateConfig(fit=1)


def test_todays_params_and_documented_values_still_load() -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    build = BuildConfig.from_dict({"source": "s", "out": "o", **params["build"]})
    assert build.to_dict(for_output=True)["split"] == params["build"]["split"]
    assert build.inpaint_fraction == params["build"]["inpaint_fraction"] and build.workers == params["build"]["workers"]
    assert TrainConfig.from_dict(params["train"], dataset_size=build.size).lr == params["train"]["lr"]
    assert EvalConfig.from_dict(params["evaluate"]).seed == params["evaluate"]["seed"]
    # docs/flows.md's options example, README's text forms and training.md's --set example
    assert re.search(r'"quality": 90, "pad_color": "0,0,0"', (ROOT / "docs" / "flows.md").read_text())
    assert BuildConfig.from_dict({"source": "s", "out": "o", "quality": 90, "pad_color": "0,0,0",
                                  "split": "0.8,0.1,0.1", "inpaint_fill": "#ffffff"}).pad_color == (0, 0, 0)
    from pix2pix.params import parse_set

    assert TrainConfig.from_dict(parse_set(["lr=0.0001", "flip=false", "n_epochs=5"])).flip is False
    assert TranslateConfig(fit=True, tile=0, device="cpu", eval_mode="eval").tile == 0
