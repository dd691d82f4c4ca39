"""Downloads against a local server that resets, truncates, stalls and fails on purpose."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
from pathlib import Path

import numpy as np
import pytest
from httpfault import FaultServer, Reset, Serve, Stall, Status, Trickle, Truncate
from PIL import Image

from pix2pix.prepare.catalog import (
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    NAMED_DATASETS,
    UnknownDatasetError,
    dataset_url,
    get_dataset,
)
from pix2pix.prepare.download import (
    ChecksumError,
    DownloadError,
    LicenceNotAcceptedError,
    cache_name,
    download_file,
    download_named_dataset,
)
from pix2pix.prepare.urllist import UrlItem, UrlListError, download_url_list, read_url_list

BODY = random.Random(0).randbytes(300_000)
BODY_SHA = hashlib.sha256(BODY).hexdigest()
ARCHIVE = gzip.compress(BODY, mtime=0)  # an archive as far as its first bytes go
FAST = dict(backoff=0.01, timeout=5, progress=False)
HTML = b"<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head><body>try later</body></html>"


def image_bytes(seed: int, fmt: str = "JPEG") -> bytes:
    """A small real image file of the given Pillow format."""
    arr = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture
def server():
    srv = FaultServer().start()
    yield srv
    srv.stop()


def only_final_if_complete(dest: Path, name: str, body: bytes = BODY) -> None:
    """The invariant of every test: the final name holds the complete file or nothing."""
    final = dest / name
    if final.exists():
        assert final.read_bytes() == body


# ------------------------------------------------------------------ single files


def test_normal_download_writes_sidecar_and_no_part(server, tmp_path):
    url = server.add("/data/file.bin", BODY)
    res = download_file(url, tmp_path, sha256=BODY_SHA.upper(), **FAST)
    assert res.path == tmp_path / "file.bin"
    assert res.path.read_bytes() == BODY
    assert (res.sha256, res.bytes, res.resumed, res.cached, res.attempts) == (
        BODY_SHA, len(BODY), False, False, 1)
    assert (tmp_path / "file.bin.sha256").read_text() == f"{BODY_SHA}  file.bin\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin", "file.bin.sha256"]


def test_reset_mid_file_resumes_with_range(server, tmp_path):
    url = server.add("/f.bin", BODY, [Reset(after=100_000), Serve()])
    res = download_file(url, tmp_path, **FAST)
    assert server.count("/f.bin") == 2
    first, second = server.ranges("/f.bin")
    assert first is None
    assert second is not None and second.startswith("bytes=") and second != "bytes=0-"
    assert res.resumed and res.attempts == 2
    assert res.path.read_bytes() == BODY
    assert res.sha256 == BODY_SHA
    assert not (tmp_path / "f.bin.part").exists()


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    url = server.add("/f.bin", BODY, [Reset(after=50_000), Serve(honour_range=False)])
    res = download_file(url, tmp_path, sha256=BODY_SHA, **FAST)
    assert server.ranges("/f.bin")[1] is not None  # we asked to resume...
    assert not res.resumed  # ...got a 200, took the whole body instead of appending
    assert res.path.read_bytes() == BODY


def test_existing_part_is_resumed_and_hashed(server, tmp_path):
    (tmp_path / "f.bin.part").write_bytes(BODY[:1234])
    url = server.add("/f.bin", BODY)
    res = download_file(url, tmp_path, sha256=BODY_SHA, **FAST)
    assert server.ranges("/f.bin") == ["bytes=1234-"]
    assert res.resumed and res.sha256 == BODY_SHA


def test_500_twice_then_200_takes_three_requests(server, tmp_path):
    url = server.add("/f.bin", BODY, [Status(500), Status(500), Serve()])
    res = download_file(url, tmp_path, **FAST)
    assert server.count("/f.bin") == 3
    assert res.attempts == 3 and res.path.read_bytes() == BODY


def test_404_is_not_retried(server, tmp_path):
    url = server.add("/missing.bin", b"", [Status(404)])
    with pytest.raises(DownloadError) as info:
        download_file(url, tmp_path, retries=4, **FAST)
    assert server.count("/missing.bin") == 1
    msg = str(info.value)
    assert url in msg and "404" in msg
    assert (info.value.status, info.value.attempts) == (404, 1)
    assert not (tmp_path / "missing.bin").exists()


def test_500_forever_names_url_attempts_and_status(server, tmp_path):
    url = server.add("/down.bin", b"", [Status(503)])
    with pytest.raises(DownloadError) as info:
        download_file(url, tmp_path, retries=2, **FAST)
    assert server.count("/down.bin") == 3
    msg = str(info.value)
    assert url in msg and "3 attempts" in msg and "503" in msg
    assert info.value.reason == "HTTP 503 Service Unavailable after 3 tries"
    assert not (tmp_path / "down.bin").exists()


def test_truncated_body_is_resumed_not_accepted(server, tmp_path):
    url = server.add("/t.bin", BODY, [Truncate(after=120_000), Serve()])
    res = download_file(url, tmp_path, sha256=BODY_SHA, **FAST)
    assert server.ranges("/t.bin") == [None, "bytes=120000-"]
    assert res.resumed and res.path.read_bytes() == BODY


def test_truncated_forever_errors_and_keeps_only_part(server, tmp_path):
    url = server.add("/t.bin", BODY, [Truncate(after=1000)])
    with pytest.raises(DownloadError) as info:
        download_file(url, tmp_path, retries=2, **FAST)
    assert "truncated body" in str(info.value) and "3 attempts" in str(info.value)
    assert not (tmp_path / "t.bin").exists()
    # each try appended what arrived; the next call would resume from there
    assert (tmp_path / "t.bin.part").stat().st_size == 3000
    assert server.ranges("/t.bin") == [None, "bytes=1000-", "bytes=2000-"]


def test_stall_times_out_then_resumes(server, tmp_path):
    url = server.add("/s.bin", BODY, [Stall(after=10_000, seconds=3), Serve()])
    res = download_file(url, tmp_path, sha256=BODY_SHA, backoff=0.01, timeout=0.3,
                        progress=False)
    assert server.ranges("/s.bin")[1] == "bytes=10000-"
    assert res.path.read_bytes() == BODY


def test_connection_refused_is_retried_then_reported(tmp_path):
    srv = FaultServer()  # bound but never started: connections hang in the backlog...
    url = srv.url("/x.bin")
    srv.stop()  # ...so close it: the port now refuses
    with pytest.raises(DownloadError) as info:
        download_file(url, tmp_path, retries=1, **FAST)
    assert "2 attempts" in str(info.value) and info.value.status is None
    assert not (tmp_path / "x.bin").exists()


def test_checksum_mismatch_moves_file_aside(server, tmp_path):
    url = server.add("/c.bin", BODY)
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ChecksumError) as info:
        download_file(url, tmp_path, sha256=wrong, **FAST)
    assert wrong in str(info.value) and BODY_SHA in str(info.value)
    assert (info.value.expected, info.value.got) == (wrong, BODY_SHA)
    assert not (tmp_path / "c.bin").exists()
    assert not (tmp_path / "c.bin.part").exists()
    assert (tmp_path / "c.bin.bad-sha256").read_bytes() == BODY
    assert server.count("/c.bin") == 1  # a checksum mismatch is not retried


def test_cache_hit_with_sha_makes_no_request(server, tmp_path):
    url = server.add("/k.bin", BODY)
    download_file(url, tmp_path, **FAST)
    assert server.count("/k.bin") == 1
    again = download_file(url, tmp_path, sha256=BODY_SHA, **FAST)
    again2 = download_file(url, tmp_path, **FAST)  # verified by the sidecar alone
    assert server.count("/k.bin") == 1
    assert again.cached and again2.cached and again.attempts == 0
    assert again.sha256 == BODY_SHA and again.path.read_bytes() == BODY


def test_cache_miss_when_file_does_not_match_sidecar(server, tmp_path):
    url = server.add("/k.bin", BODY)
    download_file(url, tmp_path, **FAST)
    (tmp_path / "k.bin").write_bytes(b"corrupted on disk")
    res = download_file(url, tmp_path, **FAST)
    assert not res.cached and server.count("/k.bin") == 2
    assert res.path.read_bytes() == BODY


def test_non_http_url_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="http"):
        download_file("ftp://example.com/x", tmp_path, **FAST)


# ------------------------------------------------------------------ named datasets


def test_named_dataset_from_local_base_url(server, tmp_path):
    server.add("/mirror/facades.tar.gz", ARCHIVE)
    res = download_named_dataset("facades", tmp_path, base_url=server.url("/mirror/"), **FAST)
    assert res.path == tmp_path / "facades.tar.gz" and res.sha256 == hashlib.sha256(ARCHIVE).hexdigest()
    assert res.url == server.url("/mirror/facades.tar.gz")


def test_named_dataset_base_url_from_env(server, tmp_path, monkeypatch):
    server.add("/env/maps.tar.gz", ARCHIVE)
    monkeypatch.setenv(BASE_URL_ENV, server.url("/env"))
    res = download_named_dataset("maps", tmp_path, **FAST)
    assert res.path.read_bytes() == ARCHIVE and server.count("/env/maps.tar.gz") == 1


def test_cityscapes_needs_licence_acceptance(server, tmp_path):
    server.add("/m/cityscapes.tar.gz", ARCHIVE)
    with pytest.raises(LicenceNotAcceptedError, match="accept_licence"):
        download_named_dataset("cityscapes", tmp_path, base_url=server.url("/m"), **FAST)
    assert server.total_requests() == 0
    res = download_named_dataset(
        "cityscapes", tmp_path, base_url=server.url("/m"), accept_licence=True, **FAST
    )
    assert res.path.name == "cityscapes.tar.gz"


def test_catalog(monkeypatch):
    monkeypatch.delenv(BASE_URL_ENV, raising=False)
    assert set(NAMED_DATASETS) == {
        "facades", "cityscapes", "maps", "edges2shoes", "edges2handbags", "night2day"}
    assert dataset_url("facades") == f"{DEFAULT_BASE_URL}/facades.tar.gz"
    assert get_dataset("facades").natural_direction == "BtoA"
    assert (get_dataset("edges2shoes").a, get_dataset("edges2shoes").b) == ("edges", "photo")
    assert get_dataset("edges2handbags").approx_size == "8.6 GB"
    assert get_dataset("facades").splits["test"] == 106
    assert get_dataset("cityscapes").licence
    with pytest.raises(UnknownDatasetError, match="edges2shoes.*facades"):
        get_dataset("shoes")


# ------------------------------------------------------------------ URL lists


def test_read_url_list_txt(tmp_path):
    p = tmp_path / "urls.txt"
    p.write_text("# my images\nhttp://h/a.jpg\n\n  https://h/b.png  \n# end\n")
    assert read_url_list(p) == [UrlItem("http://h/a.jpg", line=2), UrlItem("https://h/b.png", line=4)]


def test_read_url_list_csv_pairs_with_header(tmp_path):
    p = tmp_path / "pairs.csv"
    p.write_text("a_url,b_url\nhttp://h/1a.jpg,http://h/1b.jpg\n\nhttp://h/2a.jpg, http://h/2b.jpg\n")
    items = read_url_list(p)
    assert items == [
        UrlItem("http://h/1a.jpg", "http://h/1b.jpg", line=2),
        UrlItem("http://h/2a.jpg", "http://h/2b.jpg", line=4),
    ]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("u.txt", "http://h/a.jpg\nfile:///etc/passwd\n", r"u\.txt:2: not an http"),
        ("u.csv", "http://h/a.jpg\nftp://h/b.jpg\n", r"u\.csv:2: not an http"),
        ("u.csv", "http://h/a,http://h/b\nhttp://h/c\n", r"u\.csv:2: 1 column"),
        ("u.csv", "http://h/a,http://h/b,http://h/c\n", r"u\.csv:1: expected 1 column"),
        ("u.json", "[]", "must be .txt or .csv"),
    ],
)
def test_read_url_list_errors_name_the_line(tmp_path, name, text, message):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(UrlListError, match=message):
        read_url_list(p)


def test_url_list_failures_do_not_stop_others(server, tmp_path):
    bodies = {f"/img/{i}.jpg": image_bytes(i) for i in range(3)}
    for path, body in bodies.items():
        server.add(path, body)
    server.add("/img/gone.jpg", b"", [Status(404)])
    server.add("/img/broken.jpg", b"", [Status(500)])
    lines = ["/img/0.jpg", "/img/gone.jpg", "/img/1.jpg", "/img/broken.jpg", "/img/2.jpg"]
    items = [UrlItem(server.url(p), line=n) for n, p in enumerate(lines, start=1)]

    ok, failed = download_url_list(items, tmp_path, workers=3, retries=2, backoff=0.01,
                                   progress=False)

    assert [r.item.line for r in ok] == [1, 3, 5]
    assert [r.a.path.read_bytes() for r in ok] == list(bodies.values())
    assert failed == [
        {"url": server.url("/img/gone.jpg"), "line": 2, "reason": "HTTP 404 Not Found",
         "status": 404},
        {"url": server.url("/img/broken.jpg"), "line": 4,
         "reason": "HTTP 500 Internal Server Error after 3 tries", "status": 500},
    ]
    assert server.count("/img/gone.jpg") == 1 and server.count("/img/broken.jpg") == 3
    images = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".jpg")
    assert len(images) == 3
    assert not list(tmp_path.glob("*.part"))

    # second run: everything present is cached, only the failures are asked again
    before = server.total_requests()
    ok2, failed2 = download_url_list(items, tmp_path, retries=0, progress=False)
    assert all(r.a.cached for r in ok2) and len(failed2) == 2
    assert server.total_requests() == before + 2


def test_url_list_same_basename_does_not_collide(server, tmp_path):
    x, y = image_bytes(1), image_bytes(2)
    server.add("/x/image.jpg", x)
    server.add("/y/image.jpg", y)
    items = [UrlItem(server.url("/x/image.jpg"), line=1), UrlItem(server.url("/y/image.jpg"), line=2),
             UrlItem(server.url("/x/image.jpg"), line=3)]
    ok, failed = download_url_list(items, tmp_path, progress=False)
    names = [r.a.path.name for r in ok]
    assert len(set(names)) == 2 and all(n.startswith("image-") and n.endswith(".jpg") for n in names)
    assert [r.a.path.read_bytes() for r in ok] == [x, y]
    assert failed == [{"url": server.url("/x/image.jpg"), "line": 3,
                       "reason": "duplicate of line 1", "status": None}]
    # deterministic: the same list gives the same names
    assert [r.a.path.name for r in download_url_list(items[:2], tmp_path, progress=False)[0]] == names


def test_url_list_pairs_share_stems_and_drop_orphans(server, tmp_path):
    server.add("/p/1a.jpg", image_bytes(1))
    server.add("/p/1b.png", image_bytes(2, "PNG"))
    server.add("/p/2a.jpg", image_bytes(3))
    server.add("/p/2b.png", b"", [Status(404)])
    items = [
        UrlItem(server.url("/p/1a.jpg"), server.url("/p/1b.png"), line=1),
        UrlItem(server.url("/p/2a.jpg"), server.url("/p/2b.png"), line=2),
    ]
    ok, failed = download_url_list(items, tmp_path, progress=False)
    [pair] = ok
    assert pair.a.path.parent == tmp_path / "A" and pair.b.path.parent == tmp_path / "B"
    assert pair.a.path.stem == pair.b.path.stem
    assert (pair.a.path.suffix, pair.b.path.suffix) == (".jpg", ".png")
    assert failed == [{"url": server.url("/p/2b.png"), "line": 2, "reason": "B: HTTP 404 Not Found",
                       "status": 404, "url_a": server.url("/p/2a.jpg"),
                       "url_b": server.url("/p/2b.png")}]
    assert sorted(p.name for p in (tmp_path / "A").glob("*.jpg")) == [pair.a.path.name]
    rec = pair.as_record()
    assert rec["path_b"] == str(pair.b.path) and rec["line"] == 1


def test_read_then_download_csv_end_to_end(server, tmp_path):
    server.add("/e/a.jpg", image_bytes(0))
    lst = tmp_path / "list.csv"
    lst.write_text(f"url\n{server.url('/e/a.jpg')}\n{server.url('/e/none.jpg')}\n")
    ok, failed = download_url_list(read_url_list(lst), tmp_path / "out", progress=False)
    assert len(ok) == 1 and failed[0]["line"] == 3 and failed[0]["status"] == 404



# ------------------------------------------------------------------ nothing hangs


def test_trickled_body_is_too_slow_and_retried_then_reported(server, tmp_path):
    url = server.add("/t.bin", BODY[:2000], [Trickle(interval=0.05)])
    with pytest.raises(DownloadError) as info:
        download_file(url, tmp_path, retries=1, backoff=0.01, timeout=0.5, min_rate=100, progress=False)
    assert "too slow" in info.value.reason and "2 attempts" in str(info.value) and url in str(info.value)
    assert server.count("/t.bin") == 2
    assert server.ranges("/t.bin")[1] is not None  # what trickled in is kept and resumed
    assert not (tmp_path / "t.bin").exists()


def test_trickled_headers_time_out(server, tmp_path):
    url = server.add("/h.bin", BODY[:100], [Trickle(interval=0.05, headers=True)])
    with pytest.raises(DownloadError) as info:
        download_file(url, tmp_path, retries=0, timeout=0.5, progress=False)
    assert "no complete response headers within 0.5 s" in str(info.value)
    assert server.count("/h.bin") == 1 and not (tmp_path / "h.bin").exists()


def test_deadline_bounds_the_whole_file_and_is_not_retried(server, tmp_path):
    # 50 bytes/s is above min_rate, so only the deadline can stop it (the body takes 40 s).
    url = server.add("/d.bin", BODY[:2000], [Trickle(interval=0.02)])
    with pytest.raises(DownloadError) as info:
        download_file(url, tmp_path, retries=3, timeout=5, min_rate=1, deadline=1.0, progress=False)
    assert "within the 1 s deadline" in str(info.value) and server.count("/d.bin") == 1
    assert 0 < (tmp_path / "d.bin.part").stat().st_size < 2000  # kept for a later resume


# ------------------------------------------------------------------ what the bytes are


def test_html_error_page_served_with_200_is_never_cached(server, tmp_path):
    jpeg = image_bytes(7)
    url = server.add("/img/photo.jpg", jpeg, [Serve(body=HTML, content_type="text/html"), Serve()],
                     content_type="image/jpeg")
    with pytest.raises(DownloadError) as info:
        download_file(url, tmp_path, expect="image", **FAST)
    msg = str(info.value)
    assert url in msg and f"not an image: received text/html, {len(HTML)} bytes starting '<!DOCTYPE html> <html>" in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no file, no sidecar, no .part
    res = download_file(url, tmp_path, expect="image", **FAST)  # fetched again, not "cached"
    assert not res.cached and res.path.read_bytes() == jpeg and server.count("/img/photo.jpg") == 2


def test_cached_html_from_an_older_version_is_fetched_again(server, tmp_path):
    jpeg = image_bytes(8)
    url = server.add("/img/p.jpg", jpeg)
    (tmp_path / "p.jpg").write_bytes(HTML)
    (tmp_path / "p.jpg.sha256").write_text(f"{hashlib.sha256(HTML).hexdigest()}  p.jpg\n")
    res = download_file(url, tmp_path, expect="image", **FAST)
    assert not res.cached and res.path.read_bytes() == jpeg


def test_archive_url_serving_html_is_an_error_saying_what_came(server, tmp_path):
    server.add("/m/facades.tar.gz", HTML, content_type="text/html; charset=utf-8")
    with pytest.raises(DownloadError, match=r"m/facades\.tar\.gz: not an archive: received text/html"):
        download_named_dataset("facades", tmp_path, base_url=server.url("/m"), **FAST)
    assert not (tmp_path / "facades.tar.gz").exists()


def test_url_list_html_page_is_a_failure_naming_the_url(server, tmp_path):
    server.add("/ok.jpg", image_bytes(1))
    bad = server.add("/login", HTML, content_type="text/html")
    items = [UrlItem(server.url("/ok.jpg"), line=1), UrlItem(bad, line=2)]
    ok, failed = download_url_list(items, tmp_path, retries=0, progress=False)
    assert len(ok) == 1
    [f] = failed
    assert f["url"] == bad and f["line"] == 2 and f["reason"].startswith("not an image: received text/html")
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".jpg", ".sha256"]


def test_extensionless_image_urls_are_named_by_their_bytes(server, tmp_path):
    jpeg, png = image_bytes(1), image_bytes(2, "PNG")
    server.add("/photo/1001", jpeg, content_type="image/jpeg")
    server.add("/photo/1002", png, content_type="application/octet-stream")  # the bytes decide
    items = [UrlItem(server.url("/photo/1001"), line=1), UrlItem(server.url("/photo/1002"), line=2)]
    ok, failed = download_url_list(items, tmp_path, progress=False)
    assert failed == []
    assert [(r.a.path.name.split("-")[0], r.a.path.suffix) for r in ok] == [("1001", ".jpg"), ("1002", ".png")]
    assert [r.a.path.read_bytes() for r in ok] == [jpeg, png]
    again, _ = download_url_list(items, tmp_path, progress=False)
    assert all(r.a.cached for r in again) and server.count("/photo/1001") == 1


def test_image_magic_knows_every_suffix_the_builder_reads():
    from pix2pix.prepare.download import IMAGE_EXTENSIONS, image_extension
    from pix2pix.prepare.scan import IMAGE_SUFFIXES

    assert set(IMAGE_SUFFIXES) <= set(IMAGE_EXTENSIONS)
    for fmt, ext in [("JPEG", ".jpg"), ("PNG", ".png"), ("GIF", ".gif"), ("BMP", ".bmp"), ("TIFF", ".tif"),
                     ("WEBP", ".webp"), ("PPM", ".ppm")]:
        assert image_extension(image_bytes(0, fmt)[:512]) == ext, fmt
    assert image_extension(HTML) is None and image_extension(b"BMW is a car, not a bitmap") is None


def test_binary_junk_is_described_in_hex(server, tmp_path):
    url = server.add("/x.jpg", bytes(range(200)))
    with pytest.raises(DownloadError, match="200 bytes starting 00 01 02 03"):
        download_file(url, tmp_path, expect="image", **FAST)


# ------------------------------------------------------------------ cache keys


def test_cache_name_is_keyed_on_the_whole_url():
    v1, v2 = cache_name("http://h/v1/data.zip"), cache_name("http://h/v2/data.zip")
    assert v1 != v2 and v1.startswith("data-") and v1.endswith(".zip") and v2.endswith(".zip")
    assert cache_name("http://h/v1/data.zip") == v1
    assert cache_name("http://h/a/set.tar.gz").endswith(".tar.gz")
