"""File-system-safe names: the one sanitiser, and output ids unique per split.

``safe_name`` is the one rule for a name made from outside data (a file's name, a URL's last
part, a URL list's name); the builder's ids, downloaded files and URL-list folders all use it.
``assign_ids`` turns (stem, relative path, split) keys into ids that are unique within each
split ignoring case and depend only on the set of inputs, never on their order.
(`pix2pix translate` keeps its inputs' names as they are: they already name files on this disk.)
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import defaultdict

# Output ids keep letters and digits of any script (猫, фото), '.', '-' and '_'; every other run of
# characters becomes one '_'. Names are NFC-normalised first, so an id reads the same whichever
# form a file system stored.
_ID_MAX_BYTES = 120  # + extension suffix, hash and ".jpg" stays far below the 255-byte name limit
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def safe_name(name: str, *, ascii_only: bool = False) -> str:
    """`name` as one file-system-safe path component, readable, possibly empty (callers pick a fallback).

    Letters and digits of any script (with their combining marks), '.', '-' and '_' are kept;
    every other run of characters (a '/' too) becomes one '_'. No leading dot (it hides a file),
    no trailing dot or space (Windows drops them), and a Windows device name (`con`, `nul.tar.gz`)
    gets '_' after its first part, so an extension stays last (`con_.jpg`). `ascii_only`: keep
    only ASCII letters and digits, for names taken from URLs (whatever bytes a server percent-
    encodes). No length limit: callers cut to theirs. Not injective: `a b` and `a_b` both give
    `a_b` (`assign_ids` makes ids unique).
    """
    out, gap = [], False
    for ch in name:
        if ch in "._-" or (ch.isascii() and ch.isalnum() if ascii_only else unicodedata.category(ch)[0] in "LNM"):
            out.append(ch)
            gap = False
        elif not gap:
            out.append("_")
            gap = True
    slug = "".join(out).lstrip(".").rstrip(". ")
    first, dot, rest = slug.partition(".")
    if first.casefold() in _WINDOWS_RESERVED:
        slug = f"{first}_{dot}{rest}"
    return slug


def _suffixed(base: str, suffix: str) -> str:
    """`base + suffix` within `_ID_MAX_BYTES` (a rebuild of our dataset then keeps the id)."""
    return base.encode()[: _ID_MAX_BYTES - len(suffix.encode())].decode("utf-8", "ignore") + suffix


def make_id(rel_without_ext: str) -> str:
    """A readable, file-system-safe id: sub-folders joined with '__', unsafe characters made '_'.

    Lossy on purpose (`a b` and `a_b` both give `a_b`); `assign_ids` makes ids unique.
    """
    name = unicodedata.normalize("NFC", rel_without_ext)
    slug = "__".join(p for p in (safe_name(part) for part in name.split("/")) if p) or "_"
    raw = slug.encode("utf-8")
    if len(raw) > _ID_MAX_BYTES:
        slug = raw[:_ID_MAX_BYTES].decode("utf-8", "ignore").rstrip(". ")
    return slug


def _is_verbatim(stem: str, slug: str) -> bool:
    """True when the id spells the name exactly (sub-folders aside): nothing was replaced."""
    return slug == "__".join(p for p in stem.split("/") if p)


def _path_hash(rel: str, n: int) -> str:
    # Hash the exact name (surrogate-escaped bytes included): NFC and NFD twins differ here.
    return hashlib.sha256(rel.encode("utf-8", "surrogateescape")).hexdigest()[:n]


def assign_ids(keys: list[tuple[str, str, str | None]]) -> list[str]:
    """Ids for (stem, full relative path, split) keys, unique within each split ignoring case.

    Ids are compared casefolded, so two files never land on one name on a case-insensitive disk
    either. An id is the readable `make_id` of the stem unless that clashes with another file's:
    then a file whose id spells its name exactly keeps it (`a_b.jpg` stays `a_b` beside
    `a b.jpg`), the others get their extension (`x_jpg`, `x_png`) when that tells them apart, or
    else `-` and 8 hex digits of their path's sha256 (`a_b-3f0c9e12`). The result depends only on
    the set of inputs, never on their order.
    """
    ids = [make_id(stem) for stem, _, _ in keys]
    groups: dict[tuple[str | None, str], list[int]] = defaultdict(list)
    for i, (_, _, split) in enumerate(keys):
        groups[(split, ids[i].casefold())].append(i)
    taken = {k for k, members in groups.items() if len(members) == 1}
    pending: list[int] = []
    for (split, _), members in groups.items():
        if len(members) == 1:
            continue
        verbatim = [i for i in members if _is_verbatim(keys[i][0], ids[i])]
        keep = verbatim[0] if len(verbatim) == 1 else None
        if keep is not None:
            taken.add((split, ids[keep].casefold()))
        exts = defaultdict(int)
        for i in members:
            exts[_ext(keys[i][1])] += 1
        for i in members:
            if i == keep:
                continue
            if exts[_ext(keys[i][1])] == 1:
                ids[i] = _suffixed(ids[i], f"_{_ext(keys[i][1])}")
            else:
                ids[i] = _suffixed(ids[i], f"-{_path_hash(keys[i][1], 8)}")
            pending.append(i)
    # What the suffixes made can still meet a plain id or each other (`x_jpg.png` beside `x.jpg`
    # and `x.png`): settle those in path order with a longer hash, then a counter.
    for i in sorted(pending, key=lambda i: keys[i][1]):
        split, base, rel = keys[i][2], ids[i], keys[i][1]
        candidates = [base] + [_suffixed(make_id(keys[i][0]), f"-{_path_hash(rel, n)}") for n in (8, 16, 64)]
        for cand in candidates:
            if (split, cand.casefold()) not in taken:
                break
        else:
            k = 2
            while (split, f"{candidates[-1]}-{k}".casefold()) in taken:
                k += 1
            cand = f"{candidates[-1]}-{k}"
        ids[i] = cand
        taken.add((split, cand.casefold()))
    return ids


def _ext(rel: str) -> str:
    name = rel.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1] if "." in name else "noext"
    return make_id(ext.lower())[:10]
