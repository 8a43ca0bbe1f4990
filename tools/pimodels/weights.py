"""Deterministic random weights.

Each tensor draws from its own generator, seeded by (model seed, tensor name), so a tensor's values do not
depend on the order of writing, on the weight type, or on which other tensors exist. `ffn_down_t` is drawn as
`ffn_down` and transposed, so the two layouts of one seed hold the same matrix.

Scales keep activations near unit size through many layers: embeddings N(0, 1); matrices N(0, 1/sqrt(n_in));
norm weights 1 + N(0, 0.1) (not all ones, so a forgotten norm weight shows); biases N(0, 0.1).
"""
from __future__ import annotations

import hashlib

import numpy as np

from .arch import TensorSpec


def rng_for(seed: int, label: str) -> np.random.Generator:
    words = np.frombuffer(hashlib.sha256(label.encode()).digest()[:16], dtype="<u4")
    return np.random.default_rng(np.random.SeedSequence([seed, *(int(w) for w in words)]))


def init_tensor(spec: TensorSpec, seed: int) -> np.ndarray:
    """The float32 values of a tensor (fc2: the base rows, before planting shifts their means)."""
    name, shape = spec.name, spec.shape
    transpose = name.endswith(".ffn_down_t.weight")
    if transpose:
        name, shape = name.replace(".ffn_down_t.", ".ffn_down."), shape[::-1]
    rng = rng_for(seed, name)
    if spec.role == "embedding":
        a = rng.standard_normal(shape, dtype=np.float32)
    elif spec.role in ("matrix", "fc1", "fc2"):
        a = rng.standard_normal(shape, dtype=np.float32)
        a *= np.float32(1.0 / np.sqrt(shape[1]))
    elif spec.role == "norm":
        a = 1.0 + np.float32(0.1) * rng.standard_normal(shape, dtype=np.float32)
    elif spec.role == "bias":
        a = np.float32(0.1) * rng.standard_normal(shape, dtype=np.float32)
    else:
        raise ValueError(f"unknown role {spec.role}")
    return np.ascontiguousarray(a.T) if transpose else a
