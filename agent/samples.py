"""Real sample photos that ship inside installed packages (no downloads)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from banana.tools.values import Image


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)

    return load


def _matplotlib(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from matplotlib.cbook import get_sample_data

        with get_sample_data(name) as f:
            return Image.decode(f.read(), f"sample:{name}").pixels

    return load


SAMPLES: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"),
    "coffee": _skimage("coffee"),
    "chelsea": _skimage("chelsea"),
    "rocket": _skimage("rocket"),
    "motorcycle": lambda: _skimage("stereo_motorcycle")()[0],
    "china": _sklearn("china.jpg"),
    "flower": _sklearn("flower.jpg"),
    "grace_hopper": _matplotlib("grace_hopper.jpg"),
}


def sample(name: str) -> Image:
    """A sample photo by name, e.g. ``sample("astronaut")``."""
    if name not in SAMPLES:
        raise KeyError(f"unknown sample {name!r}; known: {', '.join(SAMPLES)}")
    return Image(np.ascontiguousarray(SAMPLES[name]()[:, :, :3]), meta={"source": f"sample:{name}"})


def load_image(spec: str, *, max_pixels: int | None = None, max_side: int | None = None) -> Image:
    """A picture from a file path or ``sample:NAME``; files go through the one loader, :meth:`Image.load`
    (limits before decoding, EXIF, alpha, deep modes; :class:`~banana.tools.pictures.PictureError` names the file)."""
    if spec.startswith("sample:"):
        return sample(spec.split(":", 1)[1])
    return Image.load(spec, max_pixels=max_pixels, max_side=max_side)
