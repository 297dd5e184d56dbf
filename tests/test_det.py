import sys

import numpy as np
from scipy.stats import norm

from spkid.eval import det


def test_det_axes_are_the_normal_quantile():
    """The DET's normal-deviate axes (scipy.special.ndtri) are scipy.stats.norm.ppf, value for value."""
    q = np.concatenate([det.TICKS, [det.TICKS[0] / 2, 0.5, 1 - det.TICKS[0] / 2],
                        np.random.default_rng(0).uniform(1e-5, 1 - 1e-5, 1000)])
    np.testing.assert_array_equal(det.ndtri(q), norm.ppf(q))


def test_plot_det_writes_a_png_atomically(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.repeat([1, 0], 50).astype(np.int8)
    scores = rng.normal(size=100) + labels
    out = tmp_path / "l.det.png"
    det.plot_det([det.DetCurve.from_scores("A", scores, labels), det.DetCurve.from_scores("B", -scores, labels)],
                 out, "l (100 trials)")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["l.det.png"]
    assert "matplotlib.pyplot" not in sys.modules  # no GUI backend or global figures in the steps
