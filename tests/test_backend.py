import hashlib
import json

import kaldiio
import numpy as np
import pytest

from spkid.config import write_resolved
from spkid.data.datadir import Trials, read_table, read_trials, write_table
from spkid.errors import SpkidError
from spkid.eval.backend import Backend, needs_training_set
from spkid.eval.calibration import Calibration
from spkid.eval.plda import Plda
from spkid.eval.score_set import ScoreOptions, score_set
from spkid.eval.scoring import read_embeddings, read_scores
from spkid.expdir import RECORD, Record, SystemDir
from spkid.options import EvalOptions, LossOptions, ModelOptions, TrainOptions
from trained_system import record_set


def write_set(d, mats: dict[str, np.ndarray], spk=None):
    d.mkdir(parents=True, exist_ok=True)
    with kaldiio.WriteHelper(f"ark,scp:{d}/embeddings.ark,{d}/embeddings.scp") as w:
        for u in sorted(mats):
            w(u, mats[u].astype(np.float32))
    write_table(d / "utt2spk", {u: (spk(u) if spk else u.split("/")[0]) for u in sorted(mats)})
    record_set(d)


def offset_embeddings(rng, n_spk, per, dim, crops=3, offset=3.0):
    """Speakers around a large common offset (as raw network embeddings are)."""
    centres = rng.normal(size=(n_spk, dim))
    return {f"s{k:02d}/v/{i:03d}": (offset + centres[k] + 0.5 * rng.normal(size=(crops, dim)))
            for k in range(n_spk) for i in range(per)}


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_mean_subtraction_by_hand(tmp_path):
    rng = np.random.default_rng(0)
    train = offset_embeddings(rng, 6, 4, 5)
    test = offset_embeddings(rng, 3, 2, 5)
    write_set(tmp_path / "cohort", train)
    write_set(tmp_path / "test", test)
    evaluation = EvalOptions(mean_subtract=True)
    assert needs_training_set(evaluation) and not needs_training_set(EvalOptions())
    fitted = Backend.fit(evaluation, tmp_path / "cohort")
    mean = np.vstack(list(train.values())).mean(axis=0)
    np.testing.assert_allclose(fitted.center, mean, rtol=1e-5)
    emb = fitted.read(tmp_path / "test" / "embeddings.scp", test.keys())
    utts = sorted(test)
    trials = Trials([utts[0], utts[0]], [utts[1], utts[3]], np.array([1, 0], np.int8))
    got = fitted.scores(emb, trials, "test")
    for k, (a, b) in enumerate(zip(trials.enroll, trials.test)):
        hand = np.mean([[unit(x - mean) @ unit(y - mean) for y in test[b]] for x in test[a]])
        assert got[k] == pytest.approx(hand, abs=1e-5)
    # without the mean, the common offset makes every pair look alike
    plain = Backend.fit(EvalOptions(), tmp_path / "cohort")
    raw = plain.scores(plain.read(tmp_path / "test" / "embeddings.scp", test.keys()), trials, "test")
    assert raw[1] > 0.8 and got[1] < raw[1] - 0.3
    # raw crop norms are kept for calibration, before the mean is subtracted
    np.testing.assert_allclose(emb.norms[0], np.linalg.norm(test[utts[0]], axis=1).mean(), rtol=1e-5)


def test_crop_mean_counts_every_crop(tmp_path):
    mats = {"a/x/1": np.ones((2, 3)), "b/x/1": np.full((6, 3), 2.0)}
    write_set(tmp_path / "s", mats)
    np.testing.assert_array_equal(read_embeddings(tmp_path / "s" / "embeddings.scp", subtract_mean=True).center,
                                  np.full(3, 1.75, np.float32))  # not 1.5


