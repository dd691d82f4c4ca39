"""Verify a built A|B dataset: counts, image geometry, and every hash in the manifest.

`inspect_dataset` reads everything and returns a report listing each problem with the file it
concerns; it never stops at the first one, so a person can fix a dataset in one pass.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from pix2pix import dataset
from pix2pix.dataset import SPLITS
from pix2pix.prepare.scan import IMAGE_SUFFIXES


@dataclass
class InspectReport:
    """Counts per split, image size, and problems found (empty when the dataset is sound)."""

    root: str
    counts: dict[str, int] = field(default_factory=dict)
    image_size: tuple[int, int] | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    has_manifest: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        size = f"{self.image_size[0]}x{self.image_size[1]}" if self.image_size else "?"
        lines = [f"dataset: {self.root}", f"pairs: {sum(self.counts.values())} ({counts}), A|B images {size}"]
        lines += [f"warning: {w}" for w in self.warnings]
        if self.problems:
            lines.append(f"{len(self.problems)} problem(s):")
            lines += [f"  - {p}" for p in self.problems[:50]]
            if len(self.problems) > 50:
                lines.append(f"  ... and {len(self.problems) - 50} more")
        else:
            lines.append("ok: every image is a valid A|B pair and every hash matches the manifest")
        return "\n".join(lines)


def _image_files(root: Path) -> dict[str, Path]:
    out = {}
    for split in SPLITS:
        d = root / split
        if d.is_dir():
            for p in sorted(d.iterdir()):
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                    out[f"{split}/{p.name}"] = p
    return out


def _check_image(path: Path, rel: str, report: InspectReport) -> tuple[int, int] | None:
    try:
        with Image.open(path) as im:
            im.load()
            size = im.size
    except Exception as exc:  # noqa: BLE001 - any decode failure is a finding, not a crash
        report.problems.append(f"{rel}: cannot be decoded ({exc})")
        return None
    w, h = size
    if w != 2 * h:
        report.problems.append(f"{rel}: {w}x{h} is not an A|B pair (width must be twice the height)")
    return size


def inspect_dataset(root: Path) -> InspectReport:
    """Check a dataset folder written by `pix2pix build` (or an official A|B dataset)."""
    root = Path(root)
    report = InspectReport(str(root))
    if not root.is_dir():
        report.problems.append(f"{root}: not a folder")
        return report
    files = _image_files(root)
    report.counts = {s: sum(k.startswith(f"{s}/") for k in files) for s in SPLITS}
    if not files:
        report.problems.append(f"{root}: no images in train/, val/ or test/")
    sizes: dict[tuple[int, int], list[str]] = {}
    for rel, path in files.items():
        size = _check_image(path, rel, report)
        if size:
            sizes.setdefault(size, []).append(rel)
    if len(sizes) > 1:
        desc = "; ".join(f"{w}x{h}: {len(v)} (e.g. {v[0]})" for (w, h), v in sorted(sizes.items()))
        report.problems.append(f"images have different sizes: {desc}")
    if sizes:
        report.image_size = max(sizes, key=lambda s: len(sizes[s]))

    manifest = root / dataset.MANIFEST
    if not manifest.is_file():
        report.warnings.append("no manifest.jsonl: hashes not verified (not built by pix2pix build?)")
        return report
    report.has_manifest = True
    # Line by line, not `dataset.read_manifest` / `read_jsonl`: inspect lists every bad line, they stop at the first.
    records = []
    for n, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            report.problems.append(f"manifest.jsonl line {n}: not JSON ({exc.msg})")
    listed = set()
    for rec in records:
        rel = rec.get("path", "?")
        listed.add(rel)
        if rel not in files:
            report.problems.append(f"{rel}: listed in manifest.jsonl but missing")
            continue
        if rec.get("split") != rel.split("/", 1)[0]:
            report.problems.append(f"{rel}: manifest split {rec.get('split')!r} does not match its folder")
        got = hashlib.sha256(files[rel].read_bytes()).hexdigest()
        if got != rec.get("sha256"):
            report.problems.append(f"{rel}: sha256 {got[:12]}… differs from manifest {str(rec.get('sha256'))[:12]}…")
        if sizes and list(rec.get("size", [])) != list(report.image_size or ()):
            report.problems.append(f"{rel}: manifest size {rec.get('size')} differs from {report.image_size}")
    for rel in sorted(set(files) - listed):
        report.problems.append(f"{rel}: image not listed in manifest.jsonl")

    try:
        meta = dataset.read_meta(root)
    except dataset.DatasetError as exc:
        report.problems.append(str(exc))
        return report
    if meta is None:
        report.problems.append("dataset.json is missing")
        return report
    if meta.get("counts") != report.counts:
        report.problems.append(f"dataset.json counts {meta.get('counts')} differ from files {report.counts}")
    if meta.get("manifest_sha256") != dataset.dataset_fingerprint(root):
        report.problems.append("manifest.jsonl was changed after the build (hash differs from dataset.json)")
    size = meta.get("size")
    if size and report.image_size and tuple(report.image_size) != (2 * size, size):
        report.problems.append(f"dataset.json size {size} but images are {report.image_size[0]}x{report.image_size[1]}")
    return report
