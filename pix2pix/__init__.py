"""pix2pix-pipeline: paired image-to-image datasets, pix2pix training and evaluation.

The library does the work; the CLI (`pix2pix ...`) and the Prefect flows (`flows/`) are thin
adapters around it. Nothing heavy is imported here so that `pix2pix --help` starts fast.
"""

__version__ = "0.1.0"
