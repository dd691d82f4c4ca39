"""The `pix2pix` command: exit codes, messages, --help, and a fast start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from imgutil import noise, save

from pix2pix.cli import main, make_parser


def test_build_then_inspect_then_tamper(tmp_path: Path, capsys) -> None:
    src = tmp_path / "src"
    for i in range(5):
        save(src / f"p{i}.jpg", noise(80, 100, i), quality=95)
    (src / "notes.txt").write_text("not a photo")
    out = tmp_path / "ds"
    assert main(["build", str(src), str(out), "--size", "64", "--op", "grayscale", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"dataset: {out}" in printed and "pairs: 5" in printed and "rejected: 1 (not an image: 1)" in printed

    assert main(["inspect", str(out)]) == 0
    assert "pairs: 5" in capsys.readouterr().out

    rec = json.loads((out / "manifest.jsonl").read_text().splitlines()[2])
    path = out / rec["path"]
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    save(out / "train" / "stray.jpg", noise(64, 100, 9))
    assert main(["inspect", str(out)]) == 1
    report = capsys.readouterr().out
    assert f"{rec['path']}: sha256" in report
    assert "train/stray.jpg: 100x64 is not an A|B pair" in report
    assert "train/stray.jpg: image not listed in manifest.jsonl" in report


def test_build_errors_exit_1_with_message(tmp_path: Path, capsys) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "x.jpg").write_bytes(b"")
    assert main(["build", str(src), str(tmp_path / "o"), "--no-progress"]) == 1
    assert "error: no usable pair" in capsys.readouterr().err
    assert main(["build", str(tmp_path / "nope"), str(tmp_path / "o")]) == 1
    assert "nope: source does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["build", str(src), str(tmp_path / "o"), "--fit", "zoom"])
    assert exc.value.code == 2


def test_every_command_help_has_examples(capsys) -> None:
    parser = make_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - introspecting argparse
    assert set(commands) == {"build", "inspect", "samples", "train", "evaluate", "serve", "translate", "export"}
    for name in commands:
        with pytest.raises(SystemExit):
            main([name, "--help"])
        text = capsys.readouterr().out
        assert "examples:" in text and f"pix2pix {name}" in text


def test_cli_starts_without_importing_torch() -> None:
    code = (
        "import sys; from pix2pix.cli import make_parser; make_parser(); "
        "print(sorted(m for m in ('torch', 'prefect', 'dvc') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_samples_command_writes_real_photos(tmp_path: Path) -> None:
    assert main(["samples", str(tmp_path / "s")]) == 0
    jpgs = sorted(p.name for p in (tmp_path / "s").glob("*.jpg"))
    assert len(jpgs) == 12 and "chelsea.jpg" in jpgs
    assert "CC0" in (tmp_path / "s" / "LICENSES.txt").read_text()


def test_build_reads_params_yaml_and_flags_win(tmp_path: Path, capsys) -> None:
    src = tmp_path / "src"
    for i in range(3):
        save(src / f"p{i}.jpg", noise(50, 50, i), quality=95)
    params = tmp_path / "params.yaml"
    params.write_text(
        f"build:\n  source: {src}\n  out: {tmp_path / 'ds'}\n  op: edges\n  size: 32\n  split: [1.0, 0.0, 0.0]\n"
    )
    assert main(["build", "--params", str(params), "--size", "48", "--no-progress"]) == 0
    meta = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert (meta["config"]["op"], meta["size"], meta["counts"]["train"]) == ("edges", 48, 3)

    params.write_text("train: {}\n")
    assert main(["build", "--params", str(params)]) == 2  # a config error: the same code from every command
    assert "no `build:` section" in capsys.readouterr().err
    params.write_text("build:\n  sise: 3\n")
    assert main(["build", str(src), str(tmp_path / "x"), "--params", str(params)]) == 2
    assert "unknown build setting(s) sise" in capsys.readouterr().err


def test_one_params_rule_for_every_stage(tmp_path: Path, capsys) -> None:
    """params section < --set < flags < positional paths, the same in train and translate."""
    from pix2pix.cli.train import add_train_parser
    from pix2pix.cli.train import build_config as train_config
    from pix2pix.params import stage_values

    params = tmp_path / "params.yaml"
    params.write_text("train:\n  lr: 0.001\n  ngf: 8\n  seed: 3\n"
                      "translate:\n  eval_mode: sideways\n"
                      "paths:\n  dataset: d\n")
    sub = make_parser()._subparsers._group_actions[0]
    args = sub.choices["train"].parse_args(["ds", "run", "--params", str(params), "--set", "ngf=12", "--seed", "5"])
    cfg = train_config(args)
    assert (cfg.lr, cfg.ngf, cfg.seed) == (0.001, 12, 5)
    assert callable(add_train_parser)
    values = stage_values(params, "paths", flags={"dataset": "flag"}, positional={"dataset": "pos", "out": None})
    assert values == {"dataset": "pos"}
    # translate reads its own section; a bad value there is a usage error naming the key
    code = main(["translate", str(tmp_path / "none.pt"), str(tmp_path), "--out", str(tmp_path / "o"),
                 "--params", str(params)])
    assert code == 2 and "eval_mode" in capsys.readouterr().err
    code = main(["translate", str(tmp_path / "none.pt"), str(tmp_path), "--out", str(tmp_path / "o"),
                 "--params", str(params), "--params-section", "paths"])
    assert code == 2 and "unknown setting(s) dataset" in capsys.readouterr().err
    assert main(["train", "ds", "run", "--set", "lr"]) == 2
    assert "--set: expected KEY=VALUE" in capsys.readouterr().err


def test_every_help_points_to_the_one_exit_code_table(capsys) -> None:
    parser = make_parser()
    assert "exit codes (every command and flow)" in parser.format_help()
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        text = sub.format_help()
        assert "examples:" in text and "exit codes" in text and "`pix2pix --help`" in text, name


def test_help_examples_with_the_repos_params_yaml_find_their_section() -> None:
    # An example `pix2pix CMD ... --params params.yaml` must work from the repository root: the
    # section exists and makes that command's config (translate's example once had no section).
    from pix2pix.evaluation.evaluate import EvalConfig
    from pix2pix.inference.translate import TranslateConfig
    from pix2pix.params import make_config, read_section
    from pix2pix.prepare.config import BuildConfig
    from pix2pix.training.config import TrainConfig

    root = Path(__file__).resolve().parents[1]
    configs = {"build": BuildConfig, "train": TrainConfig, "evaluate": EvalConfig, "translate": TranslateConfig}
    parser = make_parser()
    seen = set()
    for name, sub in parser._subparsers._group_actions[0].choices.items():  # noqa: SLF001
        for line in sub.format_help().splitlines():
            if line.strip().startswith(f"pix2pix {name} ") and "--params params.yaml" in line:
                values = read_section(root / "params.yaml", name)
                assert values, (name, line)
                if name == "build":  # SOURCE and OUT come from the command line
                    values = {**values, "source": "photos", "out": "data/x"}
                make_config(configs[name], values, name)
                seen.add(name)
    assert "translate" in seen
