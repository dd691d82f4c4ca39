"""Shared fixtures: isolated tool state and real image files made on the spot."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Keep Prefect and DVC state out of the user's home and /var/tmp for the whole run.
_STATE = Path(tempfile.mkdtemp(prefix="pix2pix-test-state-"))
os.environ.setdefault("PREFECT_HOME", str(_STATE / "prefect"))
os.environ.setdefault("DVC_SITE_CACHE_DIR", str(_STATE / "dvc-site"))
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real photographs shipped by scikit-image, as RGB uint8 arrays."""
    import skimage.data

    return {n: np.asarray(getattr(skimage.data, n)()) for n in ("astronaut", "chelsea", "coffee", "rocket")}
