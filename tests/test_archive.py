"""Safe extraction: hostile tar and zip archives are refused before anything is written,
nothing is ever written outside the extraction folder, and a failure leaves no folder behind."""

from __future__ import annotations

import errno
import io
import os
import stat
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest
from imgutil import noise, rejected, save

from pix2pix.errors import SourceError, UnsafeArchiveError
from pix2pix.prepare import archive as archive_mod
from pix2pix.prepare.archive import extract_archive, max_image_bytes
from pix2pix.prepare.build import build_dataset
from pix2pix.prepare.config import BuildConfig


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
        (_info("hard.jpg", tarfile.LNKTYPE, "../outside.jpg"), "climbs out"),
        (_info("C:/evil.jpg"), "absolute path"),
        (_info("C:\\evil.jpg"), "absolute path"),
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
    assert repr(entry.name) in str(err.value) and "a.tar.gz" in str(err.value)
    assert not dest.exists()  # checked before anything is written; no folder left behind
    assert not (tmp_path / "evil.jpg").exists()


def test_tar_internal_links_are_recorded_not_created_and_single_root_returned(tmp_path: Path) -> None:
    entries = [_info("ds", tarfile.DIRTYPE), _info("ds/x.jpg"), _info("ds/y.jpg", tarfile.SYMTYPE, "x.jpg"),
               _info("ds/z.jpg", tarfile.LNKTYPE, "ds/x.jpg"), _info("ds/gone.jpg", tarfile.SYMTYPE, "nothing.jpg")]
    arc = _tar(tmp_path / "a.tgz", entries)
    res = extract_archive(arc, tmp_path / "dest")
    assert res.root == tmp_path / "dest" / "ds"
    assert (res.root / "x.jpg").read_bytes() == b"data"
    assert sorted(p.name for p in res.root.iterdir()) == ["x.jpg"]  # no link is ever created
    assert [(r["source"], r["kind"]) for r in res.rejected] == [
        ("a.tgz:ds/y.jpg", "link in archive"), ("a.tgz:ds/z.jpg", "link in archive"),
        ("a.tgz:ds/gone.jpg", "link in archive")]
    assert "symbolic link to 'ds/x.jpg'" in res.rejected[0]["reason"]
    assert "hard link to 'ds/x.jpg'" in res.rejected[1]["reason"]


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
        (["ok.jpg"], ("l.jpg", "/etc/passwd"), "absolute path"),
        (["ok.jpg"], ("l", "."), None),  # harmless alone, but then...
    ],
)
def test_zip_attacks_refused(tmp_path: Path, names, link, message: str | None) -> None:
    if message is None:  # ...a file written through the link
        names, message = [*names, "l/evil.jpg"], "inside 'l', a symbolic link"
    arc = _zip(tmp_path / "a.zip", names, link)
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_archive(arc, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_zip_extracts_nested_files_and_records_an_internal_link(tmp_path: Path) -> None:
    arc = _zip(tmp_path / "a.zip", ["A/x.png", "B/x.png"], ("B/y.png", "x.png"))
    res = extract_archive(arc, tmp_path / "dest")
    assert res.root == tmp_path / "dest"
    assert (res.root / "A" / "x.png").read_bytes() == b"data" and (res.root / "B" / "x.png").is_file()
    assert not (res.root / "B" / "y.png").exists()
    assert res.rejected == [{"source": "a.zip:B/y.png", "kind": "link in archive",
                             "reason": "symbolic link to 'B/x.png': links are not extracted (the file "
                                       "itself is, under its own name)"}]


def test_corrupt_archive_is_a_clear_error(tmp_path: Path) -> None:
    arc = tmp_path / "broken.tar.gz"
    arc.write_bytes(b"\x1f\x8b\x08 not really gzip")
    with pytest.raises(SourceError, match="broken.tar.gz: not a readable archive"):
        extract_archive(arc, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


# --- links that climb out by the file system's rules, not by their names (CVE-2025-4517) -----


def _cve_2025_4517_tar(path: Path) -> Path:
    """Deep folders of 247-character names, reached through one-letter links, then a link
    whose real path passes PATH_MAX (so `os.path.realpath` stops expanding it: the `data` filter
    of Python <= 3.13.3 sees it inside) but which climbs out when the kernel follows it."""
    comp, steps, path_ = "d" * 247, "abcdefghijklmnop", ""
    entries = []
    for step in steps:
        entries.append(_info(os.path.join(path_, comp), tarfile.DIRTYPE))
        entries.append(_info(os.path.join(path_, step), tarfile.SYMTYPE, comp))
        path_ = os.path.join(path_, comp)
    long_link = os.path.join(*steps, "l" * 254)
    entries.append(_info(long_link, tarfile.SYMTYPE, "../" * len(steps)))
    entries.append(_info("escape", tarfile.SYMTYPE, long_link + "/.."))
    entries.append(_info("escape/evil.jpg"))
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for info in entries:
            if info.isfile():
                info.size = 4
                tf.addfile(info, io.BytesIO(b"evil"))
            else:
                tf.addfile(info)
    return path


def test_cve_2025_4517_link_chain_writes_nothing_outside(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    arc = _cve_2025_4517_tar(tmp_path / "poc.tar")
    with pytest.raises(UnsafeArchiveError, match="refusing to extract"):
        extract_archive(arc, work / "dest")
    assert sorted(p.name for p in work.iterdir()) == []  # no evil.jpg beside dest, no dest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["poc.tar", "w"]


def test_link_climbing_out_through_another_link_is_refused(tmp_path: Path) -> None:
    # Lexically 'up/..' stays inside; through the link 'up' -> '.', '..' is the parent.
    arc = _tar(tmp_path / "a.tar", [_info("up", tarfile.SYMTYPE, "."), _info("out", tarfile.SYMTYPE, "up/..")])
    with pytest.raises(UnsafeArchiveError, match=r"link 'out' -> 'up/\.\.' leaves the folder"):
        extract_archive(arc, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_hard_link_through_a_symlink_is_a_clear_error(tmp_path: Path) -> None:
    entries = [_info("sub", tarfile.DIRTYPE), _info("sub/x.jpg"), _info("l", tarfile.SYMTYPE, "sub"),
               _info("h.jpg", tarfile.LNKTYPE, "l/x.jpg")]
    arc = _tar(tmp_path / "a.tar.gz", entries)
    with pytest.raises(UnsafeArchiveError, match=r"hard link 'h\.jpg' -> 'l/x\.jpg' goes through 'l'"):
        extract_archive(arc, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_colon_in_a_name_is_not_an_absolute_path(tmp_path: Path) -> None:
    arc = _tar(tmp_path / "a.tar", [_info("a:b.jpg"), _info("c:d/e.jpg")])
    res = extract_archive(arc, tmp_path / "dest")
    assert (res.root / "a:b.jpg").read_bytes() == b"data" and (res.root / "c:d" / "e.jpg").is_file()


# --- same names ---------------------------------------------------------------------------------


def test_members_with_the_same_name_are_recorded(tmp_path: Path) -> None:
    arc = tmp_path / "dup.tar"
    with tarfile.open(arc, "w") as tf:
        for name, data in [("x.jpg", b"first"), ("./x.jpg", b"second"), ("x.jpg", b"third"),
                           ("f", b"file"), ("f/g.jpg", b"under")]:
            info = _info(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    res = extract_archive(arc, tmp_path / "dest")
    assert (res.root / "x.jpg").read_bytes() == b"third"  # the last one wins, as with tar
    assert (res.root / "f" / "g.jpg").read_bytes() == b"under"
    assert [(r["source"], r["kind"]) for r in res.rejected] == [
        ("dup.tar:x.jpg", "duplicate in archive"), ("dup.tar:./x.jpg", "duplicate in archive"),
        ("dup.tar:f", "duplicate in archive")]
    assert "comes later" in res.rejected[0]["reason"] and "both a file and a folder" in res.rejected[2]["reason"]


def test_duplicate_and_link_members_reach_rejected_jsonl(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(3):
        save(src / f"p{i}.jpg", noise(64, 64, i))
    arc = tmp_path / "photos.tar.gz"
    with tarfile.open(arc, "w:gz") as tf:
        for i in range(3):
            tf.add(src / f"p{i}.jpg", arcname=f"photos/p{i}.jpg")
        tf.add(src / "p0.jpg", arcname="photos/p1.jpg")  # a second p1.jpg: p0's bytes
        tf.addfile(_info("photos/link.jpg", tarfile.SYMTYPE, "p2.jpg"))
    out = tmp_path / "out"
    summary = build_dataset(BuildConfig(source=str(arc), out=str(out), size=32, progress=False))
    recs = {r["source"]: r for r in rejected(out)}
    assert recs["photos.tar.gz:photos/p1.jpg"]["kind"] == "duplicate in archive"
    assert recs["photos.tar.gz:photos/link.jpg"]["kind"] == "link in archive"
    assert summary.rejected["duplicate in archive"] == 1 and summary.rejected["link in archive"] == 1
    assert not (tmp_path / ".out.extract").exists()


# --- bombs, oversize members, disk full -----------------------------------------------------------


def _deflated(pieces: list[tuple[bytes, int]]) -> tuple[list[tuple[bytes, int]], int, int]:
    """Raw deflate of each `(data, times)` piece repeated `times` times, without compressing it
    `times` times: after a full flush deflate forgets the past, so each repeat compresses alike.
    Returns the `(block, times)` list to write, the crc32 and the size of the expanded bytes."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    out, crc, size = [], 0, 0
    for data, times in pieces:
        out.append((comp.compress(data) + comp.flush(zlib.Z_FULL_FLUSH), times))
        for _ in range(times):
            crc = zlib.crc32(data, crc)
        size += len(data) * times
    out.append((comp.flush(), 1))
    return out, crc, size


def _write_blocks(f, blocks: list[tuple[bytes, int]]) -> int:
    for block, times in blocks:
        for _ in range(times):
            f.write(block)
    return sum(len(b) * t for b, t in blocks)


def _zeros_zip(path: Path, size: int, name: str = "zeros.bin") -> Path:
    """A well-formed zip holding `size` zero bytes (a multiple of 1 MiB, under 4 GiB)."""
    blocks, crc, _ = _deflated([(bytes(1 << 20), size >> 20)])
    raw = name.encode()
    with open(path, "wb") as f:
        packed = sum(len(b) * t for b, t in blocks)
        f.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, packed, size, len(raw), 0) + raw)
        _write_blocks(f, blocks)
        cd = f.tell()
        f.write(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, packed, size, len(raw),
                            0, 0, 0, 0, 0o100644 << 16, 0) + raw)
        end = f.tell()
        f.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, end - cd, cd, 0))
    return path


def _zeros_tar_gz(path: Path, size: int, name: str = "zeros.bin") -> Path:
    """A well-formed .tar.gz of one member of `size` zero bytes (a multiple of 1 MiB)."""
    info = _info(name)
    info.size = size
    header = info.tobuf(tarfile.GNU_FORMAT)
    blocks, crc, total = _deflated([(header, 1), (bytes(1 << 20), size >> 20), (bytes(1024), 1)])
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")
        _write_blocks(f, blocks)
        f.write(struct.pack("<2L", crc, total & 0xFFFFFFFF))
    return path


def test_zip_bomb_refused_before_extracting(tmp_path: Path) -> None:
    arc = _zeros_zip(tmp_path / "bomb.zip", 1 << 30)  # 1 GiB of zeros
    assert arc.stat().st_size < 2 << 20
    with zipfile.ZipFile(arc) as zf:  # a well-formed zip, as far as its headers go
        assert zf.infolist()[0].file_size == 1 << 30
    with pytest.raises(UnsafeArchiveError, match=r"zeros\.bin.*1\.0 GiB.*decompression bomb"):
        extract_archive(arc, tmp_path / "dest")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.zip"]
    # The same through the builder, whose pixel limit would skip the member as too large:
    # a bomb is refused, not skipped, and leaves no extraction folder.
    with pytest.raises(UnsafeArchiveError, match="decompression bomb"):
        build_dataset(BuildConfig(source=str(arc), out=str(tmp_path / "out"), progress=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.zip"]


def test_archive_without_files_leaves_no_extraction_folder(tmp_path: Path) -> None:
    arc = _tar(tmp_path / "empty.tar", [_info("only-a-folder", tarfile.DIRTYPE)])
    with pytest.raises(SourceError, match="no files found"):  # raised while planning the build
        build_dataset(BuildConfig(source=str(arc), out=str(tmp_path / "out"), progress=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.tar"]


def test_tar_gz_bomb_refused_at_its_header(tmp_path: Path) -> None:
    arc = _zeros_tar_gz(tmp_path / "bomb.tar.gz", 1 << 30)
    assert arc.stat().st_size < 2 << 20
    with pytest.raises(UnsafeArchiveError, match=r"zeros\.bin.*decompression bomb"):
        extract_archive(arc, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_bomb_helpers_make_valid_archives(tmp_path: Path) -> None:
    with zipfile.ZipFile(_zeros_zip(tmp_path / "z.zip", 3 << 20)) as zf:
        assert zf.read("zeros.bin") == bytes(3 << 20)  # crc and sizes checked by zipfile
    with tarfile.open(_zeros_tar_gz(tmp_path / "t.tar.gz", 3 << 20)) as tf:
        member = tf.next()
        assert member is not None and member.size == 3 << 20
        assert tf.extractfile(member).read() == bytes(3 << 20)  # type: ignore[union-attr]


class _Zeros(io.RawIOBase):
    def __init__(self, n: int):
        self.left = n

    def readinto(self, buf) -> int:  # type: ignore[override]
        n = min(len(buf), self.left)
        buf[:n] = bytes(n)
        self.left -= n
        return n


def test_ratio_bound_also_holds_while_streaming(tmp_path: Path) -> None:
    # Headers within bounds, but the real total is checked as bytes come out.
    arc = _tar(tmp_path / "a.tar", [_info("x.jpg"), _info("y.jpg")], payload=b"z" * 600)
    with pytest.raises(UnsafeArchiveError, match="decompression bomb"):
        extract_archive(arc, tmp_path / "dest", max_total_bytes=1000)
    assert not (tmp_path / "dest").exists()


def test_member_too_large_for_an_image_is_skipped_with_a_record(tmp_path: Path) -> None:
    big = max_image_bytes(1000) + 1
    arc = tmp_path / "a.tar.gz"
    with tarfile.open(arc, "w:gz") as tf:
        info = _info("huge.jpg")
        info.size = big
        tf.addfile(info, _Zeros(big))
        small = _info("small.jpg")
        small.size = 4
        tf.addfile(small, io.BytesIO(b"data"))
    res = extract_archive(arc, tmp_path / "dest", max_pixels=1000)
    assert sorted(p.name for p in res.root.iterdir()) == ["small.jpg"]
    assert [(r["source"], r["kind"]) for r in res.rejected] == [("a.tar.gz:huge.jpg", "too large")]


def test_disk_full_removes_partial_files_and_says_so(tmp_path: Path, monkeypatch) -> None:
    arc = _tar(tmp_path / "a.tar", [_info(f"f{i}.jpg") for i in range(5)], payload=b"x" * 5000)
    written = []

    def write(fd: int, data) -> int:  # the disk fills after 12 kB
        if sum(written) + len(data) > 12_000:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(len(data))
        return os.write(fd, data)

    monkeypatch.setattr(archive_mod, "_write", write)
    with pytest.raises(SourceError, match="disk full") as info:
        extract_archive(arc, tmp_path / "dest")
    assert "re-download" not in str(info.value) and sum(written) == 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar"]


def test_extraction_folder_must_be_new_or_empty(tmp_path: Path) -> None:
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "mine.txt").write_text("keep")
    arc = _tar(tmp_path / "a.tar", [_info("x.jpg")])
    with pytest.raises(SourceError, match="new or empty"):
        extract_archive(arc, tmp_path / "dest")
    assert (tmp_path / "dest" / "mine.txt").read_text() == "keep"


def test_an_html_page_or_an_empty_zip_gets_one_line_naming_the_archive(tmp_path: Path, capsys) -> None:
    from pix2pix.cli import main as cli_main

    page = tmp_path / "data.tar.gz"
    page.write_text("<html><body>404 Not Found</body></html>")
    assert cli_main(["build", str(page), str(tmp_path / "o1")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {page}: not a readable archive") and "HTML" in err[0]
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(empty, "w").close()
    assert cli_main(["build", str(empty), str(tmp_path / "o2")]) == 1
    assert capsys.readouterr().err.strip() == f"error: {empty}: the archive holds no files"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.tar.gz", "empty.zip"]
