"""Hostile inputs and faults (issue 8): nothing escapes its folder, no input is deleted, two runs
never write one output, every failure is one `error:` line with a documented exit code.

All on real files and real processes; disk full is the one simulated fault.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dsfactory import make_dataset
from imgutil import manifest, noise, save, tree_hashes
from prefect_fixtures import prefect_harness  # noqa: F401 - session fixture, used by name

from pix2pix.atomic import atomic_path, atomic_write_text, claim, lock, release
from pix2pix.cli import main as cli_main
from pix2pix.errors import (
    EXIT_FAILED,
    EXIT_IO,
    EXIT_USAGE,
    OutputLockedError,
    OutputOverlapError,
    UnsafePathError,
)
from pix2pix.paths import check_disjoint, relation, safe_join
from pix2pix.prepare.config import BuildConfig

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ["--source-type", "folder"]  # noise photos: tell detection they are single photos


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def photos(folder: Path, n: int = 4) -> Path:
    for i in range(n):
        save(folder / f"img{i}.jpg", noise(80, 100, i), quality=95)
    return folder


def cfg(src: Path, out: Path, **kw) -> BuildConfig:
    kw.setdefault("size", 64)
    kw.setdefault("progress", False)
    return BuildConfig(source=str(src), out=str(out), **kw)


def tiny_generator(path: Path) -> Path:
    """A real generator.pt (unet_128, ngf 4, untrained): what evaluate loads."""
    from pix2pix.models import build_generator
    from pix2pix.training.checkpoint import atomic_save, generator_payload

    config = {"generator": "unet_128", "ngf": 4, "norm": "batch", "dropout": True, "size": 128,
              "direction": "AtoB", "eval_mode": "eval"}
    G = build_generator("unet_128", ngf=4, norm="batch", dropout=True, in_channels=3, out_channels=3)
    atomic_save(generator_payload(G, config, step=0, epoch=0, fingerprint="x"), path)
    return path


# --------------------------------------------------------------------------- 1. paths from data


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "C:\\x", "C:/x", "\\\\host\\x",
                                  "..\\..\\x", "", "a\0b"])
def test_safe_join_refuses_names_that_leave_the_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafePathError, match="manifest.jsonl:3"):
        safe_join(tmp_path, name, what="manifest.jsonl:3: id")


def test_safe_join_accepts_names_inside_and_refuses_a_symlink_out(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "train/a:b.jpg", what="x") == tmp_path / "train" / "a:b.jpg"
    (tmp_path / "out").mkdir()
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path / "out")
    with pytest.raises(UnsafePathError, match="symlink"):
        safe_join(tmp_path / "root", "link/owned.png", what="x")


def test_evaluate_refuses_a_manifest_id_that_climbs_out(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "deep" / "er" / "ds", n_train=1, n_val=0, n_test=2, size=128)
    lines = (ds / "manifest.jsonl").read_text().splitlines()
    rec = json.loads(lines[1])
    rec["id"] = "../../../x/owned"
    lines[1] = json.dumps(rec)
    (ds / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    gen = tiny_generator(tmp_path / "gen.pt")
    out = tmp_path / "deep" / "er" / "report"
    code = cli_main(["evaluate", str(gen), str(ds), str(out), "--threads", "1", "--device", "cpu"])
    assert code == EXIT_FAILED
    assert not any(p.name == "owned.png" for p in tmp_path.rglob("*")), "wrote outside the report"
    assert not out.exists()


def test_manifest_path_outside_the_dataset_is_refused_naming_the_line(tmp_path: Path) -> None:
    from pix2pix.training.data import read_manifest

    ds = make_dataset(tmp_path / "ds", n_train=2, n_val=0)
    lines = (ds / "manifest.jsonl").read_text().splitlines()
    rec = json.loads(lines[1])
    rec["path"] = "../secret.jpg"
    lines[1] = json.dumps(rec)
    (ds / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(UnsafePathError, match=r"manifest.jsonl:2: path: '\.\./secret.jpg'"):
        read_manifest(ds)


# --------------------------------------------------------------------------- 2. never delete inputs


def test_relation_resolves_symlinks_and_parents(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "alias").symlink_to(tmp_path / "a")
    assert relation(tmp_path / "alias", tmp_path / "a") == "is"
    assert relation(tmp_path / "alias" / "b" / "new", tmp_path / "a") == "inside"
    assert relation(tmp_path, tmp_path / "alias" / "b") == "contains"
    assert relation(tmp_path / "a2", tmp_path / "a") is None
    with pytest.raises(OutputOverlapError, match="SOURCE"):
        check_disjoint(tmp_path / "alias" / "x", {"SOURCE": tmp_path / "a"})


@pytest.mark.parametrize("where", ["same", "parent", "inside", "via symlink"])
def test_build_overwrite_never_deletes_the_source(tmp_path: Path, where: str, capsys) -> None:
    src = photos(tmp_path / "p" / "photos")
    before = tree_hashes(src)
    out = {"same": src, "parent": src.parent, "inside": src / "out", "via symlink": tmp_path / "alias"}[where]
    if where == "via symlink":
        out.symlink_to(src)
    code = cli_main(["build", str(src), str(out), "--overwrite", "--size", "64", *FOLDER])
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: OUT") and "SOURCE" in err and "Traceback" not in err
    assert tree_hashes(src) == before
    assert [p.name for p in tmp_path.rglob(".*")] == []  # no staging, no lock left


def test_evaluate_refuses_out_at_or_around_its_dataset_or_run(tmp_path: Path, capsys) -> None:
    ds = make_dataset(tmp_path / "ds", n_train=1, n_val=0, n_test=1, size=128)
    run = tmp_path / "run"
    run.mkdir()
    tiny_generator(run / "generator.pt")
    before = {**tree_hashes(ds), **{f"run/{k}": v for k, v in tree_hashes(run).items()}}
    for out in (ds, ds / "report", tmp_path, run):
        code = cli_main(["evaluate", str(run), str(ds), str(out), "--overwrite", "--threads", "1"])
        assert code == EXIT_USAGE, out
        assert "error: OUT" in capsys.readouterr().err
    assert {**tree_hashes(ds), **{f"run/{k}": v for k, v in tree_hashes(run).items()}} == before
    # The documented layout, a report inside the run folder, is allowed.
    assert cli_main(["evaluate", str(run), str(ds), str(run / "eval"), "--threads", "1"]) == 0
    assert (run / "eval" / "metrics.json").is_file() and (run / "generator.pt").is_file()


def test_train_refuses_a_run_folder_at_or_around_the_dataset(tmp_path: Path, capsys) -> None:
    ds = make_dataset(tmp_path / "ds", n_train=2, n_val=0, size=128)
    before = tree_hashes(ds)
    for run in (ds, ds / "run", tmp_path):
        code = cli_main(["train", str(ds), str(run), "--preset", "small", "--generator", "unet_128",
                         "--size", "128", "--epochs", "1", "--epochs-decay", "0", "--no-dvclive",
                         "--no-progress", "--workers", "0"])
        assert code == EXIT_USAGE, run
        assert "error: RUN_DIR" in capsys.readouterr().err
    assert tree_hashes(ds) == before


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_flow_parameter_cannot_delete_a_folder(tmp_path: Path, capsys) -> None:
    """What the served API passes: out = a parent of the source folder, overwrite on."""
    import flows.build_dataset as bd

    src = photos(tmp_path / "data" / "photos")
    before = tree_hashes(src)
    assert bd.main([str(src), str(tmp_path / "data"), "--overwrite", "--size", "64", *FOLDER]) == EXIT_USAGE
    assert "contains SOURCE" in capsys.readouterr().err
    assert tree_hashes(src) == before


# --------------------------------------------------------------------------- 3. one writer per OUT


def test_lock_is_exclusive_names_the_holder_and_is_released(tmp_path: Path) -> None:
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pix2pix.atomic import lock
            lock({str(out)!r}); print("locked", flush=True); time.sleep(60)
        """)], env=env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputLockedError, match=rf"another run is writing it \(pid {holder.pid}"):
            lock(out)
        with pytest.raises(OutputLockedError):
            claim(out, inputs={}, overwrite=True, marker="dataset.json")
        src = photos(tmp_path / "src", 2)
        r = subprocess.run([sys.executable, "-m", "pix2pix.cli", "build", str(src), str(out), "--size", "64", *FOLDER],
                           env=env(), capture_output=True, text=True, timeout=60)
        assert r.returncode == EXIT_IO
        assert r.stderr.strip().splitlines() == [
            f"error: {out}: another run is writing it (pid {holder.pid}, lock {tmp_path / '.out.lock'}); "
            f"wait for it to finish or choose another output folder"]
        assert not out.exists()
    finally:
        holder.kill()  # kill -9: the kernel drops the lock
        holder.wait()
    lock(out)  # free again
    with pytest.raises(OutputLockedError, match="this process"):
        lock(out)
    release(out)
    assert not (tmp_path / ".out.lock").exists()


