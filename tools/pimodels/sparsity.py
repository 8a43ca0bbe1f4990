"""Planting activation sparsity into random predictors.

A neuron fires when its predictor score  s_i = fc2_i . h  (h = relu(fc1 . tap))  is >= 0. Write fc2_i = b_i + c_i
(b_i random, c_i a constant added to every element: the row's mean). Since h >= 0 and S = sum(h) > 0,

    s_i >= 0   <=>   c_i >= t_i,   t_i = -(b_i . h) / S,

so c_i = the p_i-quantile of t_i over sample taps makes neuron i fire with probability p_i. t_i does not depend
on the scale of the tap, only on its direction. c_i is put halfway between two neighbouring sorted samples, so no
calibration tap sits on the threshold.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Planting:
    """A random `hot_fraction` of each layer's neurons fire with probability ~p_hot, the rest ~p_cold, each
    times a uniform factor in `jitter` (DESIGN.md 8: mean 0.15*0.6 + 0.85*0.03 = 11.55%)."""
    hot_fraction: float = 0.15
    p_hot: float = 0.6
    p_cold: float = 0.03
    jitter: tuple[float, float] = (0.7, 1.3)

    @property
    def expected_mean(self) -> float:
        return self.hot_fraction * self.p_hot + (1 - self.hot_fraction) * self.p_cold

    def sample(self, rng: np.random.Generator, n_layer: int, n_ff: int) -> np.ndarray:
        """Firing probabilities (n_layer, n_ff), float32."""
        p = np.full((n_layer, n_ff), self.p_cold)
        n_hot = int(round(self.hot_fraction * n_ff))
        for il in range(n_layer):
            p[il, rng.choice(n_ff, size=n_hot, replace=False)] = self.p_hot
        p *= rng.uniform(self.jitter[0], self.jitter[1], size=p.shape)
        return np.clip(p, 0.0, 1.0).astype(np.float32)


def row_offsets(fc1: np.ndarray, fc2_base: np.ndarray, taps: np.ndarray, p: np.ndarray) -> np.ndarray:
    """c (n_ff,) such that fc2 = fc2_base + c[:, None] fires neuron i on a fraction ~p[i] of `taps` (N, n_embd).
    Computes in the dtype of `taps` (float64 for small models, float32 for bench-7b)."""
    dt = taps.dtype
    h = np.maximum(taps @ fc1.T.astype(dt), 0)                  # (N, width)
    s = h.sum(axis=1)
    h, s = h[s > 0], s[s > 0]                                   # an all-zero h scores 0 whatever c is
    t = -(h @ fc2_base.T.astype(dt)) / s[:, None]               # (N, n_ff)
    t.sort(axis=0)
    n, n_ff = t.shape
    k = np.rint(p.astype(np.float64) * n).astype(np.int64)     # number of samples that should fire
    # Put c in the middle of the gap between sorted samples j-1 and j (j samples fire), choosing the j nearest
    # to k whose gap is not empty: taps can repeat (falcon's first layer sees only the token embeddings), and a
    # c equal to a repeated sample would put that token exactly on the threshold.
    j = np.arange(1, n)[:, None]
    dist = np.where(t[1:] > t[:-1], np.abs(j - k[None, :]), n + 1).astype(np.int64)   # (n-1, n_ff)
    best = np.argmin(dist, axis=0) + 1
    cols = np.arange(n_ff)
    c = 0.5 * (t[best - 1, cols] + t[best, cols])
    spread = t[-1] - t[0]
    c = np.where(k <= 0, t[0] - spread, np.where(k >= n, t[-1] + spread, c))
    return c.astype(np.float64)
