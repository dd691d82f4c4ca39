"""Contracts between the pieces: params.yaml ↔ config dataclasses ↔ dvc.yaml, and the library's imports."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from pix2pix.evaluation.evaluate import EvalConfig
from pix2pix.prepare.config import BuildConfig
from pix2pix.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_params_sections_load_into_the_stage_configs() -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    paths = params["paths"]
    build = BuildConfig.from_dict({"source": paths["samples"], "out": paths["dataset"], **params["build"]})
    assert build.op == params["build"]["op"] and build.size == params["build"]["size"]
    # The train stage follows the build's size (issue 10): generator and crop come from dataset.json.
    train = TrainConfig.from_dict(params["train"], dataset_size=build.size)
    want = params["train"].get("generator", f"unet_{build.size}")
    assert train.generator == want and train.ngf == params["train"]["ngf"]
    assert train.crop_size == build.size
    evaluate = EvalConfig.from_dict(params["evaluate"])
    assert evaluate.split == params["evaluate"]["split"] and evaluate.eval_mode == params["evaluate"]["eval_mode"]


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
        "import sys, pix2pix.prepare.build, pix2pix.prepare.verify, pix2pix.prepare.download, pix2pix.prepare.catalog, "
        "pix2pix.models, pix2pix.training, pix2pix.cli, pix2pix.params; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'dvc', 'dvclive')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
    for path in (ROOT / "pix2pix").rglob("*.py"):
        for line in path.read_text().splitlines():
            if line.startswith(("import ", "from ")):  # module level only; adapters import lazily
                assert not re.match(r"(from|import) (prefect|dvc|dvclive|flows)\b", line), f"{path}: {line}"



PACKAGES = ("pix2pix", "flows")
ADAPTERS = ("flows", "pix2pix.cli")  # thin layers over the library; the library never imports them
FORBIDDEN_IN_LIBRARY = ("prefect", "dvc", "dvclive", "prefect_dask", "dask", *ADAPTERS)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, tree: ast.AST | None = None) -> set[str]:
    """Every module `path` imports, at any depth of the file (function-level imports too);
    `tree`: only those in this part of the file."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    if tree is None:
        tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                head = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(head + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _is_under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _project_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps = set()
        for imp in _imports(path):
            while imp and imp not in files:
                imp = imp.rpartition(".")[0]
            if imp and imp != name and not (name.startswith(imp + ".") and files[imp].name == "__init__.py"):
                deps.add(imp)  # a module importing its own package's face is not an edge back
        graph[name] = deps
    return graph


def test_library_never_imports_an_adapter_or_prefect_or_dvc_at_any_depth() -> None:
    for path in (ROOT / "pix2pix").rglob("*.py"):
        name = _module_name(path)
        if _is_under(name, ADAPTERS):
            continue
        bad = sorted(m for m in _imports(path) if _is_under(m, FORBIDDEN_IN_LIBRARY))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}: the library must not import adapters"


STAGES = ("pix2pix.prepare", "pix2pix.training", "pix2pix.evaluation", "pix2pix.inference")


def _core_files() -> list[Path]:
    """The core: `pix2pix/*.py` and `pix2pix/models/`, what every stage builds on."""
    return sorted([*(ROOT / "pix2pix").glob("*.py"), *(ROOT / "pix2pix" / "models").rglob("*.py")])


def test_core_and_models_never_import_a_stage() -> None:
    """Dependencies run stages -> core: training, evaluation and inference all load generators
    through `pix2pix.models`, so models (like the rest of the core) import no stage, at any depth
    (issue 9: `models/io.py` once read our weights files through `training/checkpoint.py`)."""
    files = _core_files()
    rel = {p.relative_to(ROOT).as_posix() for p in files}
    assert {"pix2pix/models/io.py", "pix2pix/models/weights.py", "pix2pix/errors.py"} <= rel
    bad = {p.relative_to(ROOT).as_posix(): found for p in files
           if (found := sorted(m for m in _imports(p) if _is_under(m, STAGES + ADAPTERS)))}
    assert bad == {}, f"core modules import a stage or adapter (move what they need down): {bad}"


def test_flows_never_import_the_cli() -> None:
    for path in (ROOT / "flows").rglob("*.py"):
        bad = sorted(m for m in _imports(path) if _is_under(m, ("pix2pix.cli",)))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}: dependencies run cli -> flows -> library"


def test_no_import_cycles() -> None:
    graph = _project_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 100
SIZE_WAIVER = re.compile(r"^# size: \S", re.M)  # `# size: <why>` at column 0 exempts a file


