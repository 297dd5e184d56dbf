"""Stages 5-6 without a network: stored embeddings -> scores -> fusion -> RESULTS.md."""

import json
from pathlib import Path

import kaldiio
import numpy as np
import pytest

from spkid.eval import metrics, results
from spkid.config import parse_options, write_resolved
from spkid.data.datadir import DataDir, Trials, read_trials, write_trials
from spkid.errors import SpkidError
from spkid.expdir import Record, SystemDir
from spkid.eval.fuse_systems import fuse_systems
from spkid.eval.fusion import FusionOptions
from spkid.eval.results import ReportOptions
from spkid.eval.score_files import MetricsOptions, print_metrics
from spkid.eval.score_set import ScoreOptions, score_set
from spkid.options import EvalOptions, LossOptions, ModelOptions, TrainOptions
from spkid.registry import LOSSES
from trained_system import record_set, system_step

ROOT = Path(__file__).resolve().parents[1]


def stage6(run):
    """``main(argv)`` of steps/fuse.py or steps/make_results_table.py, parsed as they parse it."""
    def main(argv):
        args = parse_options([FusionOptions, ReportOptions], argv, ["data", "exp"])
        return run(Path(args.positionals["data"]), Path(args.positionals["exp"]), args[FusionOptions], args[ReportOptions])
    return main


def compute_metrics_main(argv):
    return print_metrics(parse_options([MetricsOptions], argv)[MetricsOptions])


STEPS = {"score": system_step(ScoreOptions, score_set), "fuse": stage6(fuse_systems),
         "make_results_table": stage6(results.write_results_table), "compute_metrics": compute_metrics_main}


def make_set(data: Path, name: str, lists: list[str], n_spk: int, rng) -> list[str]:
    utts = [f"id{s:05d}/sess/{u:05d}" for s in range(n_spk) for u in range(4)]
    d = DataDir(data / name, {u: f"/nonexistent/{u}.wav" for u in utts}, {u: u.split("/")[0] for u in utts}, {}, None)
    d.write()
    for lst in lists:
        e, t, y = [], [], []
        for _ in range(120):
            a, b = rng.choice(len(utts), 2, replace=False)
            e.append(utts[a]), t.append(utts[b]), y.append(utts[a][:7] == utts[b][:7])
        for a in range(0, len(utts), 4):  # some targets
            e.append(utts[a]), t.append(utts[a + 1]), y.append(True)
        write_trials(data / name / "trials" / lst, Trials(e, t, np.array(y, np.int8)))
    return utts


def make_system(exp: Path, name: str, sets: dict[str, list[str]], noise: float, rng, spk_vecs, **model):
    sysdir = exp / name
    write_resolved(sysdir / "config.conf", ModelOptions(**model), LossOptions(loss="ap_softmax"),
                   TrainOptions(augment=True), EvalOptions())
    (sysdir / "final.pt").write_bytes(f"network of {name}".encode())  # the table names its digest
    for set_name, utts in sets.items():
        out = sysdir / "embeddings" / set_name
        out.mkdir(parents=True)
        with kaldiio.WriteHelper(f"ark,scp:{out}/embeddings.ark,{out}/embeddings.scp") as w:
            for u in utts:
                base = spk_vecs[u.split("/")[0]]
                w(u, (base + noise * rng.normal(size=(10, len(base)))).astype(np.float32))
        record_set(out)


