import numpy as np
import pytest
from sklearn.metrics import roc_curve

from spkid.eval import metrics
from spkid.eval.metrics import MetricsError, compute_metrics, eer, min_dcf


# Hand case: targets 0.9 0.8 0.4, non-targets 0.7 0.3 0.2. At t=0.7 one target is missed
# (0.4) and one non-target accepted (0.7): FNR = FPR = 1/3.
HAND_S = [0.9, 0.8, 0.4, 0.7, 0.3, 0.2]
HAND_Y = [1, 1, 1, 0, 0, 0]


@pytest.mark.parametrize("method", metrics.EER_METHODS)
def test_hand_case_eer(method):
    assert eer(HAND_S, HAND_Y, method) == pytest.approx(1 / 3)


def test_hand_case_min_dcf():
    # p=0.05: best threshold 0.8 (one miss, no false alarm): 0.05*(1/3) / 0.05 = 1/3
    assert min_dcf(HAND_S, HAND_Y, 0.05) == pytest.approx(1 / 3)
    # p=0.5: 0.5*(1/3) / 0.5 = 1/3 again (threshold 0.8 or 0.4)
    assert min_dcf(HAND_S, HAND_Y, 0.5) == pytest.approx(1 / 3)
    # costs weight the misses: C_miss=10 at p=0.5 makes accepting everything above 0.4 best:
    # 0.5*1*(1/3) at t=0.4 vs norm min(10*0.5, 0.5) = 0.5 -> (0.5/3)/0.5
    assert min_dcf(HAND_S, HAND_Y, 0.5, c_miss=10.0) == pytest.approx(1 / 3)


@pytest.mark.parametrize("method", metrics.EER_METHODS)
def test_perfect_separation(method):
    s = [3.0, 2.0, 1.0, -1.0]
    y = [1, 1, 0, 0]
    assert eer(s, y, method) == 0.0
    assert min_dcf(s, y) == 0.0


def test_all_tied_scores():
    s, y = [1.0] * 4, [1, 1, 0, 0]
    assert eer(s, y, "interp") == pytest.approx(0.5)
    assert min_dcf(s, y, 0.05) == pytest.approx(1.0)  # no threshold beats the trivial system


def test_errors():
    with pytest.raises(MetricsError, match="both target and non-target"):
        eer([1.0, 2.0], [1, 1])
    with pytest.raises(MetricsError, match="finite"):
        eer([1.0, np.nan], [1, 0])
    # the trial list is named, and the bad trials by their line in it
    with pytest.raises(MetricsError, match=r"^data/x/trials/l: scores must be finite; the trials on line\(s\) 2, 4"):
        compute_metrics([1.0, np.inf, 0.5, np.nan], [1, 0, 0, 1], where="data/x/trials/l")
    with pytest.raises(MetricsError, match=r"^data/x/trials/l: need both"):
        compute_metrics([1.0, 2.0], [0, 0], where="data/x/trials/l")
    with pytest.raises(MetricsError, match="unknown EER method"):
        eer(HAND_S, HAND_Y, "bogus")
    with pytest.raises(MetricsError, match="P_target"):
        min_dcf(HAND_S, HAND_Y, 1.5)
    # a zero cost made the normaliser 0: compute_metrics.py printed MinDCF nan, exit 0
    with pytest.raises(MetricsError, match="costs must be greater than 0, got C_miss=0.0 C_fa=0.0"):
        compute_metrics(HAND_S, HAND_Y, c_miss=0.0, c_fa=0.0)


@pytest.mark.parametrize("arg", ["--c-miss=0", "--c-fa=0", "--c-miss=-1"])
def test_compute_metrics_costs_refused_at_parse_time(arg):
    from spkid.config import ConfigError, parse_options
    from spkid.eval.score_files import MetricsOptions
    with pytest.raises(ConfigError, match=rf"command line: {arg} is out of range: it must be greater than 0"):
        parse_options([MetricsOptions], [arg, "--trials=t", "--scores=s"])


def paper_eer(scores, labels):
    """The paper's code, verbatim in spirit (voxceleb_trainer tuneThresholdfromScore)."""
    fpr, tpr, _ = roc_curve(labels, scores, pos_label=1)
    fnr = 1 - tpr
    i = np.nanargmin(np.abs(fnr - fpr))
    return max(fpr[i], fnr[i])


def kaldi_eer_loop(scores, labels):
    """compute-eer.cc, transcribed as a loop."""
    tar = sorted(s for s, y in zip(scores, labels) if y)
    non = sorted(s for s, y in zip(scores, labels) if not y)
    p = 0
    while p + 1 < len(tar):
        pos = len(non) - 1 - int(len(non) * p * 1.0 / len(tar))
        if non[max(pos, 0)] < tar[p]:
            break
        p += 1
    return p / len(tar)


def sweep(scores, labels):
    """Brute force: every threshold (each score and +inf), accept score >= t."""
    s, y = np.asarray(scores), np.asarray(labels).astype(bool)
    pts = []
    for t in np.r_[np.inf, np.unique(s)]:
        pts.append((np.mean(s[y] < t), np.mean(s[~y] >= t)))
    return np.array(pts)


def interp_eer_brute(scores, labels):
    pts = sweep(scores, labels)
    pts = pts[np.lexsort((-pts[:, 0], pts[:, 1]))]  # threshold decreasing: FPR up, FNR down
    d = pts[:, 0] - pts[:, 1]
    j = np.flatnonzero(d <= 0)[0]
    if d[j] == 0:
        return pts[j, 0]
    (m0, f0), (m1, f1) = pts[j - 1], pts[j]
    # intersection of the segment with the line FNR = FPR
    a = (m0 - f0) / ((m0 - f0) - (m1 - f1))
    return m0 + a * (m1 - m0)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
