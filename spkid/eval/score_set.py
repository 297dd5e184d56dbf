"""Stage 5 for one data dir: every trial list scored with a system's stored embeddings.

For each ``<data>/trials/<list>``: ``exp/<SYS>/scores/<set>/<list>.score`` (list order),
``<list>.metrics.json`` (EER, MinDCF and their thresholds, which verification decides with) and
``<list>.det.png``. Scoring is :mod:`spkid.eval.scoring`'s; AS-norm reads the cohort stage 4
extracted to ``exp/<SYS>/embeddings/cohort``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spkid.config import option
from spkid.data.datadir import DataDir, read_table, read_trials
from spkid.errors import SpkidError
from spkid.eval import metrics, scoring
from spkid.eval.det import DetCurve, plot_det
from spkid.fileio import atomic_write
from spkid.options import EvalOptions


@dataclass
class ScoreOptions:
    eer_method: str = option("roc", "EER definition printed: roc (the paper's code), kaldi, interp", metrics.EER_METHODS)
    c_miss: float = option(1.0, "MinDCF cost of a miss")
    c_fa: float = option(1.0, "MinDCF cost of a false alarm")
    cohort: str = option("", "AS-norm cohort embeddings dir (default EXP_DIR/embeddings/cohort)")


def load_cohort(cohort_dir: Path, ev: EvalOptions) -> np.ndarray:
    """One vector per cohort speaker, from the embeddings stage 4 extracted to ``cohort_dir``."""
    scp = cohort_dir / "embeddings.scp"
    if not scp.is_file() or not (cohort_dir / "utt2spk").is_file():
        raise SpkidError(f"AS-norm needs cohort embeddings in {cohort_dir}: extract them with steps/extract.sh "
                         f"--as-norm=true --cohort-data data/vox2_dev EXP_DIR DATA_DIR (or score with --as-norm=false)")
    emb = scoring.read_embeddings(scp, keep_crops=ev.score_type == "euclidean")
    _, vectors = scoring.cohort_vectors(emb, read_table(cohort_dir / "utt2spk"))
    return vectors


def score_set(exp_dir: Path, data_dir: Path, so: ScoreOptions, ev: EvalOptions) -> int:
    """Score every trial list of ``data_dir`` with ``exp_dir``'s embeddings of it; ``ev`` are the
    system's evaluation options (score type, AS-norm, P_target)."""
    data = DataDir.load(data_dir)
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
    emb_dir = exp_dir / "embeddings" / data_dir.name
    start = time.time()
    emb = scoring.read_embeddings(emb_dir / "embeddings.scp", utts, keep_crops=ev.score_type == "euclidean")
    cohort = load_cohort(Path(so.cohort) if so.cohort else exp_dir / "embeddings" / "cohort", ev) if ev.as_norm else None
    out_dir = exp_dir / "scores" / data_dir.name
    norm = f", AS-norm top-{ev.as_norm_top_n} of {len(cohort)} cohort speakers" if cohort is not None else ""
    for name, trials in all_trials.items():
        s = scoring.score_trials(emb, trials, ev.score_type, cohort, ev.as_norm_top_n, where=str(emb_dir))
        m = metrics.compute_metrics(s, trials.labels, ev.p_target, so.c_miss, so.c_fa, so.eer_method, str(lists[name]))
        scoring.write_scores(out_dir / f"{name}.score", trials, s)
        with atomic_write(out_dir / f"{name}.metrics.json") as f:
            json.dump({**m.to_json(), "system": exp_dir.name, "trials": str(lists[name]), "score_type": ev.score_type,
                       "as_norm": ev.as_norm, "line": m.line()}, f, indent=1)
        plot_det([DetCurve.from_scores(exp_dir.name, s, trials.labels, so.eer_method)],
                 out_dir / f"{name}.det.png", f"{name} ({len(trials)} trials)", so.eer_method)
        print(f"{name}: {m.line()}")
    print(f"score.py: {exp_dir.name} on {data_dir.name}: {len(all_trials)} list(s), {ev.score_type} scoring{norm}, "
          f"{time.time() - start:.1f}s -> {out_dir}")
    return 0
