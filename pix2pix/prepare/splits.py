"""Which split each pair goes to, and the duplicates that decide it.

    split = split_for(split_key(item), seed, (0.8, 0.1, 0.1))          # when the build is planned
    rows, stats = group_splits(records, near_duplicate_groups(records, 4), staging, seed)  # finalize

`split_for` places an item by a hash of (seed, key) alone, so adding images never moves existing
ones. At the end of a build, `dedup_key` finds exact duplicates, and look-alike images (dHash and
thumbnail close) are grouped and each group moved into one split, so no near-copy of a test image
is trained on.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pix2pix.prepare.config import SPLITS
from pix2pix.prepare.scan import Item


def split_for(key: str, seed: int, fractions: Sequence[float]) -> str:
    """Stable split of one item: a hash of (seed, key) placed on [0, 1).

    Depends on nothing but the item's own key, so adding images never moves existing ones.
    """
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for name, frac in zip(SPLITS, fractions):
        edge += frac
        if u < edge:
            return name
    return next(n for n, f in zip(reversed(SPLITS), reversed(fractions)) if f > 0)


def split_key(item: Item) -> str:
    """What an item's split is drawn from: its target (B or A|B) file, else its id."""
    return item.paths.get("B") or item.paths.get("AB") or item.id


# Near-duplicates: dHash within `near_duplicate_bits` AND 8×8 RGB thumbnails within this mean
# absolute difference (0..255). The thumbnail check is what tells flat or smooth images apart
# (dHash sees only brightness differences, so every flat image hashes to 0).
NEAR_DUPLICATE_THUMB_DIFF = 8.0
# Each image is compared with at most this many neighbours per hash band (sorted by brightness),
# so thousands of look-alikes cost O(n) comparisons, not O(n²); groups still form by chaining.
NEAR_DUPLICATE_NEIGHBOURS = 24
# near_duplicates.jsonl lists at most this many members per group (the count is always exact).
MAX_LISTED_MEMBERS = 50
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def near_duplicate_groups(records: list[dict], max_bits: int) -> list[list[int]]:
    """Groups (lists of indices into `records`, each of 2 or more) of near-duplicate images.

    Candidates come from hash bands: the 64-bit hash is cut into max_bits+1 bands, and two hashes
    within max_bits bits agree exactly on at least one band (pigeonhole). Within a band bucket
    each image meets only its next NEAR_DUPLICATE_NEIGHBOURS in brightness order; pairs that pass
    both checks are joined by union-find.
    """
    n = len(records)
    if n < 2:
        return []
    hashes = np.array([r["_dhash"] for r in records], np.uint64)
    thumbs = np.frombuffer(b"".join(bytes.fromhex(r["_thumb"]) for r in records), np.uint8).reshape(n, -1)
    thumbs = thumbs.astype(np.int16)
    brightness = thumbs.mean(axis=1)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    n_bands = max_bits + 1
    bounds = [64 * k // n_bands for k in range(n_bands + 1)]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        band = (hashes >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1)
        order = np.lexsort((brightness, band))  # by band value, then brightness
        sorted_band = band[order]
        for off in range(1, min(NEAR_DUPLICATE_NEIGHBOURS, n - 1) + 1):
            i, j = order[:-off], order[off:]
            same = sorted_band[:-off] == sorted_band[off:]
            if not same.any():
                break  # no bucket has more than `off` members
            i, j = i[same], j[same]
            bits = _POPCOUNT[(hashes[i] ^ hashes[j]).view(np.uint8).reshape(-1, 8)].sum(axis=1)
            near = bits <= max_bits
            i, j = i[near], j[near]
            close = np.abs(thumbs[i] - thumbs[j]).mean(axis=1) <= NEAR_DUPLICATE_THUMB_DIFF
            for x, y in zip(i[close].tolist(), j[close].tolist()):
                rx, ry = find(x), find(y)
                if rx != ry:
                    parent[max(rx, ry)] = min(rx, ry)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        groups[find(i)].append(i)
    return [g for g in groups.values() if len(g) > 1]


def _key_rank(record: dict, seed: int) -> bytes:
    key = record["source"].get("B") or record["source"].get("AB") or record["id"]
    return hashlib.sha256(f"{seed}\0{key}".encode()).digest()


def group_splits(records: list[dict], groups: list[list[int]], staging: Path, seed: int) -> tuple[list[dict], dict]:
    """Give each near-duplicate group one split, moving members' files; returns the report rows
    of near_duplicates.jsonl and the counts for dataset.json.

    The group's split is that of its member with the smallest (seed, key) hash, so it depends
    only on the group (a new unrelated image never changes it). Members whose split the source
    fixed (train/ val/ test/ folders, kept without --resplit) are never moved, and decide first.
    """
    rows, moved_groups, moved_images, across = [], 0, 0, 0
    for n, group in enumerate(sorted(groups, key=lambda g: records[g[0]]["path"])):
        members = [records[i] for i in group]
        fixed = [r for r in members if r["_fixed"]]
        split = min(fixed or members, key=lambda r: _key_rank(r, seed))["split"]
        moved = 0
        for r in members:
            if r["split"] == split or r["_fixed"]:
                continue
            rel = f"{split}/{r['path'].split('/', 1)[1]}"
            if (staging / rel).exists():
                continue  # that name is taken in the target split: stays, counted as across
            (staging / r["path"]).rename(staging / rel)
            r["split"], r["path"] = split, rel
            moved += 1
        for r in members:
            r["near_duplicate_group"] = n
        splits = sorted({r["split"] for r in members})
        across += len(splits) > 1
        moved_groups += moved > 0
        moved_images += moved
        rows.append({
            "group": n, "size": len(members), "splits": splits, "moved": moved,
            "members": [r["path"] for r in members[:MAX_LISTED_MEMBERS]],
            **({"members_not_listed": len(members) - MAX_LISTED_MEMBERS} if len(members) > MAX_LISTED_MEMBERS else {}),
        })
    stats = {"groups": len(groups), "images": sum(map(len, groups)), "groups_moved": moved_groups,
             "images_moved": moved_images, "groups_across_splits": across}
    return rows, stats


def dedup_key(record: dict) -> str:
    """Same source bytes = a duplicate, except for the different crops of one photo."""
    crop = record["op_params"].get("crop")
    return record["source_sha256"] + (f"#c{crop['index']}" if crop else "")
