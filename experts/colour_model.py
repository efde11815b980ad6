"""A Gaussian colour model in CIELAB, fitted to sample pixels: how skin or hair looks in this very picture."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

TRIM = 7.8  # squared distance of the 95th percentile of a 3-d Gaussian: samples beyond it are outliers


def to_lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


@dataclass(frozen=True)
class ColourModel:
    mean: np.ndarray
    precision: np.ndarray  # inverse covariance

    @classmethod
    def fit(cls, lab_samples: np.ndarray, lightness_weight: float = 1.0) -> ColourModel:
        """Fit to N x 3 Lab samples, dropping outliers once.

        ``lightness_weight`` < 1 tolerates more light/shadow variation than the samples
        show (hair has highlights and shadows the samples may miss).
        """
        x = np.asarray(lab_samples, np.float64)
        if len(x) < 10:
            raise ValueError(f"a colour model needs at least 10 sample pixels, got {len(x)}")
        for _ in range(2):
            mean = x.mean(axis=0)
            cov = np.cov(x.T) + np.eye(3) * 1e-2
            d2 = np.einsum("ni,ij,nj->n", x - mean, np.linalg.inv(cov), x - mean)
            if (d2 < TRIM).sum() >= 10:
                x = x[d2 < TRIM]
        cov[0, 0] /= lightness_weight**2
        return cls(mean, np.linalg.inv(cov))

    def distance(self, lab: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of every pixel (in standard deviations), same H x W as ``lab``."""
        x = lab.reshape(-1, 3).astype(np.float64) - self.mean
        d2 = np.einsum("ni,ij,nj->n", x, self.precision, x)
        return np.sqrt(np.maximum(d2, 0.0)).reshape(lab.shape[:2]).astype(np.float32)

    def alpha(self, lab: np.ndarray, inside: float = 2.5, outside: float = 3.5) -> np.ndarray:
        """1 within ``inside`` standard deviations, 0 beyond ``outside``, linear between."""
        return np.clip((outside - self.distance(lab)) / (outside - inside), 0.0, 1.0)
