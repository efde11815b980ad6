"""Classical harmonisation across an edit boundary: a gradient-domain seam blend.

The seam is where kept pixels meet free ones. In a band on the free side we solve a
Poisson problem (seamless cloning) whose guidance field is the picture's own
gradients, except that the step across the seam is attenuated by ``strength``. The
colour offset at the seam is thereby spread smoothly over the band: local colour
matching with the texture kept. Kept pixels and free pixels beyond the band are
Dirichlet boundaries, so they are never touched; a guided filter then softens the
last pixel of staircase left by a hard mask, following the picture's own edges.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import splu

# Solve at most this many unknowns at full resolution; larger bands are solved on a coarser grid.
MAX_UNKNOWNS = 400_000


def band_width(height: int, width: int, strength: float) -> int:
    """How far from the seam the correction reaches: wider for stronger refines and larger pictures."""
    return max(2, round((0.01 + 0.04 * strength) * float(np.hypot(height, width))))


def seam_correction(rgb: np.ndarray, kept: np.ndarray, band: np.ndarray, strength: float) -> np.ndarray:
    """The additive correction (H x W x 3, zero outside ``band``) that removes ``strength`` of the seam step.

    Solves ``laplacian(c) = strength * (sum over kept neighbours of (g_q - g_p))`` in the band, ``c = 0``
    elsewhere: a harmonic membrane that carries the seam's colour offset into the band.
    """
    h, w = kept.shape
    idx = np.full((h, w), -1, np.int64)
    ys, xs = np.nonzero(band)
    n = len(ys)
    idx[ys, xs] = np.arange(n)
    g = rgb.astype(np.float64)
    diag = np.zeros(n)
    rhs = np.zeros((n, 3))
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        qy, qx = ys + dy, xs + dx
        inside = (qy >= 0) & (qy < h) & (qx >= 0) & (qx < w)
        p, qy, qx = np.nonzero(inside)[0], qy[inside], qx[inside]
        diag[p] += 1.0  # Neumann at the picture's border: only neighbours that exist count
        q = idx[qy, qx]
        free_neighbour = q >= 0
        rows.append(p[free_neighbour])
        cols.append(q[free_neighbour])
        at_seam = kept[qy, qx]
        ps = p[at_seam]
        rhs[ps] += strength * (g[qy[at_seam], qx[at_seam]] - g[ys[ps], xs[ps]])
    r = np.concatenate([np.arange(n), *rows])
    c = np.concatenate([np.arange(n), *cols])
    data = np.concatenate([diag, -np.ones(sum(len(x) for x in rows))])
    solve = splu(csc_matrix((data, (r, c)), shape=(n, n)), permc_spec="MMD_AT_PLUS_A")  # symmetric: order A + A^T
    out = np.zeros((h, w, 3), np.float32)
    out[ys, xs] = solve.solve(rhs).astype(np.float32)
    return out


def seam_blend(rgb: np.ndarray, keep: np.ndarray, strength: float) -> np.ndarray:
    """Blend the free side of the keep boundary into the kept side; kept pixels and distant pixels stay exact.

    ``rgb`` is H x W x 3 uint8, ``keep`` an H x W weight (>= 0.5 counts as kept). Returns uint8.
    """
    kept = keep >= 0.5
    if strength <= 0 or kept.all() or not kept.any():
        return rgb
    h, w = kept.shape
    reach = band_width(h, w, strength)
    dist = cv2.distanceTransform((~kept).astype(np.uint8), cv2.DIST_L2, 5)
    band = ~kept & (dist <= reach)
    if band.sum() > MAX_UNKNOWNS:  # a smooth membrane loses nothing on a coarser grid
        f = (MAX_UNKNOWNS / band.sum()) ** 0.5
        small = (max(8, round(w * f)), max(8, round(h * f)))
        rgb_s = cv2.resize(rgb, small, interpolation=cv2.INTER_AREA)
        kept_s = cv2.resize(kept.astype(np.uint8), small, interpolation=cv2.INTER_NEAREST).astype(bool)
        band_s = cv2.resize(band.astype(np.uint8), small, interpolation=cv2.INTER_NEAREST).astype(bool) & ~kept_s
        correction = cv2.resize(seam_correction(rgb_s, kept_s, band_s, strength), (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        correction = seam_correction(rgb, kept, band, strength)
    out = rgb.astype(np.float32) + correction
    out = soften_staircase(out, dist, kept, strength)
    result = np.clip(np.round(out), 0, 255).astype(np.uint8)
    untouched = ~band
    result[untouched] = rgb[untouched]
    return result


def soften_staircase(rgb: np.ndarray, dist: np.ndarray, kept: np.ndarray, strength: float) -> np.ndarray:
    """Edge-aware softening of the free pixels touching the seam (a hard mask leaves a one-pixel staircase)."""
    ring = ~kept & (dist <= 1.5)
    if not ring.any():
        return rgb
    radius = 2
    ys, xs = np.nonzero(ring)
    y0, y1 = max(0, ys.min() - 2 * radius), ys.max() + 1 + 2 * radius  # the filter only needs the ring's neighbourhood
    x0, x1 = max(0, xs.min() - 2 * radius), xs.max() + 1 + 2 * radius
    guide = np.clip(rgb[y0:y1, x0:x1], 0, 255) / 255.0
    smooth = cv2.ximgproc.guidedFilter(guide, guide, radius, 1e-3) * 255.0
    out = rgb.copy()
    near = out[y0:y1, x0:x1]
    sel = ring[y0:y1, x0:x1]
    near[sel] = (1.0 - strength) * near[sel] + strength * smooth[sel]
    return out
