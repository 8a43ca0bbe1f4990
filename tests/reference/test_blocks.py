"""The reference's building blocks against values computed by hand (cos 1 = 0.5403023058681398 etc.)."""
import math

import numpy as np
import pytest

import reference as R

C1, S1 = 0.5403023058681398, 0.8414709848078965      # cos(1), sin(1)
C2, S2 = 0.9999500004166653, 0.009999833334166664    # cos(0.01), sin(0.01)


def test_rope_normal_rotates_adjacent_pairs():
    # head_dim 4, position 1, base 10000: pair 0 turns by 1 rad, pair 1 by 10000^(-2/4) = 0.01 rad.
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 4)
    got = R.rope(x, np.array([1]), "normal", 10000.0).ravel()
    want = [1 * C1 - 2 * S1, 1 * S1 + 2 * C1, 3 * C2 - 4 * S2, 3 * S2 + 4 * C2]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got, [-1.1426396637476532, 1.922075596544176, 2.9598506679133294,
                                     4.029799501669161], atol=1e-12)


def test_rope_neox_rotates_halves():
    # pairs are (x0, x2) by 1 rad and (x1, x3) by 0.01 rad
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 4)
    got = R.rope(x, np.array([1]), "neox", 10000.0).ravel()
    want = [1 * C1 - 3 * S1, 2 * C2 - 4 * S2, 1 * S1 + 3 * C1, 2 * S2 + 4 * C2]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got, [-1.9841106485555495, 1.959900667496664, 2.4623779024123156,
                                     4.019799668334994], atol=1e-12)


@pytest.mark.parametrize("mode", ["normal", "neox"])
def test_rope_is_a_relative_rotation(mode):
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 1, 1, 16))
    pos0 = R.rope(q, np.array([0]), mode, 10000.0)
    np.testing.assert_array_equal(pos0, q)  # position 0: identity
    for m, n in [(3, 1), (10, 8), (7, 5)]:  # <rope(q, m), rope(k, n)> depends on m - n only (here 2)
        dot = np.sum(R.rope(q, np.array([m]), mode, 1e4) * R.rope(k, np.array([n]), mode, 1e4))
        ref = np.sum(R.rope(q, np.array([2]), mode, 1e4) * k)
        assert dot == pytest.approx(ref, abs=1e-12)
    r = R.rope(q, np.array([5]), mode, 1e4)
    assert np.linalg.norm(r) == pytest.approx(np.linalg.norm(q), rel=1e-14)


def test_rope_modes_differ():
    x = np.arange(1.0, 9.0).reshape(1, 1, 8)
    assert not np.allclose(R.rope(x, np.array([3]), "normal", 1e4), R.rope(x, np.array([3]), "neox", 1e4))


def test_rmsnorm():
    # rms([1,2,3,4]) = sqrt(30/4) = 2.7386127875258306
    got = R.rmsnorm(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 1.0, 2.0, 0.5]), 0.0)
    np.testing.assert_allclose(got, [0.3651483716701107, 0.7302967433402214, 2.1908902300206643,
                                     0.7302967433402214], rtol=1e-14)
    # eps enters under the root: x = [1, -1], eps = 1 -> 1/sqrt(2)
    np.testing.assert_allclose(R.rmsnorm(np.array([1.0, -1.0]), np.ones(2), 1.0), [2 ** -0.5, -(2 ** -0.5)])


def test_layernorm():
    # mean 2.5, biased variance 1.25
    got = R.layernorm(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 1.0, 1.0]),
                      np.array([0.0, 0.0, 1.0, -1.0]), 0.0)
    np.testing.assert_allclose(got, [-1.3416407864998738, -0.8944271909999159, 1.4472135954999579,
                                     0.3416407864998738], rtol=1e-14)
    np.testing.assert_allclose(R.layernorm(np.array([0.0, 2.0]), np.ones(2), np.zeros(2), 3.0), [-0.5, 0.5])


def test_softmax():
    np.testing.assert_allclose(R.softmax(np.array([1.0, 2.0, 3.0])),
                               [0.09003057317038046, 0.24472847105479767, 0.6652409557748219], rtol=1e-14)
    np.testing.assert_array_equal(R.softmax(np.array([0.0, -np.inf, 0.0])), [0.5, 0.0, 0.5])
    big = R.softmax(np.array([1000.0, 1000.0]))  # no overflow
    np.testing.assert_array_equal(big, [0.5, 0.5])


def test_activations():
    np.testing.assert_allclose(R.silu(np.array([0.0, 1.0, -1.0])),
                               [0.0, 1 / (1 + math.exp(-1)), -1 / (1 + math.exp(1))], rtol=1e-15)
    np.testing.assert_array_equal(R.relu(np.array([-2.0, 0.0, 3.0])), [0.0, 0.0, 3.0])


def test_round_q8_0_by_hand():
    # block 1: max|x| = 254 -> d = 2 (exact in f16), q = round-half-to-even(x / 2)
    b1 = np.zeros(32)
    b1[:6] = [254.0, -63.0, 1.0, 3.0, -1.0, 0.9]
    want1 = np.zeros(32)
    want1[:6] = [254.0, -64.0, 0.0, 4.0, -0.0, 0.0]   # -31.5 -> -32, 0.5 -> 0, 1.5 -> 2, -0.5 -> -0, 0.45 -> 0
    # block 2: max|x| = 127.0127 -> d = 1.0001 computes q = 127, but d is stored as f16(1.0001) = 1.0
    b2 = np.zeros(32)
    b2[0], b2[1] = 127.0127, 10.0
    want2 = np.zeros(32)
    want2[0], want2[1] = 127.0, 10.0
    got = R.round_q8_0(np.concatenate([b1, b2])[None, :])
    np.testing.assert_array_equal(got[0, :32], want1)
    np.testing.assert_array_equal(got[0, 32:], want2)
    np.testing.assert_array_equal(R.round_q8_0(np.zeros((1, 32))), np.zeros((1, 32)))  # d = 0: all zero
