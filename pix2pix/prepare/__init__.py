"""Data preparation: sources, downloads, archives, per-image ops, the builder, verification."""