def test_atomic_path_replaces_on_success_and_leaves_the_old_file_on_any_failure(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    atomic_write_text(target, "old\n")
    for fault in (ValueError("bad"), KeyboardInterrupt()):
        with pytest.raises(type(fault)), atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".metrics.json.tmp-")
            tmp.write_text("half")
            raise fault
        assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    with atomic_path(target) as a, atomic_path(target) as b:  # two writers never share a name
        assert a != b
        a.write_text("a")
        b.write_text("b")
    assert target.read_text() == "a" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


@pytest.mark.slow
def test_two_builds_into_one_out_never_mix(tmp_path: Path) -> None:
    """Two real `pix2pix build` processes into one OUT: one wins, the other is refused."""
    a = photos(tmp_path / "a", 6)
    b = tmp_path / "b"
    for i in range(6):
        save(b / f"other{i}.jpg", noise(80, 100, 100 + i), quality=95)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pix2pix.cli", "build"]
    procs = [subprocess.Popen([*cmd, str(s), str(out), "--size", "64", "--overwrite", "--no-progress", *FOLDER],
                              env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for s in (a, b)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    codes = sorted(c for c, _ in results)
    # Both may succeed one after the other; if they overlapped, the second is refused.
    assert codes in ([0, 0], [0, EXIT_IO]), results
    for code, err in results:
        if code == EXIT_IO:
            assert err.strip().splitlines()[-1].startswith("error: ") and "another run is writing it" in err
            assert "Traceback" not in err
    ids = {r["id"] for r in manifest(out)}
    assert ids in ({f"img{i}" for i in range(6)}, {f"other{i}" for i in range(6)})
    assert sorted(p.name for p in out.rglob("*.jpg") if p.parent.name in ("train", "val", "test")) == \
        sorted(f"{i}.jpg" for i in ids)


# --------------------------------------------------------------------------- 6. one line, one code


def test_disk_full_is_one_line_naming_the_file(tmp_path: Path, monkeypatch, capsys) -> None:
    """ENOSPC (simulated: the one fault a test cannot cause on this disk) while writing."""
    import pix2pix.dataset as contract

    src = photos(tmp_path / "src", 3)
    full = tmp_path / ".out.partial" / "manifest.jsonl"

    def no_space(path, rows):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(full))

    monkeypatch.setattr(contract, "write_jsonl", no_space)
    assert cli_main(["build", str(src), str(tmp_path / "out"), "--size", "64", *FOLDER]) == EXIT_IO
    err = capsys.readouterr().err
    assert err.splitlines() == [f"error: {full}: disk full; free space on that disk (or choose an output "
                                "on another one) and run again"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no staging, no lock, no OUT


def test_checkpoint_write_failure_is_an_io_error(tmp_path: Path, monkeypatch) -> None:
    import torch

    from pix2pix.errors import exit_code
    from pix2pix.training.checkpoint import CheckpointWriteError, atomic_save

    def fail(obj, f):
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(CheckpointWriteError, match="disk full or read-only") as e:
        atomic_save({"x": 1}, tmp_path / "ckpt-1.pt")
    assert exit_code(e.value) == EXIT_IO and list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_is_one_line(tmp_path: Path, capsys) -> None:
    src = photos(tmp_path / "src", 2)
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        assert cli_main(["build", str(src), str(parent / "out"), "--size", "64", *FOLDER]) == EXIT_IO
    finally:
        parent.chmod(0o755)
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "permission denied" in err


def test_help_documents_the_exit_codes(capsys) -> None:
    from pix2pix.errors import EXIT_CODES_HELP

    with pytest.raises(SystemExit):
        cli_main(["--help"])
    out = capsys.readouterr().out
    assert EXIT_CODES_HELP.splitlines()[1].strip() in out and "130  interrupted" in out
    readme = (ROOT / "README.md").read_text()
    assert all(f"| {code} |" in readme for code in (0, 1, 2, 3, 4, 5, 130))


def test_overwrite_replaces_only_an_earlier_output_of_the_same_command(tmp_path: Path) -> None:
    """A mistyped OUT (or a flow parameter) must not delete a folder that is not ours."""
    from pix2pix.atomic import claim, release
    from pix2pix.errors import OutputExistsError

    theirs = tmp_path / "holiday-photos"
    theirs.mkdir()
    (theirs / "beach.jpg").write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match=r"no dataset.json in it.*will not delete it"):
        claim(theirs, inputs={"SOURCE": tmp_path / "src"}, overwrite=True, marker="dataset.json")
    assert (theirs / "beach.jpg").read_bytes() == b"precious"

    ours = tmp_path / "ds"
    ours.mkdir()
    (ours / "dataset.json").write_text("{}")
    claim(ours, inputs={"SOURCE": tmp_path / "src"}, overwrite=True, marker="dataset.json")
    release(ours)
    empty = tmp_path / "empty"
    empty.mkdir()
    claim(empty, inputs={"SOURCE": tmp_path / "src"}, overwrite=False, marker="dataset.json")
    release(empty)
    # What `dvc repro` leaves of a stage's folder before re-running it: DVC's .gitignore only.
    dvc_left = tmp_path / "report"
    dvc_left.mkdir()
    (dvc_left / ".gitignore").write_text("/images\n/report.html\n")
    claim(dvc_left, inputs={"SOURCE": tmp_path / "src"}, overwrite=False, marker="metrics.json")
    release(dvc_left)


def test_a_symlinked_out_is_refused_and_a_leftover_old_link_does_not_break_publishing(tmp_path: Path) -> None:
    """OUT as a link used to be replaced by the dataset, leaving `.OUT.old -> target` behind,
    after which every `--overwrite` build into OUT failed with "Not a directory"."""
    from pix2pix.atomic import publish, sibling
    from pix2pix.errors import OutputExistsError

    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(OutputExistsError, match=r"is a symbolic link .*give the folder itself"):
        claim(link, inputs={}, overwrite=True, marker="dataset.json")
    assert link.is_symlink() and list(real.iterdir()) == []

    out = tmp_path / "out"
    out.mkdir()
    sibling(out, "old").symlink_to(real)  # what the old code left behind
    staging = tmp_path / ".out.tmp"
    staging.mkdir()
    (staging / "dataset.json").write_text("{}")
    publish(staging, out)
    assert (out / "dataset.json").is_file() and not sibling(out, "old").exists()
    assert not sibling(out, "old").is_symlink() and real.is_dir()


def test_out_that_is_the_current_folder_is_refused_before_any_work(tmp_path: Path, monkeypatch) -> None:
    """`pix2pix build ../photos .` used to run the whole build, then fail with exit 5."""
    from pix2pix.errors import OutputExistsError

    here = tmp_path / "f"
    here.mkdir()
    monkeypatch.chdir(here)
    for out in (".", "..", str(here)):
        with pytest.raises(OutputExistsError, match="the current folder"):
            claim(out, inputs={"SOURCE": tmp_path / "photos"}, overwrite=True, marker="dataset.json")
    assert list(here.iterdir()) == [] and not (tmp_path / ".f.lock").exists()


@pytest.mark.slow
def test_sigterm_cleans_up_like_ctrl_c(tmp_path: Path) -> None:
    """`kill PID` (docker stop, CI timeouts) left `.OUT.partial` and `.OUT.lock` and exit -15."""
    import signal
    import time

    src = tmp_path / "src"
    for i in range(60):
        save(src / f"img{i}.jpg", noise(900, 1200, i), quality=95)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "pix2pix.cli", "build", str(src), str(out), "--size", "512",
                             "--workers", "2", *FOLDER], env=env(), stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not any(p.name.startswith(".out.") for p in tmp_path.iterdir()) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err.split("interrupted")[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