def test_against_independent_implementations(seed, ties):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    y = rng.random(n) < rng.uniform(0.1, 0.6)
    y[:2] = [True, False]
    s = rng.normal(size=n) + 1.5 * y
    if ties:
        s = np.round(s, 1)
    assert eer(s, y, "roc") == pytest.approx(paper_eer(s, y), abs=1e-12)
    assert eer(s, y, "kaldi") == pytest.approx(kaldi_eer_loop(s, y), abs=1e-12)
    assert eer(s, y, "interp") == pytest.approx(interp_eer_brute(s, y), abs=1e-12)
    pts = sweep(s, y)
    for p in (0.01, 0.05, 0.5):
        brute = np.min(p * pts[:, 0] + (1 - p) * pts[:, 1]) / min(p, 1 - p)
        assert min_dcf(s, y, p) == pytest.approx(brute, abs=1e-12)
    # compute_metrics reads every figure and the DET points from one sort: the same figures
    for method in metrics.EER_METHODS:
        m = compute_metrics(s, y, 0.05, eer_method=method)
        assert (m.eer, m.eer_threshold) == metrics.eer_threshold(s, y, method)
        assert (m.min_dcf, m.min_dcf_threshold) == metrics.min_dcf_threshold(s, y, 0.05)
    fpr, fnr = m.rates.fpr, m.rates.fnr
    np.testing.assert_allclose(np.c_[fnr, fpr], pts[np.lexsort((-pts[:, 0], pts[:, 1]))], atol=1e-12)


def test_summary_line_and_json():
    m = compute_metrics(HAND_S, HAND_Y, p_target=0.05)
    assert m.line() == "EER 33.333% MinDCF(p=0.05) 0.3333"
    j = m.to_json()
    assert j["eer_method"] == "roc" and "paper" in j["eer_definition"]
    assert j["n_target"] == 3 and j["p_target"] == 0.05


def rates_at(scores, labels, t):
    """(FNR, FPR) when accepting score >= t, counted directly."""
    s, y = np.asarray(scores), np.asarray(labels).astype(bool)
    return np.mean(s[y] < t), np.mean(s[~y] >= t)


@pytest.mark.parametrize("seed", range(4))
def test_thresholds_reach_the_reported_operating_points(seed):
    """The saved thresholds (steps/verify.py decides with them; fusion centres on them) are the
    ones where the reported EER and MinDCF are met, not a neighbouring operating point."""
    rng = np.random.default_rng(seed)
    y = rng.random(300) < 0.3
    y[:2] = [True, False]
    s = rng.normal(size=300) + 1.5 * y
    e, t = metrics.eer_threshold(s, y, "roc")
    assert max(rates_at(s, y, t)) == pytest.approx(e, abs=1e-12)
    e, t = metrics.eer_threshold(s, y, "kaldi")
    assert rates_at(s, y, t)[0] == pytest.approx(e, abs=1e-12)
    e, t = metrics.eer_threshold(s, y, "interp")
    fnr, fpr = rates_at(s, y, t)
    assert fnr <= e + 1e-12 and e <= fpr + 1e-12
    for p, c_miss, c_fa in ((0.05, 1.0, 1.0), (0.01, 1.0, 1.0), (0.5, 10.0, 1.0)):
        d, t = metrics.min_dcf_threshold(s, y, p, c_miss, c_fa)
        fnr, fpr = rates_at(s, y, t)
        cost = (c_miss * p * fnr + c_fa * (1 - p) * fpr) / min(c_miss * p, c_fa * (1 - p))
        assert cost == pytest.approx(d, abs=1e-12)


def test_compute_metrics_uses_the_costs_and_p_target():
    rng = np.random.default_rng(7)
    y = rng.random(200) < 0.4
    s = rng.normal(size=200) + y
    for p, c_miss, c_fa in ((0.01, 1.0, 1.0), (0.5, 10.0, 1.0), (0.3, 1.0, 5.0)):
        m = compute_metrics(s, y, p_target=p, c_miss=c_miss, c_fa=c_fa)
        assert m.min_dcf == pytest.approx(min_dcf(s, y, p, c_miss, c_fa), abs=1e-12)
        assert (m.p_target, m.c_miss, m.c_fa) == (p, c_miss, c_fa)
    # and the costs matter on this data (so the comparison above can tell them apart)
    assert min_dcf(s, y, 0.5, 10.0, 1.0) != pytest.approx(min_dcf(s, y, 0.5))


@pytest.mark.parametrize("ties", [False, True])
def test_det_points_hold_sklearns_det_curve(ties):
    """The DET plot's points (the metrics' operating points) include every point of
    sklearn.metrics.det_curve, which stops at the first threshold with no misses."""
    from sklearn.metrics import det_curve

    rng = np.random.default_rng(7)
    y = rng.random(500) < 0.3
    s = rng.normal(size=500) + 1.5 * y
    if ties:
        s = np.round(s, 1)
    r = compute_metrics(s, y).rates
    tp, fp = r.tp_fp()
    ours = set(zip(fp.tolist(), (r.n_target - tp).tolist()))  # (false alarms, misses) per point
    fpr, fnr, _ = det_curve(y, s)
    theirs = zip(np.rint(fpr * r.n_nontarget).astype(int).tolist(), np.rint(fnr * r.n_target).astype(int).tolist())
    assert set(theirs) <= ours
    assert len(ours) > len(fpr)  # and the points past it, down to accepting everything
