"""Reading real-world image files into clean 8-bit RGB arrays.

`load_rgb` fixes the silent failures of a plain `Image.open(p).convert("RGB")`: EXIF orientation,
CMYK through its embedded ICC profile, transparency composited on white, 16-bit images scaled
(not clipped), grayscale to three channels. Files that cannot be used raise `ImageRejected` with
a reason a person understands. JPEGs are decoded at a reduced DCT scale when the target is
small, which is most of the speed of a dataset build.
"""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from pix2pix.errors import ImageRejected

DEFAULT_MAX_PIXELS = 100_000_000
WHITE = (255, 255, 255)


def _to_rgb(im: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """Convert any Pillow mode to RGB without the usual losses."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode == "CMYK":
        icc = im.info.get("icc_profile")
        if icc:
            try:
                src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
                dst = ImageCms.createProfile("sRGB")
                return ImageCms.profileToProfile(
                    im, src, dst, renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode="RGB"
                )
            except (ImageCms.PyCMSError, OSError):
                pass  # a broken profile is common; the naive conversion is still usable
        return im.convert("RGB")
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit data: convert("RGB") would clip everything above 255 to white.
        a = np.asarray(im, dtype=np.float64)
        # An I;16 mode says the range is 0..65535 even when a dark image never exceeds 255;
        # only 32-bit "I" has no declared range, so there the values decide.
        sixteen_bit = mode != "I" or a.max(initial=0) > 255
        a = np.clip(a / 257.0, 0, 255) if sixteen_bit else np.clip(a, 0, 255)
        return Image.fromarray(np.rint(a).astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        a = np.asarray(im, dtype=np.float64)
        scale = 255.0 if a.max(initial=0) <= 1.0 else 1.0
        return Image.fromarray(np.rint(np.clip(a * scale, 0, 255)).astype(np.uint8)).convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in im.info
    )
    if has_alpha:
        rgba = im.convert("RGBA")
        base = Image.new("RGBA", rgba.size, background + (255,))
        return Image.alpha_composite(base, rgba).convert("RGB")
    return im.convert("RGB")


def _over_limit(exc: Image.DecompressionBombError, max_pixels: int | None) -> ImageRejected:
    """Pillow's own bomb refusal, told in our terms: the size, our limit, and the flag to raise it."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
    limit = f" > {max_pixels:,}" if max_pixels else ""
    return ImageRejected(f"over the pixel limit: {size}{limit} (raise --max-pixels to accept it)",
                         "over the pixel limit")


def open_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open encoded image bytes lazily, checking emptiness, format and the pixel limit.

    The pixel data is not decoded yet, so a caller can still ask for a reduced-scale JPEG decode
    with `draft`. Messages do not name the file: the caller knows it and reports it beside them.
    """
    if not data:
        raise ImageRejected("empty file (0 bytes)", "empty file")
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        # Pillow refuses images over 2x its own limit inside Image.open, before our check could
        # accept them; a user who raised --max-pixels asked for exactly those. Only ever raised.
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            # Our own limit applies below; Pillow's bomb warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise _over_limit(exc, max_pixels) from exc
    except UnidentifiedImageError as exc:
        head = data[:64]
        kind = "a text file" if _looks_like_text(head) else "not a recognised image format"
        raise ImageRejected(f"not an image ({kind})", "not an image") from exc
    except OSError as exc:
        # Plugins read the headers inside Image.open: a file cut short there ("Truncated File
        # Read") or with a broken header raises OSError here, not at load().
        raise _decode_error(exc, None) from exc
    w, h = im.size
    if w * h > max_pixels:
        raise ImageRejected(
            f"over the pixel limit: {w}x{h} = {w * h:,} pixels > {max_pixels:,} "
            "(raise --max-pixels to accept it)",
            "over the pixel limit",
        )
    if w < 1 or h < 1:
        raise ImageRejected(f"image has no pixels ({w}x{h})", "corrupt")
    return im


# Entropy-coded bytes that never contain 0xFF (no marker), fixed so the check is deterministic.
_FILLER = bytes(np.random.default_rng(0).integers(0, 255, 4096, dtype=np.uint8))


def jpeg_may_end_early(data: bytes, decoded: np.ndarray) -> bool:
    """Cheap screen for `_jpeg_ends_early`: a progressive file, or a last row ending in a long flat run.

    A cut baseline file's missing blocks are painted in one flat colour up to the last pixel;
    a cut progressive file may be complete in coarse form, so it is always checked.
    """
    sos = data.find(b"\xff\xda")
    if b"\xff\xc2" in data[: sos if sos > 0 else len(data)]:
        return True
    last_row = decoded[-1].reshape(decoded.shape[1], -1)
    same = (last_row == last_row[-1]).all(axis=1)
    flat_tail = len(same) - 1 - int(np.flatnonzero(~same)[-1]) if not same.all() else len(same)
    # A few equal pixels are common (saturated corners); a cut leaves a long flat run (the
    # whole row unless the cut fell in the last 1/16 of the last block row).
    return flat_tail >= max(8, len(same) // 16)


def _jpeg_ends_early(data: bytes, im: Image.Image, min_size: tuple[int, int] | None) -> bool:
    """True when a decoded JPEG ran out of data before its last block.

    libjpeg meets an early end-of-image marker with a warning Pillow cannot see, and paints the
    missing blocks flat: a file cut short and closed with FF D9 decodes as a partly grey image.
    The test: decode again with filler bytes inserted before that marker. A complete file never
    reads them (identical pixels); a cut one decodes them into its missing blocks. Run only for
    progressive files and for images whose last row ends flat (cheap to see), so an ordinary
    photo pays nothing.
    """
    body = data.rstrip(b"\0\r\n\t ")
    if not body.endswith(b"\xff\xd9"):
        return False  # a cut without a closing marker is refused by Pillow itself
    first = np.asarray(im)
    if not jpeg_may_end_early(data, first):
        return False
    return _filler_changes(body, first, min_size, im.mode)


def _decode_error(exc: OSError, fmt: str | None) -> ImageRejected:
    msg = str(exc)
    if "truncated" in msg.lower():
        return ImageRejected(f"truncated {fmt or 'image'} file (re-download or re-export it)", "truncated")
    return ImageRejected(f"corrupt {fmt or 'image'} file ({msg})", "corrupt")


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def load_rgb(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Decode image bytes into an H×W×3 uint8 RGB array, orientation applied.

    `min_size` (width, height) lets a JPEG decode at a reduced DCT scale as long as the result
    stays at least that large in both sides (after orientation is applied the sides may swap, so
    pass a square or a generous size). Raises `ImageRejected` for anything unusable.
    """
    im = open_image(data, max_pixels=max_pixels)
    try:
        if min_size is not None and im.format == "JPEG":
            im.draft("RGB", min_size)
        im.load()
        if im.format == "JPEG" and _jpeg_ends_early(data, im, min_size):
            raise ImageRejected(
                "truncated JPEG file: its data ends before the image does (re-download or re-export it)",
                "truncated",
            )
        if im.getexif().get(0x0112, 1) != 1:  # exif_transpose copies even when nothing to do
            im = ImageOps.exif_transpose(im)
        im = _to_rgb(im)
        arr = np.asarray(im)
    except Image.DecompressionBombError as exc:
        raise _over_limit(exc, max_pixels) from exc
    except OSError as exc:
        raise _decode_error(exc, im.format) from exc
    except (ValueError, SyntaxError, IndexError, TypeError) as exc:
        raise ImageRejected(f"corrupt {im.format or 'image'} file ({exc})", "corrupt") from exc
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ImageRejected(f"unsupported pixel layout {arr.shape} {arr.dtype}", "corrupt")
    return arr


# --- the one decoder: OpenCV for plain JPEGs, `load_rgb` for everything else ------------------

_REDUCED = {1: 0, 2: 16, 4: 32, 8: 64}  # DCT scale -> OpenCV's IMREAD_REDUCED_* bit


def _jpeg_header(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, components) of a baseline/progressive JPEG without EXIF, else None.

    Walks the marker segments up to the frame header. A file with an EXIF block (it may carry
    an orientation) or anything unusual returns None and takes the general path.
    """
    i, n = 2, len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xE1 and data[i + 4 : i + 8] == b"Exif":
            return None
        if marker in (0xC0, 0xC1, 0xC2):  # baseline, extended, progressive Huffman
            h, w = int.from_bytes(data[i + 5 : i + 7], "big"), int.from_bytes(data[i + 7 : i + 9], "big")
            return w, h, data[i + 9]
        if 0xC3 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) or marker == 0xDA:
            return None  # lossless/arithmetic frames, or scan data before any frame header
        i += 2 + length
    return None


def _decode_plain_jpeg(data: bytes, max_pixels: int, min_size: tuple[int, int] | None) -> np.ndarray | None:
    """The common case, ~1.5x faster than through Pillow: a complete (ends with its EOI marker)
    three-component JPEG without EXIF, within `max_pixels`, decoded by OpenCV at the DCT scale
    Pillow's `draft` would pick, to the same pixels (same libjpeg-turbo IDCT). Anything else,
    including every file that could be rejected, returns None and goes through `load_rgb`."""
    if data[:3] != b"\xff\xd8\xff" or data[-2:] != b"\xff\xd9":
        return None
    header = _jpeg_header(data)
    if header is None or header[2] != 3 or not 0 < header[0] * header[1] <= max_pixels:
        return None
    import cv2

    w, h, _ = header
    scale = 1
    if min_size is not None:
        ratio = max(1, min(w // min_size[0], h // min_size[1]))
        scale = next(s for s in (8, 4, 2, 1) if ratio >= s)
    flags = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION | _REDUCED[scale]
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if arr is None or arr.shape[:2] != (-(-h // scale), -(-w // scale)):
        return None
    if jpeg_may_end_early(data, arr) and _filler_changes(data, arr, min_size, "RGB"):
        return None  # cut short and closed with FF D9 (or decoders disagree): `load_rgb` decides
    return arr


def _filler_changes(body: bytes, first: np.ndarray, min_size: tuple[int, int] | None, mode: str) -> bool:
    """The filler test of `_jpeg_ends_early`: decode `body` (ending in FF D9) again with filler
    bytes before that marker, in `mode` at the same DCT scale, and compare with `first`. Always
    Pillow: libjpeg's warning about the extra bytes is silent there, printed by OpenCV."""
    try:
        again = Image.open(io.BytesIO(body[:-2] + _FILLER + b"\xff\xd9"))
        if min_size is not None:
            again.draft(mode, min_size)
        again.load()
        second = np.asarray(again if again.mode == mode else again.convert(mode))
    except (OSError, ValueError, SyntaxError):
        return True
    return second.shape != first.shape or not np.array_equal(first, second)


def decode_rgb(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """The one decoder of the package (build, training, evaluation): bytes → H×W×3 uint8 RGB.

    A plain JPEG goes through OpenCV (faster, same pixels); everything else, and every file
    that could be rejected, through `load_rgb` (same arguments, same `ImageRejected`).
    """
    fast = _decode_plain_jpeg(data, max_pixels, min_size)
    if fast is not None:
        return fast
    return load_rgb(data, max_pixels=max_pixels, min_size=min_size)
