"""Soft mask edges and connected regions: the shared finishing steps of every perception mask."""

from __future__ import annotations

import cv2
import numpy as np


def edge_radius(shape: tuple[int, int]) -> int:
    """Guided-filter radius that scales with the picture (8 px at 512 px)."""
    return max(2, round(min(shape) / 64))


def refine_edges(rgb: np.ndarray, alpha: np.ndarray, radius: int | None = None, eps: float = 1e-3) -> np.ndarray:
    """Snap a coarse alpha to the picture's edges with a guided filter; the result is soft only across edges.

    ``eps`` is in (intensity / 255)^2 units: smaller follows weaker edges.
    """
    r = radius or edge_radius(alpha.shape)
    out = cv2.ximgproc.guidedFilter(
        guide=np.ascontiguousarray(rgb, np.uint8), src=np.ascontiguousarray(alpha, np.float32), radius=r, eps=eps * 255.0**2, dDepth=-1
    )
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def components(binary: np.ndarray, min_area: int = 1) -> list[tuple[np.ndarray, tuple[int, int, int, int], int]]:
    """Connected regions of a boolean mask as (region, (x0, y0, x1, y1), area), largest first."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    found = []
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if area >= min_area:
            found.append((labels == i, (x, y, x + w, y + h), area))
    return sorted(found, key=lambda c: -c[2])


def touching(binary: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The parts of a boolean mask connected to any seed pixel."""
    n, labels = cv2.connectedComponents(binary.astype(np.uint8), connectivity=8)
    keep = np.unique(labels[seeds & binary])
    keep = keep[keep > 0]
    return np.isin(labels, keep) if n > 1 else np.zeros_like(binary, bool)