def _size_offenders(path: Path) -> list[str]:
    src = path.read_text()
    if SIZE_WAIVER.search(src):
        return []
    found = []
    lines = len(src.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(f"{lines} lines (module)")
    for node in ast.walk(ast.parse(src, filename=str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > MAX_FUNCTION_LINES:
                found.append(f"{node.name}(): {n} lines")
    return found


def test_modules_and_functions_stay_readable_sizes() -> None:
    offenders = {str(p.relative_to(ROOT)): found for pkg in PACKAGES
                 for p in sorted((ROOT / pkg).rglob("*.py")) if (found := _size_offenders(p))}
    assert offenders == {}, (
        f"over {MAX_MODULE_LINES} lines a module or {MAX_FUNCTION_LINES} a function: {offenders}; "
        f"split it, or say why not in a `# size: <why>` comment")


def test_the_size_check_sees_functions_and_modules_and_honours_a_reason(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    long_fn = tmp_path / "long_fn.py"
    long_fn.write_text(f"def f():\n{body}")
    assert _size_offenders(long_fn) == [f"f(): {MAX_FUNCTION_LINES + 1} lines"]
    long_module = tmp_path / "long_module.py"
    long_module.write_text("".join(f"y{i} = {i}\n" for i in range(MAX_MODULE_LINES + 1)))
    assert _size_offenders(long_module) == [f"{MAX_MODULE_LINES + 1} lines (module)"]
    long_module.write_text("# size: one table, read as a whole\n" + long_module.read_text())
    assert _size_offenders(long_module) == []


def _imports_in(path: Path, keep: Callable[[str], bool]) -> set[str]:
    """Module-level imports of `path` plus those inside the top-level functions `keep` accepts."""
    tree = ast.parse(path.read_text(), filename=str(path))
    body = [n for n in tree.body
            if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) or keep(n.name)]
    return _imports(path, ast.Module(body=body, type_ignores=[]))


def _is_command_module(path: Path) -> bool:
    """A CLI module of a command (it adds that command's parser), as opposed to shared code."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return any(isinstance(n, ast.FunctionDef) and re.fullmatch(r"add_\w*parsers?", n.name)
               for n in tree.body)


def _stage_code(command: str) -> set[str]:
    """Project files `python -m pix2pix.cli COMMAND` runs: every import reachable from the
    command (function-level ones too), the CLI's shared code, and each module's packages.

    In the CLI only what the command runs counts: the other commands' modules are loaded for
    their parsers (module level and `add_*` functions), not for their run functions.
    """
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    own = f"pix2pix.cli.{command}"
    todo, seen = ["pix2pix.cli.__main__", "pix2pix.cli", own], set()
    while todo:
        name = todo.pop()
        if name in seen or name not in files:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # packages run their __init__
        path = files[name]
        if name == "pix2pix.cli":  # the in-package commands are `_run_<command>` functions
            imports = _imports_in(path, lambda f: not f.startswith("_run_") or f == f"_run_{command}")
        elif _is_under(name, ("pix2pix.cli",)) and name != own and _is_command_module(path):
            imports = _imports_in(path, lambda f: f.startswith("add_"))
        else:
            imports = _imports(path)
        for imp in imports:
            while imp and imp not in files:
                imp = imp.rpartition(".")[0]
            if imp:
                todo.append(imp)
    return {str(files[n].relative_to(ROOT)) for n in seen}


def test_every_dvc_stage_depends_on_the_code_it_runs() -> None:
    """A change to any file a stage imports re-runs the stage (dvc.yaml `deps`)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    missing = {}
    for name, stage in stages.items():
        m = re.match(r"python -m pix2pix\.cli (\w+)", " ".join(stage["cmd"].split()))
        assert m, f"stage {name}: expected a `python -m pix2pix.cli COMMAND` command"
        deps = [d.rstrip("/") for d in stage.get("deps", []) if not d.startswith("${")]
        uncovered = sorted(f for f in _stage_code(m.group(1))
                           if not any(f == d or f.startswith(d + "/") for d in deps))
        if uncovered:
            missing[name] = uncovered
    assert missing == {}, f"dvc.yaml stages miss deps on code they run: {missing}"


def test_stage_code_follows_function_level_imports() -> None:
    train = _stage_code("train")
    # cli/train.py imports the DVCLive adapter and the library inside functions
    assert {"flows/dvclive_logger.py", "pix2pix/training/loop.py", "pix2pix/training/__init__.py",
            "pix2pix/cli/__init__.py", "pix2pix/models/unet.py"} <= train
    assert "pix2pix/prepare/build.py" not in train  # another command's run function
    assert "pix2pix/prepare/samples.py" in _stage_code("samples")


def test_dataset_file_names_are_spelled_only_by_the_contract_module() -> None:
    """`pix2pix/dataset.py` owns the dataset's files: their names (`dataset.MANIFEST`, ...) and
    readers (`read_manifest`, `read_meta`, `read_jsonl`). A module spelling a name itself is how a
    second reader with its own rules starts (evaluate once parsed dataset.json on its own)."""
    from pix2pix import dataset

    names = {dataset.MANIFEST, dataset.DATASET_JSON, dataset.REJECTED, dataset.NEAR_DUPLICATES, dataset.PREVIEW}
    # translate writes its own OUT/rejected.jsonl (its output, not a dataset's)
    allowed = {("pix2pix/inference/translate.py", dataset.REJECTED)}
    found = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "pix2pix/dataset.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and node.value in names and (rel, node.value) not in allowed:
                    found.append(f"{rel}:{node.lineno} {node.value!r}")
    assert found == [], f"use the names and readers of pix2pix.dataset: {found}"
