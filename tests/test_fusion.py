import numpy as np
import pytest

from spkid.eval import fusion
from spkid.eval.fusion import FusionError, fuse, grid_search, weight_grid


def test_weight_grid_skips_zero_and_proportional_duplicates():
    g = weight_grid(2, 3)
    rows = {tuple(r) for r in g}
    assert (0, 0) not in rows
    for dup in [(2, 0), (0, 2), (3, 0), (0, 3), (2, 2), (3, 3)]:
        assert dup not in rows
    assert {(1, 0), (0, 1), (1, 1), (1, 2), (2, 1), (1, 3), (3, 1), (2, 3), (3, 2)} == rows
    # 8 systems: 4^8 - 1 all-zero - (2^8 - 1) vectors in {0,2} - (2^8 - 1) in {0,3}
    assert len(weight_grid(8, 3)) == 4 ** 8 - 1 - 2 * (2 ** 8 - 1)
    # no two rows fuse to the same scores
    normalised = {tuple(np.round(r / r.sum(), 9)) for r in weight_grid(4, 3)}
    assert len(normalised) == len(weight_grid(4, 3))


def test_fuse_formula():
    s = np.array([[1.0, 2.0], [3.0, 6.0]])
    np.testing.assert_allclose(fuse(s, [1, 3]), [(1 + 9) / 4, (2 + 18) / 4])
    with pytest.raises(FusionError):
        fuse(s, [0, 0])
    with pytest.raises(FusionError):
        fuse(s, [1, 2, 3])


def planted(n=3000, seed=0):
    """s1 = x + e and s2 = x - e/3 fuse to the clean signal x only with weights (1, 3);
    s3 is noise and must get weight 0."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    x = np.where(y, 1.0, -1.0) + 0.1 * rng.normal(size=n)
    e = 3.0 * rng.normal(size=n)
    return np.stack([x + e, x - e / 3, 5 * rng.normal(size=n)]), y


def test_grid_search_finds_planted_weights():
    s, y = planted()
    res = grid_search(s, y)
    for objective in fusion.OBJECTIVES:
        assert res[objective].weights.tolist() == [1, 3, 0]
        assert res[objective].value == 0.0
        assert res[objective].n_combinations == len(weight_grid(3, 3))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("eer_method", ["roc", "kaldi", "interp"])
def test_grid_search_equals_exhaustive_search(seed, eer_method):
    rng = np.random.default_rng(seed)
    n, k = 1500, 3
    y = rng.random(n) < 0.4
    shared = rng.normal(size=n)
    s = np.stack([(1 + 0.3 * i) * y + 0.7 * shared + rng.normal(size=n) for i in range(k)])
    s = np.round(s * rng.uniform(0.5, 3, size=(k, 1)) + rng.normal(size=(k, 1)), 2)  # ties too
    grid = weight_grid(k, 3)
    res = grid_search(s, y, eer_method=eer_method, p_target=0.05)
    for objective in fusion.OBJECTIVES:
        values = np.array([fusion.objective_value(fuse(s, w), y, objective, eer_method) for w in grid])
        best = int(np.argmin(values))
        assert res[objective].value == values[best]
        assert res[objective].weights.tolist() == grid[best].tolist()


def test_lower_bounds_are_bounds():
    rng = np.random.default_rng(5)
    n = 4000
    y = rng.random(n) < 0.5
    s = np.stack([y * (1 + i) + rng.normal(size=n) * (1 + i) for i in range(3)])
    grid = weight_grid(3, 3)
    eer_lb = fusion.lower_bounds(s, y, grid, "eer", bins=64)
    dcf_lb = fusion.lower_bounds(s, y, grid, "mindcf", bins=64, jobs=2)
    for w, le, ld in zip(grid, eer_lb, dcf_lb):
        f = fuse(s, w)
        for method in ("roc", "kaldi", "interp"):
            assert le <= fusion.objective_value(f, y, "eer", method) + 1e-12
        assert ld <= fusion.objective_value(f, y, "mindcf") + 1e-12


def test_check_aligned():
    fusion.check_aligned([("A", ["a", "b"], ["c", "d"]), ("B", ["a", "b"], ["c", "d"])])
    with pytest.raises(FusionError, match="line 2"):
        fusion.check_aligned([("A", ["a", "b"], ["c", "d"]), ("B", ["a", "x"], ["c", "d"])])
    with pytest.raises(FusionError, match="1 trials"):
        fusion.check_aligned([("A", ["a", "b"], ["c", "d"]), ("B", ["a"], ["c"])])


@pytest.mark.parametrize("p_target, c_miss, c_fa", [(0.01, 1.0, 1.0), (0.3, 5.0, 1.0), (0.05, 1.0, 10.0)])
def test_grid_search_mindcf_uses_the_prior_and_costs(p_target, c_miss, c_fa):
    """conf/fusion.conf's p_target/c_miss/c_fa reach both the bound pass and the exact values:
    the search returns the exhaustive optimum of the MinDCF with those settings."""
    rng = np.random.default_rng(11)
    n, k = 2000, 3
    y = rng.random(n) < 0.3
    s = np.stack([(0.8 + 0.4 * i) * y + rng.standard_t(4 - 0.5 * i, size=n) * (1 + 0.5 * i) for i in range(k)])
    grid = weight_grid(k, 3)
    res = grid_search(s, y, objectives=["mindcf"], p_target=p_target, c_miss=c_miss, c_fa=c_fa)["mindcf"]
    values = np.array([fusion.objective_value(fuse(s, w), y, "mindcf", p_target=p_target, c_miss=c_miss, c_fa=c_fa)
                       for w in grid])
    best = int(np.argmin(values))
    assert res.value == values[best]
    assert res.weights.tolist() == grid[best].tolist()