def test_plda_backend_scores_with_the_trained_model(tmp_path):
    rng = np.random.default_rng(1)
    train = offset_embeddings(rng, 12, 5, 6, offset=0.0)
    test = offset_embeddings(rng, 3, 2, 6, offset=0.0)
    write_set(tmp_path / "cohort", train)
    write_set(tmp_path / "test", test)
    evaluation = EvalOptions(score_type="plda", lda_dim=4)
    fitted = Backend.fit(evaluation, tmp_path / "cohort")
    saved = fitted.plda
    assert saved.lda.shape == (4, 6)
    emb = fitted.read(tmp_path / "test" / "embeddings.scp", test.keys())
    utts = sorted(test)
    trials = Trials(utts[:3], utts[3:], np.array([0, 0, 0], np.int8))
    e = np.array([emb.utts.index(u) for u in trials.enroll])
    t = np.array([emb.utts.index(u) for u in trials.test])
    np.testing.assert_allclose(fitted.scores(emb, trials, "test"), saved.score(emb.means, e, t))
    # AS-norm over PLDA: each side z-normed by its top-N LLRs against the cohort speakers
    fitted.evaluation = EvalOptions(score_type="plda", lda_dim=4, as_norm=True, as_norm_top_n=5)
    cross = saved.cross(emb.means, fitted.cohort_means)
    top = np.sort(cross, axis=1)[:, -5:]
    mu, sd = top.mean(1), top.std(1)
    s = saved.score(emb.means, e, t)
    hand = 0.5 * ((s - mu[e]) / sd[e] + (s - mu[t]) / sd[t])
    np.testing.assert_allclose(fitted.scores(emb, trials, "test"), hand, rtol=1e-9)


def test_qmf_fitted_on_held_list_and_saved(tmp_path):
    rng = np.random.default_rng(2)
    train = offset_embeddings(rng, 8, 4, 5, offset=0.0)
    val = offset_embeddings(rng, 6, 6, 5, offset=0.0)
    exp, data = tmp_path / "exp", tmp_path / "data"
    write_set(exp / "embeddings" / "cohort", train)
    write_set(exp / "embeddings" / "val", val)
    (data / "val" / "trials").mkdir(parents=True)
    utts = sorted(val)
    lines = [f"{a} {b} {'target' if a[:3] == b[:3] else 'nontarget'}" for i, a in enumerate(utts) for b in utts[i + 1:]]
    (data / "val" / "trials" / "val").write_text("\n".join(lines) + "\n")
    write_table(data / "val" / "utt2dur", {u: f"{2 + (i % 5):.3f}" for i, u in enumerate(utts)})
    evaluation = EvalOptions(qmf=True, qmf_trials="val/val", as_norm_top_n=3)
    fitted = Backend.of_system(exp, evaluation, exp / "embeddings" / "cohort", data)
    cal = fitted.calibration
    assert Calibration.load(SystemDir(exp).qmf).weights.tolist() == cal.weights.tolist()
    assert cal.weights[0] > 0  # a higher score means more likely the same speaker
    # the imposter-mean feature is the mean top-N cosine against the cohort speakers
    trials = read_trials(data / "val" / "trials" / "val")
    emb = fitted.read(exp / "embeddings" / "val" / "embeddings.scp", trials.utterances)
    feats = fitted.features(emb, trials, fitted.scores(emb, trials, "val"), {u: 2.0 for u in utts}, "val")
    i = emb.utts.index(trials.enroll[0])
    j = emb.utts.index(trials.test[0])
    imp = [np.sort(emb.means[k] @ fitted.cohort.T)[-3:].mean() for k in (i, j)]
    np.testing.assert_allclose(feats[0, 5:], sorted(imp), rtol=1e-6)
    np.testing.assert_allclose(feats[0, 1:3], np.log(2.0))
    with pytest.raises(SpkidError, match="no duration"):
        fitted.features(emb, trials, feats[:, 0], {}, "val")


def test_missing_training_embeddings_named(tmp_path):
    with pytest.raises(SpkidError, match="cohort-data"):
        Backend.of_system(tmp_path, EvalOptions(score_type="plda"), tmp_path / "nothing", tmp_path)


