"""`pix2pix.imageio` on the odd files real datasets contain, and the builder's handling of the bad ones.

Every file is made here with Pillow / OpenCV / numpy (photos from scikit-image); assertions are on
pixel values, not just shapes. The CMYK ICC profile is built byte by byte below (ICC.1:2001-04,
v2 layout) because no CMYK profile ships with this machine.
"""

from __future__ import annotations

import io
import itertools
import json
import struct
import zlib
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from pix2pix.errors import ImageRejected, NothingUsableError
from pix2pix.imageio import load_rgb
from pix2pix.prepare.build import build_dataset
from pix2pix.prepare.config import BuildConfig

RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def jpeg_of(arr: np.ndarray, **kw) -> bytes:
    return encode(Image.fromarray(arr), "JPEG", quality=95, **kw)


def block_mean(arr: np.ndarray, y0: int, x0: int, side: int = 16) -> np.ndarray:
    """Mean colour of the centre of a side×side block (JPEG ringing stays at its edges)."""
    m = side // 4
    return arr[y0 + m : y0 + side - m, x0 + m : x0 + side - m].reshape(-1, 3).mean(axis=0)


def assert_colour(got, want, tol: float, what: str) -> None:
    diff = np.abs(np.asarray(got, float) - np.asarray(want, float)).max()
    assert diff <= tol, f"{what}: got {np.round(got, 1).tolist()}, want {list(want)} (max diff {diff:.1f} > {tol})"


def rejected_kind(data: bytes, **kw) -> str:
    with pytest.raises(ImageRejected) as info:
        load_rgb(data, **kw)
    return info.value.kind


# --- EXIF orientation ----------------------------------------------------------------------------

# Stored image is 64 wide × 48 high with a red block top-left and a blue block top-right. Where the
# blocks land after orientation 3 / 6 / 8, as (row, col) of the block's top-left corner, shape (h, w).
ORIENTATIONS = {
    3: ((48, 64), (32, 48), (32, 0)),  # 180°: TL -> BR, TR -> BL
    6: ((64, 48), (0, 32), (48, 32)),  # 90° clockwise: TL -> TR, TR -> BR
    8: ((64, 48), (48, 0), (0, 0)),  # 90° counter-clockwise: TL -> BL, TR -> TL
}


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_exif_orientation_is_applied(orientation):
    stored = np.full((48, 64, 3), 128, np.uint8)
    stored[:16, :16] = RED
    stored[:16, -16:] = BLUE
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = jpeg_of(stored, exif=exif.tobytes())
    assert Image.open(io.BytesIO(data)).getexif()[0x0112] == orientation

    got = load_rgb(data)
    shape, red_at, blue_at = ORIENTATIONS[orientation]
    assert got.shape == (*shape, 3)
    assert_colour(block_mean(got, *red_at), RED, 12, f"red marker after orientation {orientation}")
    assert_colour(block_mean(got, *blue_at), BLUE, 12, f"blue marker after orientation {orientation}")
    assert_colour(block_mean(got, 16, 16), (128, 128, 128), 6, "grey middle")


# --- CMYK ----------------------------------------------------------------------------------------

# Four 16×16 patches: pure cyan, magenta, yellow and black ink (Pillow's CMYK, 0 = no ink).
CMYK_PATCHES = [(255, 0, 0, 0), (0, 255, 0, 0), (0, 0, 255, 0), (0, 0, 0, 255)]
NAIVE_RGB = [(0, 255, 255), (255, 0, 255), (255, 255, 0), (0, 0, 0)]


def cmyk_jpeg(**kw) -> bytes:
    im = Image.new("CMYK", (16 * len(CMYK_PATCHES), 16))
    for i, ink in enumerate(CMYK_PATCHES):
        im.paste(ink, (16 * i, 0, 16 * i + 16, 16))
    return encode(im, "JPEG", quality=95, **kw)


