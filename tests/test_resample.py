"""pix2pix.resample: Pillow's bicubic bit for bit, for any shape and any crop window."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pix2pix import resample
from pix2pix.resample import bicubic_coefficients, resize_bicubic


def _pillow(img: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((size, size), Image.BICUBIC))


def _smooth(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    small = rng.integers(0, 256, (max(h // 8, 1), max(w // 8, 1), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))


def test_random_shapes_and_windows_equal_pillow() -> None:
    rng = np.random.default_rng(0)
    orders = set()
    for trial in range(150):
        h, w = (int(v) for v in rng.integers(1, 400, 2))
        size = int(rng.integers(1, 400))
        img = _smooth(rng, h, w) if trial % 3 == 0 else rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        crop = int(rng.integers(1, size + 1))
        x, y = (int(v) for v in rng.integers(0, size - crop + 1, 2))
        want = _pillow(img, size)[y : y + crop, x : x + crop]
        got = resize_bicubic(img, size, x, y, crop)
        assert got.shape == (crop, crop, 3) and got.dtype == np.uint8
        assert np.array_equal(got, want), (h, w, size, crop, x, y)
        orders.add(resample._order(h, w, size))
    assert "hv" in orders  # the numba path ran (not only the Pillow fallback)


@pytest.mark.parametrize(("h", "w", "size"), [
    (256, 256, 286),   # the paper's jitter
    (512, 512, 286),   # a 512 dataset at the paper's load size: shrinking, antialiased
    (600, 150, 256),   # tall and shrinking: Pillow 13 runs the vertical pass first
    (150, 600, 256),
    (1, 1, 7), (7, 1, 1), (3, 200, 200),
])
def test_every_window_of_edge_shapes(h: int, w: int, size: int) -> None:
    img = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    full = _pillow(img, size)
    assert np.array_equal(resize_bicubic(img, size), full)
    for crop in {1, max(size // 2, 1), size}:
        for x, y in {(0, 0), (size - crop, size - crop), ((size - crop) // 3, (size - crop) // 2)}:
            assert np.array_equal(resize_bicubic(img, size, x, y, crop), full[y : y + crop, x : x + crop])


def test_a_view_of_one_half_needs_no_copy() -> None:
    ab = np.random.default_rng(1).integers(0, 256, (256, 512, 3), dtype=np.uint8)
    for half in (ab[:, :256], ab[:, 256:], ab[:, 256:][:, ::-1]):
        assert np.array_equal(resize_bicubic(half, 286, 7, 30, 256), _pillow(half, 286)[30:286, 7:263])


def test_same_size_returns_the_window_itself() -> None:
    img = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    assert np.array_equal(resize_bicubic(img, 4, 1, 2, 2), img[2:4, 1:3])


def test_coefficients_are_pillows_fixed_point() -> None:
    bounds, k = bicubic_coefficients(256, 286)
    assert k.shape == (286, 5) and bounds.shape == (286, 2)
    sums = k.sum(1)  # each output's taps sum to 1.0 in 22-bit fixed point, up to rounding
    assert np.all(np.abs(sums - (1 << 22)) <= 3)
    assert bounds[0, 0] == 0 and (bounds[:, 0] + bounds[:, 1]).max() == 256
    _, k_down = bicubic_coefficients(512, 256)  # shrinking by 2 widens the kernel (antialiasing)
    assert k_down.shape[1] == 9
    with pytest.raises(ValueError, match="sizes must be >= 1"):
        bicubic_coefficients(0, 10)


def test_window_outside_the_image_is_refused() -> None:
    img = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="outside the 12×12 image"):
        resize_bicubic(img, 12, 5, 0, 8)


def test_without_numba_pillow_gives_the_same_pixels(monkeypatch) -> None:
    # A missing numba cannot be caused inside this environment otherwise.
    monkeypatch.setattr(resample, "_kernels", lambda: None)
    monkeypatch.setattr(resample, "_orders", {})
    img = np.random.default_rng(2).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    assert resample._order(40, 30, 50) == "pillow"
    assert np.array_equal(resize_bicubic(img, 50, 3, 4, 40), _pillow(img, 50)[4:44, 3:43])


@pytest.mark.parametrize("bad", [
    np.zeros((8, 8, 3), np.float64), np.zeros((8, 8, 3), np.uint16), np.zeros((8, 8, 1), np.uint8),
    np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8), np.uint8), [[1, 2], [3, 4]],
])
def test_anything_but_rgb_uint8_is_refused(bad) -> None:
    with pytest.raises(ValueError, match=r"needs an \(H, W, 3\) uint8 array"):
        resize_bicubic(bad, 16)


def test_sizes_must_be_integers() -> None:
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(TypeError):
        resize_bicubic(img, 16.0)
    with pytest.raises(ValueError, match="size must be >= 1, got -5"):
        resize_bicubic(img, -5)


def test_kernels_compile_without_a_writable_cache(monkeypatch) -> None:
    # numba refuses cache=True where no cache folder is writable (a read-only install and a
    # read-only $HOME); running as root here, that cannot be caused for real.
    import numba

    from pix2pix import _resample_kernels

    def njit(**kw):
        if kw.get("cache"):
            raise RuntimeError("cannot cache function: no locator available")
        return numba.njit(**kw)

    monkeypatch.setattr(_resample_kernels, "njit", njit)
    rows = _resample_kernels._jit(_resample_kernels.resample_rows.py_func)
    img = np.random.default_rng(4).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    bounds, coeffs = bicubic_coefficients(20, 25)
    want = np.asarray(Image.fromarray(img).resize((30, 25), Image.BICUBIC))  # a vertical pass only
    assert np.array_equal(rows(img, 0, bounds, coeffs, 0, 25), want)
