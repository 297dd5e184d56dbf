"""Stage 5 for one data dir: every trial list scored with a system's stored embeddings.

For each ``<data>/trials/<list>``: ``exp/<SYS>/scores/<set>/<list>.score`` (list order),
``<list>.metrics.json`` (EER, MinDCF and their thresholds, which verification decides with) and
``<list>.det.png``. Scoring is :mod:`spkid.eval.backend`'s (cosine, euclidean or PLDA; mean
subtraction, AS-norm, QMF), trained on the training utterances stage 4 extracted to
``exp/<SYS>/embeddings/cohort``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from spkid.config import option, to_conf_values
from spkid.data.datadir import DataDir, read_trials
from spkid.errors import SpkidError
from spkid.expdir import COHORT, RECORD, Record, SystemDir, check_current
from spkid.eval import backend, metrics, scoring
from spkid.eval.det import DetCurve, plot_det
from spkid.fileio import atomic_write
from spkid.options import EvalOptions


@dataclass
class ScoreOptions:
    eer_method: str = option("roc", "EER definition printed: roc (the paper's code), kaldi, interp", metrics.EER_METHODS)
    c_miss: float = option(1.0, "MinDCF cost of a miss")
    c_fa: float = option(1.0, "MinDCF cost of a false alarm")
    cohort: str = option("", "AS-norm cohort embeddings dir (default EXP_DIR/embeddings/cohort)")


def scoring_record(system: SystemDir, data_dir: Path, evaluation: EvalOptions, cohort_dir: Path,
                   lists: dict[str, Path]) -> Record:
    """What the scores of ``data_dir`` are made from: the set's embeddings (and the cohort's,
    and with QMF its list's set's, when the back-end learns from them), each checked against
    stage 4's record before use, the trial lists and the evaluation options. The old record
    goes: the folder is not done until the new one is written."""
    out_dir = system.scores(data_dir.name)
    extract = f"steps/extract.sh {system.root}"
    sets = {"": (system.embeddings(data_dir.name), f"{extract} {data_dir}")}
    if backend.needs_training_set(evaluation):
        sets["cohort/"] = (cohort_dir, f"steps/extract.sh --cohort-data TRAIN_DATA {system.root} {data_dir}")
    if evaluation.qmf:
        qmf_set = evaluation.qmf_trials.partition("/")[0]
        sets["qmf/"] = (system.embeddings(qmf_set), f"{extract} {data_dir.parent / qmf_set}")
    checked = {}
    for prefix, (emb_dir, redo) in sets.items():
        names = ("embeddings.ark", "embeddings.scp") + ("utt2spk",) * (prefix == "cohort/")
        emb = check_current(emb_dir, 4, redo, names)
        checked.update({prefix + name: emb.input_entry(name, out_dir) for name in names})
    (out_dir / RECORD).unlink(missing_ok=True)
    return Record.made_from(out_dir, 5, f"steps/score.sh {system.root} {data_dir}",
                            {f"trials/{name}": path for name, path in lists.items()}, system.config,
                            to_conf_values(evaluation), checked)


def score_set(exp_dir: Path, data_dir: Path, opts: ScoreOptions, evaluation: EvalOptions) -> int:
    """Score every trial list of ``data_dir`` with ``exp_dir``'s embeddings of it; ``evaluation`` are the
    system's evaluation options (score type, AS-norm, P_target)."""
    data = DataDir.load(data_dir, allow_pipes=True)  # (no audio is read here: wav.scp only lists the utterances)
    lists = data.trial_lists()
    if not lists:
        raise SpkidError(f"{data_dir}/trials/ has no trial lists: nothing to score")
    all_trials = {name: read_trials(p) for name, p in lists.items()}
    # not "re-run steps/extract.sh": extraction embeds wav.scp, which lacks these utterances
    absent = [line for name, t in all_trials.items() for line in t.absent(lists[name], data.wav_scp, f"{data_dir}/wav.scp")]
    if absent:
        more = f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""
        raise SpkidError(f"{absent[0]}{more}, so it has no embedding: correct the trial list, or add the utterance "
                         f"to {data_dir} (wav.scp, utt2spk) and extract again (stage 4); utils/validate_data_dir.py "
                         f"{data_dir} lists them all")
    utts = set().union(*(t.utterances for t in all_trials.values()))
    system = SystemDir(exp_dir)
    emb_dir = system.embeddings(data_dir.name)
    start = time.time()
    cohort_dir = Path(opts.cohort) if opts.cohort else system.embeddings(COHORT)
    making = scoring_record(system, data_dir, evaluation, cohort_dir, lists)
    fitted = backend.Backend.of_system(exp_dir, evaluation, cohort_dir, data_dir.parent)
    emb = fitted.read(emb_dir / "embeddings.scp", utts, data_dir)
    calibration = fitted.calibration
    out_dir = system.scores(data_dir.name)
    for name, trials in all_trials.items():
        s = fitted.scores(emb, trials, str(emb_dir))
        if calibration is not None:
            s = calibration.apply(fitted.features(emb, trials, s, data.utt2dur or {}, str(emb_dir)))
        m = metrics.compute_metrics(s, trials.labels, evaluation.p_target, opts.c_miss, opts.c_fa, opts.eer_method, str(lists[name]))
        scoring.write_scores(system.score_file(data_dir.name, name), trials, s)
        with atomic_write(out_dir / f"{name}.metrics.json") as f:
            json.dump({**m.to_json(), "system": exp_dir.name, "trials": str(lists[name]), "score_type": evaluation.score_type,
                       "as_norm": evaluation.as_norm, "backend": backend.describe(evaluation), "line": m.line()}, f, indent=1)
        plot_det([DetCurve.from_metrics(exp_dir.name, m)],
                 out_dir / f"{name}.det.png", f"{name} ({len(trials)} trials)", opts.eer_method)
        print(f"{name}: {m.line()}")
    making.write([out_dir / f"{name}{suffix}" for name in all_trials for suffix in (".score", ".metrics.json")])
    print(f"score.py: {exp_dir.name} on {data_dir.name}: {len(all_trials)} list(s), "
          f"{backend.describe(evaluation, None if fitted.cohort is None else len(fitted.cohort))}, "
          f"{time.time() - start:.1f}s -> {out_dir}")
    return 0
