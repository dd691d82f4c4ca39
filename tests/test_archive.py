"""Safe extraction: hostile tar and zip archives are refused before anything is written."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from pix2pix.archive import extract_archive
from pix2pix.errors import SourceError, UnsafeArchiveError


def _tar(path: Path, entries: list[tarfile.TarInfo], payload: bytes = b"data") -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info in entries:
            if info.isfile():
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
            else:
                tf.addfile(info)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize(
    "entry, message",
    [
        (_info("../evil.jpg"), "climbs out"),
        (_info("ok/../../evil.jpg"), "climbs out"),
        (_info("/etc/evil.jpg"), "absolute path"),
        (_info("link.jpg", tarfile.SYMTYPE, "/etc/passwd"), "absolute path"),
        (_info("sub/link.jpg", tarfile.SYMTYPE, "../../outside"), "leaves the folder"),
        (_info("dev", tarfile.CHRTYPE), "device"),
        (_info("fifo", tarfile.FIFOTYPE), "device, FIFO"),
    ],
)
def test_tar_attacks_refused(tmp_path: Path, entry: tarfile.TarInfo, message: str) -> None:
    good = _info("good.jpg")
    arc = _tar(tmp_path / "a.tar.gz", [good, entry])
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchiveError, match=message) as err:
        extract_archive(arc, dest)
    assert entry.name in str(err.value) and "a.tar.gz" in str(err.value)
    assert not (dest / "good.jpg").exists()  # checked before anything is written
    assert not (tmp_path / "evil.jpg").exists()


def test_tar_internal_symlink_allowed_and_single_root_returned(tmp_path: Path) -> None:
    entries = [_info("ds", tarfile.DIRTYPE), _info("ds/x.jpg"), _info("ds/y.jpg", tarfile.SYMTYPE, "x.jpg")]
    arc = _tar(tmp_path / "a.tgz", entries)
    root = extract_archive(arc, tmp_path / "dest")
    assert root == tmp_path / "dest" / "ds"
    assert (root / "x.jpg").read_bytes() == b"data"


def _zip(path: Path, names: list[str], link: tuple[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for n in names:
            zf.writestr(n, b"data")
        if link:
            info = zipfile.ZipInfo(link[0])
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, link[1])
    return path


@pytest.mark.parametrize(
    "names, link, message",
    [
        (["ok.jpg", "../evil.jpg"], None, "climbs out"),
        (["ok.jpg", "/abs/evil.jpg"], None, "absolute path"),
        (["ok.jpg", "C:/evil.jpg"], None, "absolute path"),
        (["ok.jpg"], ("l.jpg", "../../../etc/passwd"), "leaves the folder"),
        (["ok.jpg"], ("l.jpg", "ok.jpg"), "symbolic link"),
    ],
)
def test_zip_attacks_refused(tmp_path: Path, names, link, message: str) -> None:
    arc = _zip(tmp_path / "a.zip", names, link)
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_archive(arc, tmp_path / "dest")
    assert not (tmp_path / "dest" / "ok.jpg").exists()


def test_zip_extracts_nested_files(tmp_path: Path) -> None:
    arc = _zip(tmp_path / "a.zip", ["A/x.png", "B/x.png"])
    root = extract_archive(arc, tmp_path / "dest")
    assert root == tmp_path / "dest"
    assert (root / "A" / "x.png").read_bytes() == b"data" and (root / "B" / "x.png").is_file()


def test_corrupt_archive_is_a_clear_error(tmp_path: Path) -> None:
    arc = tmp_path / "broken.tar.gz"
    arc.write_bytes(b"\x1f\x8b\x08 not really gzip")
    with pytest.raises(SourceError, match="broken.tar.gz: not a readable archive"):
        extract_archive(arc, tmp_path / "dest")