@pytest.fixture
def recipe(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    data, exp = tmp_path / "data", tmp_path / "exp"
    sets = {"vox1": make_set(data, "vox1", ["vox1_O", "vox1_H"], 12, rng),
            "voxsrc20_val": make_set(data, "voxsrc20_val", ["voxsrc20_val"], 10, rng)}
    spk = {f"id{s:05d}": rng.normal(size=16) for s in range(12)}
    make_system(exp, "A", sets, 1.5, rng, spk)
    make_system(exp, "B", sets, 2.5, rng, spk, embed_bn=True)
    monkeypatch.setattr(results, "trunk_params", lambda opts: 8_028_492 if opts.trunk == "H_ASP" else 0)
    return data, exp


def test_score_fuse_report(recipe, capsys):
    data, exp = recipe
    for sys_name in ("A", "B"):
        for s in ("vox1", "voxsrc20_val"):
            assert STEPS["score"]([str(exp / sys_name), str(data / s)]) == 0
    out = capsys.readouterr().out
    assert "vox1_O: EER" in out and "MinDCF(p=0.05)" in out
    for f in ("vox1_O.score", "vox1_O.metrics.json", "vox1_O.det.png", "vox1_H.score"):
        assert (exp / "A" / "scores" / "vox1" / f).is_file()
    m = json.loads((exp / "A" / "scores" / "vox1" / "vox1_O.metrics.json").read_text())
    assert m["eer_method"] == "roc" and m["score_type"] == "cosine"

    STEPS["compute_metrics"](["--trials", str(data / "vox1/trials/vox1_O"),
                             "--scores", str(exp / "A/scores/vox1/vox1_O.score")])
    line = capsys.readouterr().out.strip()
    assert line == m["line"] and line.startswith("EER ") and " MinDCF(p=0.05) " in line

    args = ["--config", str(ROOT / "conf/fusion.conf"), "--systems", "A B", str(data), str(exp)]
    assert STEPS["fuse"](args) == 0
    for f in ("F1", "F2"):
        assert (exp / "fusion" / f / "weights").is_file()
        assert (exp / "fusion" / f / "scores" / "vox1" / "vox1_H.score").is_file()
    assert STEPS["make_results_table"](args) == 0
    text = (exp / "RESULTS.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| Config"))
    # Table 2 column order: vox1_O before vox1_H before the VoxSRC 2020 validation list
    assert header.index("VoxCeleb1 cl.") < header.index("VoxCeleb1-H cl.") < header.index("VoxSRC 2020 Val")
    assert "MinDCF(p=0.05)" in header
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| Config")]
    assert [r.split("|")[1].strip() for r in rows] == ["A", "B", "F1", "F2"]
    assert "| A | 8.03M | AP+softmax | yes | no |" in text
    assert "| B | 8.03M | AP+softmax | yes | yes |" in text
    assert "paper's code" in text
    for lst in ("vox1_O", "vox1_H", "voxsrc20_val"):
        assert (exp / "results_det" / f"{lst}.png").is_file() and f"results_det/{lst}.png" in text
    assert "w_i in 0..3" in text
    # the stage-6 wrapper hands every option to both steps: each takes the other's too
    both = ["--max-weight=2", "--out", str(exp / "R2.md"), "--fusions", "F1", *args]
    assert STEPS["fuse"](both) == 0 and STEPS["make_results_table"](both) == 0
    text = (exp / "R2.md").read_text()
    assert "w_i in 0..2" in text and "| F1 |" in text and "| F2 |" not in text
    # the table's figures are recomputed with its own P_target and EER definition
    assert STEPS["make_results_table"](["--p-target=0.3", "--eer-method=kaldi", "--out", str(exp / "R3.md"), *args]) == 0
    row = next(r for r in (exp / "R3.md").read_text().splitlines() if r.startswith("| A |")).split("|")
    trials = read_trials(data / "vox1" / "trials" / "vox1_O")
    scores = [float(line.split()[2]) for line in (exp / "A/scores/vox1/vox1_O.score").read_text().splitlines()]
    assert row[6].strip() == f"{100 * metrics.eer(scores, trials.labels, 'kaldi'):.2f}"
    assert row[7].strip() == f"{metrics.min_dcf(scores, trials.labels, 0.3):.3f}"
    assert metrics.min_dcf(scores, trials.labels, 0.3) != pytest.approx(metrics.min_dcf(scores, trials.labels, 0.05))


def test_render_cells():
    lists = [results.TrialList("vox1", "vox1_O", Path("x")), results.TrialList("vox1", "vox1_H", Path("y"))]
    m = metrics.compute_metrics([0.9, 0.8, 0.4, 0.7, 0.3, 0.2], [1, 1, 1, 0, 0, 0])
    text = results.render([results.Row("A", results.format_params(1_437_078), results={"vox1_O": m}),
                           results.Row("B", results.format_params(95_300))], lists, 0.05, "roc", {})
    assert "| A | 1.44M | - | - | - | 33.33 | 0.333 | - | - |" in text
    assert "| B | 95.3K | - | - | - | - | - | - | - |" in text  # not scored: a dash, never a number