def plda_qmf_system(tmp_path, seed=5):
    """exp/ with a cohort and two scored sets' embeddings, data/ with their lists and durations."""
    rng = np.random.default_rng(seed)
    exp, data = tmp_path / "exp", tmp_path / "data"
    write_set(exp / "embeddings" / "cohort", offset_embeddings(rng, 10, 4, 6, offset=0.0))
    for name in ("val", "test"):
        mats = offset_embeddings(rng, 5, 4, 6, offset=0.0)
        write_set(exp / "embeddings" / name, mats)
        utts = sorted(mats)
        (data / name / "trials").mkdir(parents=True)
        (data / name / "trials" / name).write_text("".join(
            f"{a} {b} {'target' if a[:3] == b[:3] else 'nontarget'}\n" for i, a in enumerate(utts) for b in utts[i + 1:]))
        write_table(data / name / "wav.scp", {u: f"/x/{u}.wav" for u in utts})
        write_table(data / name / "utt2spk", {u: u[:3] for u in utts})
        write_table(data / name / "spk2utt", {s: " ".join(u for u in utts if u[:3] == s) for s in sorted({u[:3] for u in utts})})
        write_table(data / name / "utt2dur", {u: f"{2 + i % 3}.000" for i, u in enumerate(utts)})
    return exp, data


def test_stage5_scores_through_the_back_end(tmp_path):
    """score_set with PLDA + QMF: scores = the saved calibration applied to the saved PLDA's
    LLRs and the quality features; qmf.json and plda.npz written to the system's back-end folder."""
    exp, data = plda_qmf_system(tmp_path)
    evaluation = EvalOptions(score_type="plda", lda_dim=4, qmf=True, qmf_trials="val/val", as_norm_top_n=3)
    write_resolved(SystemDir(exp).config, ModelOptions(), LossOptions(), TrainOptions(), evaluation)
    score_set(exp, data / "test", ScoreOptions(), evaluation)
    # the back-end's record agrees with the disk and config.conf (what utils/check_provenance.py asks)
    record = Record.load(SystemDir(exp).backend)
    assert record.problems() == [] and set(record.outputs) == {"cohort_stats.npz", "plda.npz", "qmf.json"}
    assert set(record.inputs) == {"cohort/embeddings.ark", "cohort/embeddings.scp", "cohort/utt2spk", "qmf/trials",
                                  "qmf/utt2dur", "qmf/embeddings.ark", "qmf/embeddings.scp"}
    cal = Calibration.load(SystemDir(exp).qmf)
    assert cal.trained_on.endswith("val/trials/val")
    fitted = Backend.fit(evaluation, exp / "embeddings" / "cohort")
    trials = read_trials(data / "test" / "trials" / "test")
    emb = fitted.read(exp / "embeddings" / "test" / "embeddings.scp", trials.utterances)
    durs = {u: float(d) for u, d in (line.split() for line in (data / "test" / "utt2dur").read_text().splitlines())}
    want = cal.apply(fitted.features(emb, trials, fitted.scores(emb, trials, "t"), durs, "t"))
    _, _, got = read_scores(exp / "scores" / "test" / "test.score")
    np.testing.assert_allclose(got, want, atol=2e-6)
    assert "QMF on val/val" in json.loads((exp / "scores" / "test" / "test.metrics.json").read_text())["backend"]


