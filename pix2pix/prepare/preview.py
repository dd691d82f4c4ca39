"""A contact sheet of a few pairs per split, so a person can look instead of read."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from pix2pix.prepare.config import SPLITS

THUMB = 128  # height of one pair in the sheet; pairs are 2·THUMB wide
LABEL_W = 56
GAP = 4


def write_preview(root: Path, records: Sequence[dict], dest: Path, *, per_split: int = 4) -> None:
    """Write a JPEG grid: one row per split, up to `per_split` A|B pairs, in manifest order."""
    rows = []
    for split in SPLITS:
        chosen = [r for r in records if r["split"] == split][:per_split]
        if chosen:
            rows.append((split, chosen))
    cols = max((len(c) for _, c in rows), default=1)
    width = LABEL_W + cols * (2 * THUMB + GAP) + GAP
    height = max(1, len(rows)) * (THUMB + GAP) + GAP
    sheet = Image.new("RGB", (width, height), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    for row, (split, chosen) in enumerate(rows):
        y = GAP + row * (THUMB + GAP)
        draw.text((6, y + THUMB // 2 - 6), split, fill=(230, 230, 230))
        for col, rec in enumerate(chosen):
            with Image.open(root / rec["path"]) as im:
                thumb = im.convert("RGB").resize((2 * THUMB, THUMB), Image.Resampling.BILINEAR)
            x = LABEL_W + GAP + col * (2 * THUMB + GAP)
            sheet.paste(thumb, (x, y))
            draw.line([(x + THUMB, y), (x + THUMB, y + THUMB - 1)], fill=(255, 64, 64))
    sheet.save(dest, "JPEG", quality=90)