def test_as_norm_needs_cohort(recipe):
    data, exp = recipe
    with pytest.raises(SpkidError, match="cohort"):
        STEPS["score"](["--as-norm=true", str(exp / "A"), str(data / "vox1")])


def test_fusion_needs_tune_scores(recipe):
    data, exp = recipe
    with pytest.raises(SpkidError, match="no scores of voxsrc20_val for A, B"):
        STEPS["fuse"](["--systems", "A B", str(data), str(exp)])


def test_list_order(tmp_path):
    for s, lst in [("voxsrc20_val", "voxsrc20_val"), ("vox1", "vox1_H"), ("vox1", "vox1_O"), ("x", "other")]:
        (tmp_path / s / "trials").mkdir(parents=True, exist_ok=True)
        (tmp_path / s / "trials" / lst).write_text("a b target\n")
    assert [t.name for t in results.find_trial_lists(tmp_path)] == ["vox1_O", "vox1_H", "voxsrc20_val", "other"]


def test_paper_rows_beside_table2_systems(tmp_path, monkeypatch):
    """On VoxCeleb the table sets the paper's figures under every system named as a Table 2 row."""
    rng = np.random.default_rng(1)
    data, exp = tmp_path / "data", tmp_path / "exp"
    sets = {"vox1": make_set(data, "vox1", ["vox1_O"], 12, rng),
            "voxsrc20_val": make_set(data, "voxsrc20_val", ["voxsrc20_val"], 10, rng)}
    spk = {f"id{s:05d}": rng.normal(size=16) for s in range(12)}
    make_system(exp, "HA4", sets, 1.5, rng, spk)
    make_system(exp, "mine", sets, 2.5, rng, spk)
    monkeypatch.setattr(results, "trunk_params", lambda opts: 8_028_492)
    for sys_name in ("HA4", "mine"):
        for s in sets:
            assert STEPS["score"]([str(exp / sys_name), str(data / s)]) == 0
    args = ["--config", str(ROOT / "conf/fusion.conf"), "--systems", "HA4 mine", str(data), str(exp)]
    assert STEPS["fuse"](args) == 0 and STEPS["make_results_table"](args) == 0
    text = (exp / "RESULTS.md").read_text()
    rows = [r.split("|")[1].strip() for r in text.splitlines() if r.startswith("| ") and "Config" not in r]
    assert rows == ["HA4", "HA4 (paper)", "mine", "F1", "F1 (paper)", "F2", "F2 (paper)"]
    # Table 2: HA4 0.88 / 0.079 on VoxCeleb1 cleaned, 3.51 / 0.202 on the VoxSRC 2020 validation list
    assert "| HA4 (paper) | 8.0M | AP+softmax | yes | no | 0.88 | 0.079 | 3.51 | 0.202 |" in text
    assert "| F1 (paper) | - | - | - | - | 0.73 | 0.056 | 3.08 | 0.174 |" in text
    assert "3*HA4 + 3*EA4 + 1*EA5 + 1*HA6" in text and "same EER definition" in text

    assert STEPS["make_results_table"](["--corpus", "mini", "--eer-method", "kaldi", *args]) == 0
    text = (exp / "RESULTS.md").read_text()
    assert "(paper)" not in text and "VoxCeleb1 cl.-like (mini) EER" in text
    other_metrics = results.render([results.Row("HA4")], results.find_trial_lists(data), 0.01, "kaldi", {})
    assert "| HA4 (paper) |" in other_metrics and "compare with care" in other_metrics


