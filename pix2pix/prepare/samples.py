"""Built-in demo photos: real photographs that scikit-image ships (public domain / CC0).

Read from the installed package, so the demo needs no network.
"""

from __future__ import annotations

from pathlib import Path

# Name -> licence note, from the docstrings of skimage.data.
DEMO_PHOTOS = {
    "astronaut": "Eileen Collins, NASA; public domain",
    "chelsea": "Stefan van der Walt's cat; CC0",
    "coffee": "Rachel Michetti; CC0",
    "rocket": "SpaceX launch, public domain (CC0)",
    "camera": "cameraman, CC0 by Lav Varshney",
    "hubble_deep_field": "NASA/ESA, public domain",
    "immunohistochemistry": "Dr. Arthur Baker; CC0",
    "retina": "Häggström, Mikael (2014); CC0",
    "coins": "Greek coins from Pompeii, Brooklyn Museum; public domain",
    "clock": "Stefan van der Walt; CC0",
    "grass": "Pixabay texture; CC0",
    "gravel": "Pixabay texture; CC0",
}


def write_samples(dest: Path, names: tuple[str, ...] | None = None) -> list[Path]:
    """Write the demo photos as JPEGs (q95) into `dest` and return their paths, sorted.

    Existing files are kept, so calling it twice is cheap and does not change bytes.
    """
    import numpy as np
    import skimage.data
    from PIL import Image

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names or tuple(DEMO_PHOTOS):
        path = dest / f"{name}.jpg"
        if not path.exists():
            img = np.asarray(getattr(skimage.data, name)())
            if img.ndim == 3 and img.shape[2] == 4:
                img = img[:, :, :3]
            Image.fromarray(img).save(path, "JPEG", quality=95)
        written.append(path)
    (dest / "LICENSES.txt").write_text(
        "Demo photographs from scikit-image's skimage.data module:\n"
        + "".join(f"{n}.jpg: {DEMO_PHOTOS[n]}\n" for n in names or DEMO_PHOTOS)
    )
    return sorted(written)
