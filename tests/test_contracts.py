"""Contracts between the pieces: params.yaml ↔ config dataclasses ↔ dvc.yaml, and the library's imports."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from pix2pix.config import BuildConfig
from pix2pix.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_params_sections_load_into_the_stage_configs() -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    paths = params["paths"]
    build = BuildConfig.from_dict({"source": paths["samples"], "out": paths["dataset"], **params["build"]})
    assert build.op == params["build"]["op"] and build.size == params["build"]["size"]
    train = TrainConfig.from_dict(params["train"])
    assert train.generator == params["train"]["generator"] and train.ngf == params["train"]["ngf"]


def test_dvc_stages_declare_their_own_params_and_spell_paths_once() -> None:
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    stages = dvc["stages"]
    assert list(stages) == ["samples", "build", "train", "evaluate"]
    for name in ("build", "train", "evaluate"):
        assert stages[name]["params"] == [name]  # a stage reads only its own section
    text = (ROOT / "dvc.yaml").read_text()
    for value in params["paths"].values():
        assert value not in text, f"{value} is spelled in dvc.yaml; use ${{paths.…}}"
    for ref in re.findall(r"\$\{paths\.(\w+)\}", text):
        assert ref in params["paths"]
    for stage in stages.values():  # every code dependency exists
        for dep in stage.get("deps", []):
            if "${" not in dep:
                assert (ROOT / dep).exists(), dep


def test_library_imports_neither_prefect_nor_dvc() -> None:
    code = (
        "import sys, pix2pix.build, pix2pix.inspect, pix2pix.download, pix2pix.datasets_catalog, "
        "pix2pix.models, pix2pix.training, pix2pix.cli, pix2pix.params; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'dvc', 'dvclive')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
    for path in (ROOT / "pix2pix").rglob("*.py"):
        for line in path.read_text().splitlines():
            if line.startswith(("import ", "from ")):  # module level only; adapters import lazily
                assert not re.match(r"(from|import) (prefect|dvc|dvclive|flows)\b", line), f"{path}: {line}"