def test_paper_table_agrees_with_the_confs():
    """spkid.eval.paper's Table 2 (typed from the paper) and conf/<SYS>.conf (written from the paper's
    text) describe each row the same way: loss, augmentation, BN and trunk size."""
    from spkid.eval import paper
    from spkid.config import parse_options
    from spkid.options import SYSTEM_OPTIONS

    assert len(paper.TABLE2) == 42 and {"F1", "F2"} <= set(paper.TABLE2)
    sizes = {"Q_SAP": 1_437_078, "H_ASP": 8_028_492, "ECAPA": 14_657_088}
    for name, row in paper.TABLE2.items():
        if name.startswith("F"):
            continue
        model, loss, train, _ = parse_options(SYSTEM_OPTIONS, ["--config", str(ROOT / "conf" / f"{name}.conf")]).of(SYSTEM_OPTIONS)
        assert (row.loss, row.aug, row.bn) == (LOSSES[loss.loss].label, "yes" if train.augment else "no",
                                               "yes" if model.embed_bn else "no"), name
        assert row.params == f"{sizes[model.trunk] / 1e6:.1f}M", name
        assert set(row.results) == set(paper.LISTS)
        assert all(0 < r.eer < 0.1 and 0 < r.min_dcf < 0.4 for r in row.results.values()), name
    # the best EER per trunk family that the paper prints in bold on VoxCeleb1 cleaned
    best = {fam: min((n for n in paper.TABLE2 if n.rstrip("12345678") == fam),
                     key=lambda n: paper.TABLE2[n].results["vox1_O"].eer) for fam in ("Q", "QA", "H", "HA", "EA")}
    assert best == {"Q": "Q8", "QA": "QA8", "H": "H7", "HA": "HA4", "EA": "EA4"}


def test_backend_systems_say_their_back_end(tmp_path):
    """A derived system's row names what differs from its base: averaging, PLDA, QMF's tuned list."""
    tiny = ModelOptions(trunk="Q_SAP", channels="4,8,8,8", embed_dim=32)
    write_resolved(tmp_path / "A" / "config.conf", tiny, LossOptions(), TrainOptions(average_last=3),
                   EvalOptions(score_type="plda", lda_dim=50, qmf=True))
    write_resolved(tmp_path / "B" / "config.conf", tiny, LossOptions(), TrainOptions(), EvalOptions())
    note = results.system_row(tmp_path / "A").note
    assert "last 3 epochs" in note and "PLDA (LDA 50)" in note and "tuned there" in note
    assert results.system_row(tmp_path / "B").note == ""
    # the LDA a PLDA back-end fitted (capped at speakers - 1) and where a fine-tuned run started
    SystemDir(tmp_path / "A").backend.mkdir()
    np.savez(SystemDir(tmp_path / "A").plda, lda=np.zeros((39, 32)), mu=np.zeros(39))
    (tmp_path / "B" / "initialised_from").write_text("/x/exp/EA4\n")
    assert "PLDA (LDA 39)" in results.system_row(tmp_path / "A").note
    assert results.system_row(tmp_path / "B").note == "trained from /x/exp/EA4 (--init-from)"


def test_floor_row_comes_first_with_its_own_figures(recipe):
    """--floor DIR (local/mfcc_baseline.py --scores-dir DIR, run.sh stage 6 on the mini corpus):
    the first row, named by DIR/description, its figures recomputed from DIR's score files."""
    from spkid.eval.scoring import write_scores

    data, exp = recipe
    for s in ("vox1", "voxsrc20_val"):
        assert STEPS["score"]([str(exp / "A"), str(data / s)]) == 0
    floor = exp / "mfcc_baseline"
    rng = np.random.default_rng(5)
    trials = read_trials(data / "vox1" / "trials" / "vox1_O")
    floor_scores = trials.labels + rng.normal(scale=1.5, size=len(trials))
    write_scores(floor / "scores" / "vox1" / "vox1_O.score", trials, floor_scores)
    Record.made_from(floor, 6, "local/mfcc_baseline.py", {}).write([floor / "scores" / "vox1" / "vox1_O.score"])
    args = ["--systems", "A", "--fusions", "", "--floor", str(floor), str(data), str(exp)]
    with pytest.raises(SpkidError, match="description not found: --floor takes a directory written by"):
        STEPS["make_results_table"](args)
    (floor / "description").write_text("MFCC mean+std baseline\n")
    assert STEPS["make_results_table"](args) == 0
    rows = [r for r in (exp / "RESULTS.md").read_text().splitlines() if r.startswith("| ") and "Config" not in r]
    assert [r.split("|")[1].strip() for r in rows] == ["MFCC mean+std baseline", "A"]
    cells = [c.strip() for c in rows[0].split("|")[1:-1]]
    assert cells[1:5] == ["-"] * 4
    assert cells[5] == f"{100 * metrics.eer(floor_scores, trials.labels, 'roc'):.2f}"
    assert cells[6] == f"{metrics.min_dcf(floor_scores, trials.labels, 0.05):.3f}"
    assert cells[7:] == ["-"] * (len(cells) - 7)  # lists the floor did not score stay dashes