def test_cmyk_jpeg_without_profile_gives_plain_colours():
    data = cmyk_jpeg()
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    got = load_rgb(data)
    assert got.shape == (16, 64, 3)
    for i, want in enumerate(NAIVE_RGB):
        assert_colour(block_mean(got, 0, 16 * i), want, 10, f"CMYK patch {CMYK_PATCHES[i]}")


def _s15f16(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


def _pad4(b: bytes) -> bytes:
    return b + bytes(-len(b) % 4)


def _lut8(n_in: int, n_out: int, clut: list[int]) -> bytes:
    """lut8Type ('mft1'): identity matrix and curves, a 2-point grid CLUT."""
    assert len(clut) == 2**n_in * n_out
    ramp = bytes(range(256))
    matrix = b"".join(_s15f16(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    return b"mft1" + bytes(4) + struct.pack(">BBBx", n_in, n_out, 2) + matrix + ramp * n_in + bytes(clut) + ramp * n_out


def cmyk_icc_profile(lab_of_ink) -> bytes:
    """A minimal ICC v2 CMYK output ('prtr') profile whose A2B0 maps each ink corner to `lab_of_ink`.

    `lab_of_ink(c, m, y, k)` takes 0/1 per ink and returns (L*, a*, b*). The 8-bit Lab encoding
    of a v2 lut8 is L*·255/100 and a*+128, b*+128. B2A0 (required for an output profile) is a
    crude lightness → K table; only A2B0 is exercised when decoding.
    """
    d50 = (0.9642, 1.0, 0.8249)
    a2b = []
    for ink in itertools.product((0, 1), repeat=4):  # first channel (C) varies slowest, as the spec says
        L, a, b = lab_of_ink(*ink)
        a2b += [round(L * 255 / 100), round(a + 128), round(b + 128)]
    b2a = []
    for L, _a, _b in itertools.product((0, 1), repeat=3):
        b2a += [0, 0, 0, 255 * (1 - L)]
    desc_text = b"pix2pix test CMYK\0"
    tags = {
        b"desc": b"desc" + bytes(4) + struct.pack(">I", len(desc_text)) + desc_text
        + struct.pack(">IIHB", 0, 0, 0, 0) + bytes(67),  # no Unicode, no ScriptCode text
        b"wtpt": b"XYZ " + bytes(4) + b"".join(_s15f16(v) for v in d50),
        b"A2B0": _lut8(4, 3, a2b),
        b"B2A0": _lut8(3, 4, b2a),
    }
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags.items():
        data = _pad4(data)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (
        struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"prtr" + b"CMYK" + b"Lab "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + bytes(4)  # date, signature, platform
        + bytes(4) + bytes(4) + bytes(4) + bytes(8)  # flags, manufacturer, model, attributes
        + struct.pack(">I", 0) + b"".join(_s15f16(v) for v in d50)  # perceptual intent, D50 illuminant
        + b"lcms" + bytes(16 + 28)  # creator, (v4 profile ID), reserved
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


# A deliberately "wrong" press: cyan ink prints brick red, magenta green, yellow blue. Mixtures take
# the darkest L* and the mean a*b*. Colours are inside sRGB so the expectation does not depend on
# gamut clipping. Two things littlecms does whatever a profile says shaped this design: device
# white (no ink) always becomes sRGB white (its white-on-white fix-up, so a "grey paper" would not
# show), and the perceptual intent of a v2 profile stretches the profile's black point to true
# black; black ink is therefore L* 0, so perceptual ≈ colorimetric and the Lab values are what we get.
INK_LAB = {
    (1, 0, 0, 0): (50, 45, 30),
    (0, 1, 0, 0): (55, -40, 30),
    (0, 0, 1, 0): (45, 10, -40),
    (0, 0, 0, 1): (0, 0, 0),
}


def _odd_press(*ink):
    inks = [INK_LAB[tuple(int(j == i) for j in range(4))] for i in range(4) if ink[i]]
    if not inks:
        return (100, 0, 0)  # paper white
    return (min(p[0] for p in inks), np.mean([p[1] for p in inks]), np.mean([p[2] for p in inks]))


def test_cmyk_jpeg_uses_its_icc_profile():
    from skimage.color import lab2rgb

    profile_bytes = cmyk_icc_profile(_odd_press)
    # littlecms must accept the hand-made profile, or the test below would pass via the fallback.
    profile = ImageCms.ImageCmsProfile(io.BytesIO(profile_bytes))
    assert ImageCms.getProfileDescription(profile).strip() == "pix2pix test CMYK"
    ImageCms.profileToProfile(Image.new("CMYK", (2, 2)), profile, ImageCms.createProfile("sRGB"), outputMode="RGB")

    data = cmyk_jpeg(icc_profile=profile_bytes)
    assert Image.open(io.BytesIO(data)).info["icc_profile"] == profile_bytes
    got = load_rgb(data)
    # The sRGB of each patch's Lab through littlecms' built-in Lab profile (not the one above),
    # cross-checked against scikit-image's formula (which skips the D50→D65 adaptation).
    labs = [INK_LAB[tuple(int(v > 0) for v in ink)] for ink in CMYK_PATCHES]
    lab_im = Image.new("LAB", (len(labs), 1))
    for i, (L, a, b) in enumerate(labs):
        lab_im.putpixel((i, 0), (round(L * 255 / 100), round(a) + 128, round(b) + 128))
    to_srgb = ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")
    want = np.asarray(ImageCms.applyTransform(lab_im, to_srgb))[0].astype(float)
    np.testing.assert_allclose(want, np.rint(lab2rgb(np.array([labs], float))[0] * 255), atol=16)
    for i, ink in enumerate(CMYK_PATCHES):
        patch = block_mean(got, 0, 16 * i)
        if ink[3]:  # black ink is black either way (littlecms leaves a faint blue cast: within 16)
            assert_colour(patch, BLACK, 16, "profiled black ink")
            continue
        assert_colour(patch, want[i], 6, f"profiled CMYK patch {ink}")
        assert np.abs(patch - NAIVE_RGB[i]).max() > 100, f"patch {ink} came out with the naive colours {patch}"


def test_cmyk_jpeg_with_broken_profile_falls_back_to_plain_colours():
    data = cmyk_jpeg(icc_profile=b"not an ICC profile" * 10)
    got = load_rgb(data)
    for i, want in enumerate(NAIVE_RGB):
        assert_colour(block_mean(got, 0, 16 * i), want, 10, f"CMYK patch {CMYK_PATCHES[i]}")


# --- transparency: composite on white ------------------------------------------------------------


def test_rgba_png_transparent_is_white_and_half_transparent_is_blended():
    rgba = np.zeros((8, 12, 4), np.uint8)  # left third: fully transparent black (what convert() shows)
    rgba[:, 4:8] = (255, 0, 0, 128)  # middle: half-transparent red
    rgba[:, 8:] = (0, 0, 255, 255)  # right: opaque blue
    got = load_rgb(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert got.shape == (8, 12, 3)
    assert (got[:, :4] == WHITE).all()
    assert_colour(got[:, 4:8].reshape(-1, 3).mean(0), (255, 127, 127), 1, "half-transparent red over white")
    assert (got[:, 8:] == BLUE).all()


def test_la_png_transparent_is_white():
    la = np.zeros((4, 6, 2), np.uint8)
    la[:, 3:] = (60, 255)  # right: opaque dark grey; left: transparent black
    got = load_rgb(encode(Image.fromarray(la, "LA"), "PNG"))
    assert (got[:, :3] == WHITE).all()
    assert (got[:, 3:] == 60).all()


def _palette_image() -> Image.Image:
    """P image: index 0 (black in the palette) is the transparent one, 1 is red."""
    im = Image.new("P", (6, 4), 0)
    im.putpalette(list(BLACK + RED) + [0] * (254 * 3))
    im.paste(1, (3, 0, 6, 4))
    # In info, not as a save() argument: the WebP writer only keeps alpha when info says so.
    im.info["transparency"] = 0
    return im


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "WEBP"])
def test_palette_transparency_is_white(fmt):
    kw = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(_palette_image(), fmt, **kw)
    reopened = Image.open(io.BytesIO(data))
    # WebP has no palette mode: Pillow writes the palette image as RGBA; PNG/GIF keep P + tRNS.
    assert reopened.mode == ("RGBA" if fmt == "WEBP" else "P")
    assert fmt == "WEBP" or reopened.info["transparency"] == 0
    got = load_rgb(data)
    assert (got[:, :3] == WHITE).all(), got[:, :3].reshape(-1, 3)[:3]
    assert (got[:, 3:] == RED).all()


# --- 16-bit -------------------------------------------------------------------------------------


def test_16bit_grayscale_png_is_scaled_not_clipped():
    a = np.zeros((4, 9), np.uint16)
    a[:, 3:6] = 32768
    a[:, 6:] = 65535
    data = encode(Image.fromarray(a), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    got = load_rgb(data)
    assert (got[:, :3] == 0).all() and (got[:, 6:] == 255).all()
    assert (np.abs(got[:, 3:6].astype(int) - 128) <= 1).all(), got[0, 3:6]


def test_dark_16bit_grayscale_png_stays_dark():
    # A night shot or a depth map: all values below 256 out of 65535 must come out near black,
    # not be taken for 8-bit values.
    a = np.array([[0, 100, 200, 255]], np.uint16).repeat(3, axis=0)
    got = load_rgb(encode(Image.fromarray(a), "PNG"))
    np.testing.assert_array_equal(got[0, :, 0], np.rint(a[0] / 257).astype(np.uint8))


def test_16bit_rgb_png_is_scaled_to_8_bits():
    rgb16 = np.zeros((4, 6, 3), np.uint16)
    rgb16[:, :3] = (65535, 32768, 1000)
    rgb16[:, 3:] = (0, 16384, 65535)
    ok, enc = cv2.imencode(".png", rgb16[..., ::-1].copy())  # OpenCV writes BGR
    assert ok
    got = load_rgb(enc.tobytes())
    assert_colour(got[:, :3].reshape(-1, 3).mean(0), (255, 128, 4), 1, "16-bit RGB left")
    assert_colour(got[:, 3:].reshape(-1, 3).mean(0), (0, 64, 255), 1, "16-bit RGB right")


# --- grayscale ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["L", "1"])
def test_grayscale_and_bilevel_give_three_equal_channels(mode):
    gray = np.tile(np.array([0, 40, 128, 200, 255], np.uint8), (3, 1))
    im = Image.fromarray(gray).convert(mode) if mode == "1" else Image.fromarray(gray)
    got = load_rgb(encode(im, "PNG"))
    assert got.shape == (3, 5, 3)
    assert (got[..., 0] == got[..., 1]).all() and (got[..., 1] == got[..., 2]).all()
    want = np.asarray(im.convert("L"))  # "1" thresholds (0/255); "L" keeps its values
    np.testing.assert_array_equal(got[..., 0], want)
    if mode == "1":
        assert set(np.unique(got)) == {0, 255}


# --- files that cannot be used --------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo_jpeg(photos) -> bytes:
    return jpeg_of(photos["astronaut"])


def test_truncated_jpeg_is_rejected_as_truncated(photo_jpeg):
    assert rejected_kind(photo_jpeg[: len(photo_jpeg) // 2]) == "truncated"


def test_jpeg_cut_inside_its_headers_is_rejected_not_a_crash(photo_jpeg):
    # Pillow reads JPEG headers in Image.open, where a short file raised a bare OSError.
    for n in (30, 100, 200, 400):
        assert rejected_kind(photo_jpeg[:n]) == "truncated", n


@pytest.mark.filterwarnings("ignore:(Truncated File Read|Corrupt EXIF data):UserWarning")
def test_every_prefix_of_a_small_file_decodes_or_is_rejected(photos):
    small = Image.fromarray(photos["chelsea"][:24, :24])
    for fmt in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"):
        data = encode(small, fmt)
        for n in range(0, len(data), max(1, len(data) // 150)):
            try:
                load_rgb(data[:n])
            except ImageRejected as exc:
                assert exc.kind in {"empty file", "not an image", "truncated", "corrupt"}, (fmt, n, exc.reason)


def test_empty_file_is_rejected():
    assert rejected_kind(b"") == "empty file"


def test_text_file_named_jpg_is_not_an_image():
    with pytest.raises(ImageRejected) as info:
        load_rgb(b"Hello, this is not a photo.\n")
    assert info.value.kind == "not an image"
    assert "text file" in info.value.reason


def test_random_bytes_named_png_are_rejected():
    noise = np.random.default_rng(0).bytes(4096)
    assert rejected_kind(noise) in {"not an image", "corrupt"}
    # Random bytes behind a real PNG signature get past format detection and must still be rejected.
    assert rejected_kind(b"\x89PNG\r\n\x1a\n" + noise) in {"not an image", "corrupt"}


def test_over_max_pixels_is_rejected():
    data = encode(Image.new("RGB", (100, 100), RED), "PNG")
    with pytest.raises(ImageRejected) as info:
        load_rgb(data, max_pixels=1000)
    assert info.value.kind == "over the pixel limit"
    assert "100x100" in info.value.reason
    assert load_rgb(data, max_pixels=10_000).shape == (100, 100, 3)  # the limit itself is allowed


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width×height (8-bit RGB) but holds one tiny IDAT: a decompression bomb's shape."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_pillow_decompression_bomb_is_over_the_pixel_limit():
    # 900 MP: above Pillow's own DecompressionBombError threshold (~179 MP), which fires inside
    # Image.open; it is reported as our rejection, not a crash.
    assert rejected_kind(png_header_only(30_000, 30_000)) == "over the pixel limit"


def test_raised_max_pixels_lets_a_huge_image_past_pillows_limit():
    # The user raised the limit: the 900 MP header passes the size check and the file is then
    # judged on its data (here one tiny IDAT: truncated), not refused for its size.
    assert rejected_kind(png_header_only(30_000, 30_000), max_pixels=10**10) in {"truncated", "corrupt"}


# --- reduced-scale decode ------------------------------------------------------------------------


def test_min_size_decodes_large_jpeg_at_reduced_scale(photos):
    big = np.asarray(Image.fromarray(photos["astronaut"]).resize((2000, 1500), Image.BICUBIC))
    data = jpeg_of(big)
    full = load_rgb(data)
    reduced = load_rgb(data, min_size=(512, 512))
    assert full.shape == (1500, 2000, 3)
    assert reduced.shape == (750, 1000, 3)
    # The DCT-scaled decode is the same picture: close to a 2×2 average of the full decode.
    halved = full.reshape(750, 2, 1000, 2, 3).mean(axis=(1, 3))
    mse = np.mean((reduced.astype(float) - halved) ** 2)
    assert 10 * np.log10(255**2 / mse) > 30, f"PSNR vs 2x2 average only {10 * np.log10(255**2 / mse):.1f} dB"
    # A smaller target may not go below it: 1/4 scale (500×375) would be too small for 400×400.
    assert load_rgb(data, min_size=(400, 400)).shape == (750, 1000, 3)
    assert load_rgb(data, min_size=(300, 300)).shape == (375, 500, 3)


def test_min_size_does_not_shrink_a_png(photos):
    data = encode(Image.fromarray(photos["coffee"]), "PNG")
    got = load_rgb(data, min_size=(64, 64))
    np.testing.assert_array_equal(got, photos["coffee"])


# --- the builder skips and reports bad files -----------------------------------------------------


def _bad_files(photo: np.ndarray) -> dict[str, tuple[bytes, set[str]]]:
    """name -> (bytes, acceptable kinds). Everything here is at most 200×200 except big.png."""
    small_jpeg = jpeg_of(photo[:128, :128])
    return {
        "cut.jpg": (small_jpeg[: len(small_jpeg) // 2], {"truncated"}),
        "headcut.jpg": (small_jpeg[:100], {"truncated"}),
        "empty.jpg": (b"", {"empty file"}),
        "notes.jpg": (b"shopping list: milk, eggs\n", {"not an image"}),
        "noise.png": (np.random.default_rng(1).bytes(2048), {"not an image", "corrupt"}),
        "big.png": (encode(Image.new("RGB", (300, 300), GREEN), "PNG"), {"over the pixel limit"}),
        "bomb.png": (png_header_only(30_000, 30_000), {"over the pixel limit"}),
    }


def _write(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def test_build_skips_and_reports_each_bad_file(tmp_path, photos):
    bad = _bad_files(photos["astronaut"])
    src, out = tmp_path / "src", tmp_path / "out"
    _write(src, {"good.jpg": jpeg_of(photos["chelsea"][:150, :150])} | {n: d for n, (d, _) in bad.items()})

    summary = build_dataset(BuildConfig(source=src, out=out, size=64, max_pixels=200 * 200, progress=False))

    assert summary.total == 1
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["source"] for r in manifest] == [{"B": "good.jpg"}]
    pair = np.asarray(Image.open(out / manifest[0]["path"]))
    assert pair.shape == (64, 128, 3) and pair[:, 64:].std() > 10  # a real picture, not a blank

    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert sorted(r["source"] for r in rejected) == sorted(bad)
    for r in rejected:
        assert r["kind"] in bad[r["source"]][1], r
        assert r["reason"]
    by_reason = json.loads((out / "dataset.json").read_text())["rejected"]["by_reason"]
    assert by_reason == dict(Counter(r["kind"] for r in rejected))
    assert summary.rejected == by_reason
    assert sum(by_reason.values()) == len(bad)


def test_build_with_only_bad_files_fails_and_leaves_nothing(tmp_path, photos):
    bad = _bad_files(photos["astronaut"])
    src, out = tmp_path / "src", tmp_path / "out"
    _write(src, {n: d for n, (d, _) in bad.items()})

    with pytest.raises(NothingUsableError) as info:
        build_dataset(BuildConfig(source=src, out=out, size=64, max_pixels=200 * 200, progress=False))

    message = str(info.value)
    assert f"{len(bad)} inputs rejected" in message
    for kind in ("truncated: 2", "empty file: 1", "over the pixel limit: 2"):
        assert kind in message, message
    # no out/, no .out.partial: only the list of every rejection beside OUT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.rejected.jsonl", "src"]


def test_an_image_past_pillows_own_bomb_limit_is_told_in_our_terms(tmp_path) -> None:
    """A 30000x30000 PNG used to be reported with Pillow's 178,956,970-pixel text, not our limit."""
    import zlib

    from pix2pix.errors import ImageRejected
    from pix2pix.imageio import load_rgb

    w = h = 30000
    raw = zlib.compress(b"".join(b"\0" + bytes(w) for _ in range(64)), 9)  # the rest of the rows missing
    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", w.to_bytes(4, "big") + h.to_bytes(4, "big") + b"\x08\x00\x00\x00\x00")
           + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    with pytest.raises(ImageRejected) as info:
        load_rgb(png, max_pixels=50_000_000)
    # Pillow's check or ours (an earlier, larger --max-pixels raises Pillow's limit): the same terms
    assert info.value.reason.startswith("over the pixel limit: ") and "178,956,970" not in info.value.reason
    assert info.value.reason.endswith("900,000,000 pixels > 50,000,000 (raise --max-pixels to accept it)")
