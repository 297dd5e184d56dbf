"""Stage 6a: F1 and F2 fusion of trained systems' score files (paper section 3.7).

The weights are searched on one tuning list (:func:`spkid.eval.fusion.grid_search`, exact) for
the lowest EER (F1) and the lowest MinDCF (F2), then applied to every trial list all systems
were scored on: ``<exp>/fusion/F1/scores/<set>/<list>.score`` (+ ``.metrics.json``), with the
weights in ``<exp>/fusion/F1/weights`` and ``search.json`` (the same for F2).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from spkid.data.datadir import read_trials
from spkid.errors import SpkidError
from spkid.expdir import SystemDir, fusion_dir
from spkid.eval import fusion, metrics, scoring
from spkid.eval.fusion import FusionOptions
from spkid.eval.results import ReportOptions, find_trial_lists, no_tuning_list
from spkid.fileio import atomic_write

FUSIONS = {"F1": "eer", "F2": "mindcf"}


def load_list_scores(exp: Path, systems: list[str], set_name: str, list_name: str, trials_path: Path):
    """(trials, scores (systems x trials)) of one list; None when some system lacks that list."""
    files = [SystemDir(exp / s).score_file(set_name, list_name) for s in systems]
    if not all(f.is_file() for f in files):
        return None
    trials = read_trials(trials_path)
    # one file at a time, each read once: a file's trial ids (a million strings on Vox1-E)
    # are dropped once its scores are in the list's order
    first, out = None, []
    for f in files:
        enroll, test, vals = scoring.read_scores(f)
        first = first or (str(f), enroll, test)
        fusion.check_aligned([first, (str(f), enroll, test)])
        out.append(scoring.scores_for_trials(f, trials, str(trials_path), (enroll, test, vals)))
    return trials, np.stack(out)


def fuse_systems(data: Path, exp: Path, fo: FusionOptions, ro: ReportOptions) -> int:
    """Search F1 and F2 on ``fo``'s tuning list for the ``ro.systems`` of ``exp`` and apply them
    to every trial list under ``data``."""
    systems = ro.systems.split()
    if not systems:
        raise SpkidError("--systems is empty: name the systems to fuse, e.g. --systems \"HA4 EA4\"")
    tune_path = data / fo.tune_set / "trials" / fo.tune_list
    if not tune_path.is_file():  # (VoxCeleb1 alone has no VoxSRC 2020 list): the table goes without F1/F2
        for name in FUSIONS:
            shutil.rmtree(exp / "fusion" / name, ignore_errors=True)
        print(f"fuse.py: note: no fusion: {no_tuning_list(tune_path)}")
        return 0
    tuned = load_list_scores(exp, systems, fo.tune_set, fo.tune_list, tune_path)
    if tuned is None:
        missing = [s for s in systems if not SystemDir(exp / s).score_file(fo.tune_set, fo.tune_list).is_file()]
        raise SpkidError(f"no scores of {fo.tune_list} for {', '.join(missing)}: run steps/score.sh exp/SYS "
                         f"{data / fo.tune_set} first")
    trials, tune_scores = tuned
    start = time.time()
    found = fusion.grid_search(tune_scores, trials.labels, list(FUSIONS.values()), fo.max_weight, fo.eer_method,
                               fo.p_target, fo.c_miss, fo.c_fa, fo.search_bins, fo.search_jobs)
    print(f"fuse.py: searched {found['eer'].n_combinations} weight vectors of {len(systems)} systems on "
          f"{fo.tune_list} ({len(trials)} trials) in {time.time() - start:.1f}s")
    loaded = {t.name: (t, load_list_scores(exp, systems, t.set, t.name, t.path)) for t in find_trial_lists(data)}
    for name, objective in FUSIONS.items():
        res = found[objective]
        fused = fusion_dir(exp, name)
        out = fused.root
        weights = dict(zip(systems, res.weights.tolist()))
        with atomic_write(out / "weights") as f:
            f.writelines(f"{s} {w}\n" for s, w in weights.items())
        with atomic_write(out / "search.json") as f:
            json.dump({"objective": objective, "value": res.value, "weights": weights,
                       "tune_list": str(tune_path), "n_combinations": res.n_combinations,
                       "n_exact_evaluations": res.n_exact, "options": asdict(fo)}, f, indent=1)
        label = "EER" if objective == "eer" else f"MinDCF(p={fo.p_target:g})"
        print(f"{name}: weights {' '.join(f'{s}={w}' for s, w in weights.items())} "
              f"({label} {100 * res.value if objective == 'eer' else res.value:.4g}{'%' if objective == 'eer' else ''} "
              f"on {fo.tune_list})")
        for t, pair in loaded.values():
            if pair is None:
                continue
            tl, s = pair
            fused_scores = fusion.fuse(s, res.weights)
            m = metrics.compute_metrics(fused_scores, tl.labels, fo.p_target, fo.c_miss, fo.c_fa, fo.eer_method, str(t.path))
            scoring.write_scores(fused.score_file(t.set, t.name), tl, fused_scores)
            with atomic_write(fused.scores(t.set) / f"{t.name}.metrics.json") as f:
                json.dump({**m.to_json(), "system": name, "weights": weights, "line": m.line()}, f, indent=1)
            print(f"  {name} {t.name}: {m.line()}")
    return 0
