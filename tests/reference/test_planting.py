"""Planted activation sparsity: the probabilities drawn, and the frequencies the predictors really produce."""
import os

import numpy as np
import pytest
from gguf import GGUFReader

import reference as R
from pimodels import models
from pimodels.arch import VARIANTS
from pimodels.presets import MATRIX_TYPES, MATRIX_VARIANTS
from pimodels.sparsity import Planting, row_offsets

SPARSE = [v for v in MATRIX_VARIANTS if VARIANTS[v].predictors]


@pytest.mark.parametrize("variant", SPARSE)
def test_planted_probabilities_follow_the_recipe(models_dir, variant):
    p = np.load(os.path.join(models_dir, f"{variant}-f16.planted.npy"))
    n_layer = {"relu-llama": 3, "prosparse": 3, "bamboo": 2, "falcon": 2, "falcon40b": 3, "opt": 2}[variant]
    assert p.shape == (n_layer, 256) and p.dtype == np.float32
    for row in p:
        hot = row > 0.3
        assert hot.sum() == round(0.15 * 256)  # a random 15% ...
        assert np.all((row[hot] >= 0.6 * 0.7 - 1e-6) & (row[hot] <= 0.6 * 1.3 + 1e-6))  # ... near 0.6
        assert np.all((row[~hot] >= 0.03 * 0.7 - 1e-6) & (row[~hot] <= 0.03 * 1.3 + 1e-6))  # the rest near 0.03
    assert abs(p.mean() - 0.1155) < 0.01
    assert not np.array_equal(p[0] > 0.3, p[1] > 0.3)  # hot sets differ per layer


@pytest.mark.parametrize("wtype", MATRIX_TYPES)
@pytest.mark.parametrize("variant", SPARSE)
def test_measured_firing_frequencies_match_planted(load, models_dir, variant, wtype):
    """512 fresh random tokens (8 sequences of 64; the calibration used other ones)."""
    m = load(f"{variant}-{wtype}")
    p = np.load(os.path.join(models_dir, f"{variant}-{wtype}.planted.npy"))
    rng = np.random.default_rng(2024)
    trace = R.Trace()
    for _ in range(8):
        m.reset()
        m.forward(rng.integers(0, m.hp.n_vocab, size=64), sparse=True, trace=trace)
    for il in range(m.hp.n_layer):
        f = trace.layer_masks(il).mean(axis=0)
        hot = p[il] > 0.3
        # per-neuron sampling sd is <= 0.022 at p = 0.6 with 512 tokens; measured MAE is ~0.01
        assert np.mean(np.abs(f - p[il])) < 0.03, il
        assert abs(f[hot].mean() - p[il][hot].mean()) < 0.04, il
        assert abs(f[~hot].mean() - p[il][~hot].mean()) < 0.01, il
        assert abs(f.mean() - p[il].mean()) < 0.015, il


def test_row_offsets_hit_the_target_on_gaussian_taps():
    rng = np.random.default_rng(5)
    fc1 = rng.standard_normal((32, 64)) / 8
    base = rng.standard_normal((300, 32)) / np.sqrt(32)
    p = rng.uniform(0, 1, size=300)
    p[:3] = [0.0, 1.0, 0.5]
    taps = rng.standard_normal((4000, 64)) * 3.0  # the scale of the tap does not matter
    c = row_offsets(fc1, base, taps, p)
    fc2 = base + c[:, None]

    def scores(t):
        return np.maximum(t @ fc1.T, 0) @ fc2.T

    s = scores(taps)
    np.testing.assert_array_equal((s >= 0).sum(axis=0), np.rint(p * 4000))  # exact on the calibration taps
    assert np.min(np.abs(s)) > 0  # none sits on the threshold
    fresh = (scores(rng.standard_normal((4000, 64))) >= 0).mean(axis=0)
    assert np.mean(np.abs(fresh - p)) < 0.02
    assert fresh[0] == 0.0 and fresh[1] == 1.0


def test_row_offsets_keep_repeated_taps_off_the_threshold():
    """Falcon's first layer sees only token embeddings, so calibration taps repeat."""
    rng = np.random.default_rng(6)
    fc1 = rng.standard_normal((32, 64)) / 8
    base = rng.standard_normal((300, 32)) / np.sqrt(32)
    distinct = rng.standard_normal((40, 64))
    taps = distinct[rng.integers(0, 40, size=2000)]
    c = row_offsets(fc1, base, taps, np.full(300, 0.3))
    s = np.maximum(distinct @ fc1.T, 0) @ (base + c[:, None]).T
    assert np.min(np.abs(s)) > 1e-6
    assert abs((s >= 0).mean() - 0.3) < 0.05


def test_planting_mean():
    pl = Planting()
    assert pl.expected_mean == pytest.approx(0.1155)
    p = pl.sample(np.random.default_rng(0), 32, 11008)
    assert abs(p.mean() - 0.1155) < 0.002


def test_act_freq_tensors_hold_the_planted_probabilities(tmp_path):
    path = str(tmp_path / "m.gguf")
    planted = models.write_tiny(path, "bamboo", "f16", act_freq=True)
    r = GGUFReader(path)
    t = {x.name: x for x in r.tensors}
    for il in range(planted.shape[0]):
        a = t[f"blk.{il}.ffn_act_freq"]
        assert a.tensor_type.name == "F32"
        np.testing.assert_array_equal(np.asarray(a.data), planted[il])
    R.Model(R.read_metadata(r), R.read_tensors(r)).forward([1, 2, 3], sparse=True)  # extra tensors are harmless
