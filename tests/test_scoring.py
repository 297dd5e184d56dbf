import kaldiio
import numpy as np
import pytest

from spkid.eval import scoring
from spkid.data.arks import ArkError
from spkid.data.datadir import Trials
from spkid.eval.scoring import Embeddings, ScoringError, score_trials


def raw_embeddings(n_utts=6, crops=10, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    return [(f"spk{i % 3}/s/{i:05d}", rng.normal(size=(crops, dim)).astype(np.float32)) for i in range(n_utts)]


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_ten_by_ten_identity():
    """Mean of all 100 crop-pair cosines == dot of the mean normalised crop embeddings."""
    raw = raw_embeddings()
    emb = Embeddings.from_raw(raw)
    (_, a), (_, b) = raw[0], raw[1]
    brute = np.mean([[unit(x) @ unit(y) for y in b] for x in a])
    trials = Trials([raw[0][0]], [raw[1][0]], np.array([1], np.int8))
    assert score_trials(emb, trials, "cosine")[0] == pytest.approx(brute, abs=1e-6)


def test_euclidean_is_minus_mean_distance():
    raw = raw_embeddings(crops=4)
    raw[2] = (raw[2][0], raw[2][1][:1])  # a one-crop (whole-utterance) embedding among ten-crop ones
    emb = Embeddings.from_raw(raw)
    trials = Trials([raw[0][0], raw[2][0], raw[3][0]], [raw[1][0], raw[3][0], raw[2][0]], np.array([1, 0, 0], np.int8))
    got = score_trials(emb, trials, "euclidean")
    table = dict(raw)
    for k, (e, t) in enumerate(zip(trials.enroll, trials.test)):
        brute = -np.mean([[np.linalg.norm(unit(x) - unit(y)) for y in table[t]] for x in table[e]])
        assert got[k] == pytest.approx(brute, abs=1e-5)


def test_as_norm_by_hand():
    raw = raw_embeddings(n_utts=4, dim=8)
    emb = Embeddings.from_raw(raw)
    cohort = unit(np.random.default_rng(1).normal(size=(7, 8))).astype(np.float32)
    trials = Trials([raw[0][0]], [raw[1][0]], np.array([0], np.int8))
    got = score_trials(emb, trials, "cosine", cohort=cohort, top_n=3)[0]
    s = emb.means[0] @ emb.means[1]
    ce = np.sort(cohort @ emb.means[0])[-3:]
    ct = np.sort(cohort @ emb.means[1])[-3:]
    want = 0.5 * ((s - ce.mean()) / ce.std() + (s - ct.mean()) / ct.std())
    assert got == pytest.approx(want, abs=1e-5)


def test_cohort_vectors_average_per_speaker():
    raw = raw_embeddings(n_utts=6)
    emb = Embeddings.from_raw(raw)
    names, vecs = scoring.cohort_vectors(emb, {u: u.split("/")[0] for u, _ in raw})
    assert names == ["spk0", "spk1", "spk2"]
    want = unit(emb.means[[0, 3]].mean(axis=0))
    np.testing.assert_allclose(vecs[0], want, atol=1e-6)


def test_missing_utterances_are_listed():
    emb = Embeddings.from_raw(raw_embeddings(n_utts=2))
    trials = Trials(["spk0/s/00000", "ghost/a/1"], ["ghost/b/2", "spk1/s/00001"], np.array([1, 0], np.int8))
    with pytest.raises(ScoringError, match="2 trial utterance.*ghost/a/1, ghost/b/2"):
        score_trials(emb, trials)


def test_ark_round_trip_and_missing(tmp_path):
    raw = raw_embeddings(n_utts=3)
    ark, scp = tmp_path / "e.ark", tmp_path / "e.scp"
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as w:
        for u, m in raw:
            w(u, m)
    emb = scoring.read_embeddings(scp)
    assert emb.utts == sorted(u for u, _ in raw)
    for u, m in raw:
        np.testing.assert_allclose(emb.crops[emb.index()[u]], unit(m), atol=1e-6)
    with pytest.raises(ScoringError, match="nope/x/1"):
        scoring.read_embeddings(scp, ["nope/x/1", raw[0][0]])


def test_read_embeddings_equals_loading_each_utterance(tmp_path):
    """Reading each ark once in offset order gives the rows of opening every utterance's
    matrix on its own, in utterance order, from arks whose order is not the scp's."""
    raw = raw_embeddings(n_utts=9)
    scp = tmp_path / "e.scp"
    lines = []
    for k, part in enumerate((raw[5:], raw[:5][::-1])):  # second ark first in utterance order
        with kaldiio.WriteHelper(f"ark,scp:{tmp_path}/p{k}.ark,{tmp_path}/p{k}.scp") as w:
            for u, m in part:
                w(u, m)
        lines += (tmp_path / f"p{k}.scp").read_text().splitlines()
    scp.write_text("".join(ln + "\n" for ln in sorted(lines)))
    subset = [raw[i][0] for i in (7, 1, 4, 0, 8)]
    for keep in (True, False):
        emb = scoring.read_embeddings(scp, subset, keep_crops=keep)
        table = dict(ln.split(" ", 1) for ln in lines)
        want = Embeddings.from_raw([(u, kaldiio.load_mat(table[u])) for u in sorted(subset)])
        assert emb.utts == want.utts
        np.testing.assert_array_equal(emb.means, want.means)
        for got, ref in zip(emb.crops, want.crops):
            np.testing.assert_array_equal(got, ref if keep else ref[:0])
            assert keep or got.base is None  # no view holding the whole matrix in memory


def test_relative_ark_paths_read_from_anywhere(tmp_path, monkeypatch):
    """An scp written from the recipe root names its ark relative to it; scoring from another
    directory, or after moving the exp dir, finds the ark beside the scp."""
    raw = raw_embeddings(n_utts=3)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp" / "emb").mkdir(parents=True)
    with kaldiio.WriteHelper("ark,scp:exp/emb/e.ark,exp/emb/e.scp") as w:
        for u, m in raw:
            w(u, m)
    assert (tmp_path / "exp/emb/e.scp").read_text().split()[1].startswith("exp/emb/e.ark:")
    (tmp_path / "exp").rename(tmp_path / "moved")
    monkeypatch.chdir(tmp_path / "moved")
    emb = scoring.read_embeddings(tmp_path / "moved" / "emb" / "e.scp")
    assert emb.utts == sorted(u for u, _ in raw)
    (tmp_path / "moved" / "emb" / "e.ark").unlink()
    with pytest.raises(ArkError, match="names exp/emb/e.ark, which is neither there"):
        scoring.read_embeddings(tmp_path / "moved" / "emb" / "e.scp")


def test_score_file_round_trip_and_alignment(tmp_path):
    trials = Trials(["a", "b", "c"], ["x", "y", "z"], np.array([1, 0, 1], np.int8))
    path = tmp_path / "l.score"
    scoring.write_scores(path, trials, np.array([0.5, -0.25, 1.0]))
    np.testing.assert_allclose(scoring.scores_for_trials(path, trials), [0.5, -0.25, 1.0])
    shuffled = tmp_path / "s.score"
    shuffled.write_text("c z 1.0\na x 0.5\nb y -0.25\n")
    np.testing.assert_allclose(scoring.scores_for_trials(shuffled, trials), [0.5, -0.25, 1.0])
    shuffled.write_text("c z 1.0\na x 0.5\n")
    with pytest.raises(ScoringError, match="1 trial.*b y"):
        scoring.scores_for_trials(shuffled, trials)


def test_as_norm_euclidean_by_hand():
    """AS-norm of euclidean scores scores each side against the cohort with the same function:
    minus the mean distance of its crops to the cohort speaker's unit vector."""
    raw = raw_embeddings(n_utts=4, crops=3, dim=8)
    emb = Embeddings.from_raw(raw)
    cohort = unit(np.random.default_rng(2).normal(size=(6, 8))).astype(np.float32)
    trials = Trials([raw[0][0]], [raw[1][0]], np.array([0], np.int8))
    got = score_trials(emb, trials, "euclidean", cohort=cohort, top_n=4)[0]
    (_, a), (_, b) = raw[0], raw[1]
    s = -np.mean([[np.linalg.norm(unit(x) - unit(y)) for y in b] for x in a])
    side = [np.sort([-np.mean([np.linalg.norm(unit(x) - c) for x in m]) for c in cohort])[-4:] for m in (a, b)]
    want = 0.5 * sum((s - c.mean()) / c.std() for c in side)
    assert got == pytest.approx(want, abs=1e-5)


def test_chunked_scoring_covers_every_trial():
    """Trial lists longer than one chunk: every chunk is scored (small chunks against brute force)."""
    raw = raw_embeddings(n_utts=7, crops=3, dim=8)
    raw[4] = (raw[4][0], raw[4][1][:1])
    emb = Embeddings.from_raw(raw)
    rng = np.random.default_rng(3)
    e = rng.integers(0, 7, 23)
    t = (e + rng.integers(1, 7, 23)) % 7  # no self-trials: sqrt(2 - 2<x,x>) is float32 noise
    crops = [unit(m) for _, m in raw]
    cos = [np.mean(crops[i] @ crops[j].T) for i, j in zip(e, t)]
    dist = [-np.mean(np.linalg.norm(crops[i][:, None] - crops[j][None], axis=-1)) for i, j in zip(e, t)]
    np.testing.assert_allclose(scoring.cosine_scores(emb.means, e, t, chunk=5), cos, atol=1e-5)
    np.testing.assert_allclose(scoring.euclidean_scores(emb.crops, e, t, chunk=2), dist, atol=1e-5)
    cohort = unit(rng.normal(size=(4, 8))).astype(np.float32)
    rows = np.arange(7)
    brute = [[-np.mean(np.linalg.norm(crops[u] - c, axis=-1)) for c in cohort] for u in rows]
    np.testing.assert_allclose(scoring.cohort_scores(emb, rows, cohort, "euclidean", chunk=3), brute, atol=1e-5)
