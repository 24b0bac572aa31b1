"""KID and diversity on hand-checkable feature sets."""

from __future__ import annotations

import numpy as np
import pytest

from anogen_data.quality.diversity import mean_pairwise_cosine_distance, summary
from anogen_data.quality.kid import kid


def test_kid_hand_computed_value():
    """x = {0, 1}, y = {1, 2} in 1-d, k(a, b) = (a b + 1)^3: off-diagonal k_xx = 1, k_yy = 27, and
    k_xy = {1, 1, 8, 27}; MMD^2 = 2*1/2 + 2*27/2 - 2*37/4 = 9.5 (one subset: the whole sets)."""
    result = kid(np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]]))
    assert result["mean"] == pytest.approx(9.5) and result["subsets"] == 1 and result["std"] == 0.0


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_kid_of_a_set_with_itself_is_zero_and_grows_with_a_shift():
    """Unit-length non-negative features, as our embeddings are; the shift moves every vector towards e0."""
    rng = np.random.default_rng(0)
    real = _unit(np.abs(rng.normal(size=(60, 16))))
    same = kid(real, real, subsets=20, subset_size=30)["mean"]
    resampled = kid(real, _unit(np.abs(rng.normal(size=(60, 16)))), subsets=20, subset_size=30)["mean"]
    e0 = np.eye(16)[0]
    shifted = [kid(real, _unit(real + s * e0), subsets=20, subset_size=30)["mean"] for s in (0.5, 1.0, 2.0)]
    assert abs(same) < 0.005 and abs(resampled) < 0.005
    assert shifted[0] > 5 * abs(resampled) and shifted[0] < shifted[1] < shifted[2]


def test_kid_is_seeded_and_needs_two_samples():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(40, 8)), rng.normal(size=(30, 8)) + 0.3
    assert kid(a, b, subsets=5, subset_size=10, seed=3) == kid(a, b, subsets=5, subset_size=10, seed=3)
    assert kid(a, b, subsets=5, subset_size=10, seed=3) != kid(a, b, subsets=5, subset_size=10, seed=4)
    assert kid(a, b, subset_size=100)["subset_size"] == 30
    assert kid(a[:1], b) is None


def test_diversity_hand_values():
    # orthogonal unit vectors: every pair at cosine distance 1; identical ones at 0
    assert mean_pairwise_cosine_distance(np.eye(3)) == pytest.approx(1.0)
    assert mean_pairwise_cosine_distance(np.ones((4, 5))) == pytest.approx(0.0)
    # pairs (a, b): 1 - 0 = 1, (a, c): 1 - 1/sqrt(2), (b, c): 1 - 1/sqrt(2); lengths do not matter
    x = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    assert mean_pairwise_cosine_distance(x) == pytest.approx((1 + 2 * (1 - 2 ** -0.5)) / 3)
    assert mean_pairwise_cosine_distance(np.ones((1, 5))) is None


def test_summary():
    assert summary([1.0, 3.0, 2.0]) == {"mean": 2.0, "median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert summary([]) is None