def score_all(data, exp, systems=("A", "B")):
    for sys_name in systems:
        for s in ("vox1", "voxsrc20_val"):
            assert STEPS["score"]([str(exp / sys_name), str(data / s)]) == 0


def test_stage6_never_reports_a_fusion_whose_inputs_are_missing_or_changed(recipe, tmp_path):
    """The issue's reproduction: a fusion of other systems, a system's score file moved away or
    changed after stage 5: fuse.py and the table fail naming the file and the stage to re-run
    (they reported the old fusion's figures under the new weights, rc 0); once it is scored
    again, the fusion is recomputed."""
    data, exp = recipe
    score_all(data, exp)
    args = ["--config", str(ROOT / "conf/fusion.conf"), "--systems", "A B", str(data), str(exp)]
    assert STEPS["fuse"](args) == 0 and STEPS["make_results_table"](args) == 0
    only_a = ["--config", str(ROOT / "conf/fusion.conf"), "--systems", "A", str(data), str(exp)]
    with pytest.raises(SpkidError, match=f"{exp}/fusion/F1 fuses A B, not this table's systems A: fuse these first"):
        STEPS["make_results_table"](only_a)
    gone = exp / "B" / "scores" / "vox1" / "vox1_H.score"
    gone.rename(tmp_path / "vox1_H.score")
    for step in ("fuse", "make_results_table"):
        with pytest.raises(SpkidError, match=f"{gone} is missing since stage [56] made .*: re-run stage [56]"):
            STEPS[step](args)
    (tmp_path / "vox1_H.score").rename(gone)
    gone.write_text(gone.read_text().replace(" 0.", " 0.9", 1))  # edited after stage 5
    with pytest.raises(SpkidError, match=rf"{gone} changed .* since stage 5 made {gone.parent}: re-run stage 5 for "
                                         rf"it: steps/score.sh {exp / 'B'} {data / 'vox1'}"):
        STEPS["fuse"](args)
    score_all(data, exp, ["B"])
    assert STEPS["fuse"](args) == 0 and STEPS["make_results_table"](args) == 0


def test_results_name_the_digests_of_the_files_behind_each_row(recipe):
    """Each row of RESULTS.md names the sha256 (8 hex digits) of its system's final.pt and of
    every score file its figures came from, as sha256sum prints them."""
    import hashlib

    data, exp = recipe
    score_all(data, exp)
    args = ["--config", str(ROOT / "conf/fusion.conf"), "--systems", "A B", str(data), str(exp)]
    assert STEPS["fuse"](args) == 0 and STEPS["make_results_table"](args) == 0
    lines = (exp / "RESULTS.md").read_text().splitlines()

    def short(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:8]

    for row, root in (("A", exp / "A"), ("B", exp / "B"), ("F1", exp / "fusion" / "F1"), ("F2", exp / "fusion" / "F2")):
        line = next(x for x in lines if x.startswith(f"- {row}: ") and ".score " in x)
        want = [f"final.pt {short(root / 'final.pt')}"] if row in "AB" else []
        want += [f"{t}.score {short(root / 'scores' / s / f'{t}.score')}"
                 for s, t in (("vox1", "vox1_O"), ("vox1", "vox1_H"), ("voxsrc20_val", "voxsrc20_val"))]
        assert line == f"- {row}: " + "; ".join(want)