def test_back_end_fitted_once_per_system_and_refitted_when_its_inputs_change(tmp_path, monkeypatch):
    exp, data = plda_qmf_system(tmp_path)
    cohort = exp / "embeddings" / "cohort"
    evaluation = EvalOptions(score_type="plda", lda_dim=4, qmf=True, qmf_trials="val/val", as_norm_top_n=3)
    score_set(exp, data / "test", ScoreOptions(), evaluation)
    fitted = Backend.fit(evaluation, cohort)
    fitted.fit_calibration(exp, data)
    fits = []
    real_fit = Backend.fit.__func__
    monkeypatch.setattr(Backend, "fit", classmethod(lambda cls, *a: fits.append(a) or real_fit(cls, *a)))
    # the second set loads what the first one fitted: the same arrays, PLDA and calibration
    score_set(exp, data / "val", ScoreOptions(), evaluation)
    loaded = Backend.of_system(exp, evaluation, cohort, data)
    assert fits == []
    np.testing.assert_array_equal(loaded.cohort, fitted.cohort)
    np.testing.assert_array_equal(loaded.cohort_means, fitted.cohort_means)
    np.testing.assert_array_equal(loaded.plda.between, fitted.plda.between)
    assert loaded.calibration.weights.tolist() == fitted.calibration.weights.tolist()
    # another option, a cohort extracted again, another QMF list: fitted again
    Backend.of_system(exp, EvalOptions(score_type="plda", lda_dim=3, qmf=True, qmf_trials="val/val"), cohort, data)
    assert len(fits) == 1
    write_set(cohort, offset_embeddings(np.random.default_rng(9), 10, 4, 6, offset=0.0))
    Backend.of_system(exp, evaluation, cohort, data)
    record = Record.load(SystemDir(exp).backend)
    assert len(fits) == 2 and record.inputs["cohort/embeddings.ark"]["sha256"] == \
        Record.load(cohort).outputs["embeddings.ark"]["sha256"]  # the digest stage 4 recorded
    Backend.of_system(exp, evaluation, cohort, data)
    assert len(fits) == 2
    # a saved file altered on disk: fitted again, not loaded
    plda = SystemDir(exp).plda
    saved = Plda.load(plda).between
    plda.write_bytes(plda.read_bytes()[:-1] + b"x")
    Backend.of_system(exp, evaluation, cohort, data)
    assert len(fits) == 3
    np.testing.assert_array_equal(Plda.load(plda).between, saved)
    a, b = sorted(read_table(data / "val" / "utt2spk"))[:2]
    with open(data / "val" / "trials" / "val", "a") as f:
        f.write(f"{b} {a} target\n")
    Backend.of_system(exp, evaluation, cohort, data)
    assert len(fits) == 4


def test_mean_subtracted_back_end_saves_the_mean(tmp_path):
    rng = np.random.default_rng(3)
    write_set(tmp_path / "cohort", offset_embeddings(rng, 6, 4, 5))
    (tmp_path / "cohort" / RECORD).unlink()  # a cohort dir made by hand: no record of stage 4
    evaluation = EvalOptions(mean_subtract=True)
    fitted = Backend.of_system(tmp_path, evaluation, tmp_path / "cohort", tmp_path)
    loaded = Backend.of_system(tmp_path, evaluation, tmp_path / "cohort", tmp_path)
    assert loaded.center.dtype == np.float32
    np.testing.assert_array_equal(loaded.center, fitted.center)
    # without stage 4's record, the back-end's own record fingerprints the cohort's files
    inputs = Record.load(SystemDir(tmp_path).backend).inputs
    assert inputs["cohort/embeddings.ark"]["sha256"] == hashlib.sha256((tmp_path / "cohort" / "embeddings.ark").read_bytes()).hexdigest()
    # junk in the saved statistics (a file its record no longer vouches for): fitted again
    SystemDir(tmp_path).backend_stats.write_bytes(b"junk")
    again = Backend.of_system(tmp_path, evaluation, tmp_path / "cohort", tmp_path)
    np.testing.assert_array_equal(again.center, fitted.center)
    np.testing.assert_array_equal(Backend.load(SystemDir(tmp_path), evaluation).center, fitted.center)


def test_a_nan_record_is_blamed_on_the_ark_with_the_command_that_redoes_the_set(tmp_path):
    # it was blamed on the trial lines ("scores are NaN") after scoring
    exp, data = plda_qmf_system(tmp_path)
    emb = exp / "embeddings" / "test"
    line = (emb / "embeddings.scp").read_text().splitlines()[1]
    utt, offset = line.split()[0], int(line.rsplit(":", 1)[1])
    with open(emb / "embeddings.ark", "r+b") as f:
        f.seek(offset + 15 + 4 * 6)  # the second crop of that record
        f.write(np.full(6, np.nan, np.float32).tobytes())
    record_set(emb)  # NaNs as stage 4 wrote them (changed after it, the ark's digest refuses it first)
    with pytest.raises(SpkidError, match=rf"^{emb}/embeddings.ark: utterance '{utt}' \({emb}/embeddings.scp:2\): "
                                         rf"crop 2 of 3 holds 6 NaN .*rm -r {emb}; steps/extract.sh "
                                         rf"{exp} {data}/test"):
        score_set(exp, data / "test", ScoreOptions(), EvalOptions())
    assert not (exp / "scores" / "test").exists()
