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
from spkid.expdir import RECORD, Record, SystemDir, check_current, fusion_dir
from spkid.eval import fusion, metrics, scoring
from spkid.eval.fusion import FusionOptions
from spkid.eval.results import ReportOptions, TrialList, find_trial_lists, no_tuning_list
from spkid.fileio import atomic_write

FUSIONS = {"F1": "eer", "F2": "mindcf"}


def load_list_scores(exp: Path, systems: list[str], set_name: str, list_name: str, trials_path: Path):
    """(trials, scores (systems x trials)) of one list every system has scored (its records
    checked: :func:`checked_score_records`)."""
    files = [SystemDir(exp / s).score_file(set_name, list_name) for s in systems]
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


def checked_score_records(exp: Path, data: Path, systems: list[str], t: TrialList) -> dict[str, Record] | None:
    """system -> the stage-5 record of its scores of ``t``, each checked before use (the score
    file as stage 5 wrote it, from the embeddings it read); None when no system has ``t``. A list
    that only some systems have fails naming the missing files: a fusion of the others would be
    reported under weights that include them."""
    files = {s: SystemDir(exp / s).score_file(t.set, t.name) for s in systems}
    missing = [str(f) for f in files.values() if not f.is_file()]
    if len(missing) == len(files):
        return None
    if missing:
        raise SpkidError(f"{', '.join(missing)} missing: fusing {t.name} needs the scores of every system of "
                         f"--systems; score them again (stage 5: steps/score.sh {exp}/SYS {data / t.set})")
    return {s: check_current(f.parent, 5, f"steps/score.sh {exp / s} {data / t.set}", [f.name])
            for s, f in files.items()}


def write_fusion(fused: SystemDir, weights: dict[str, float], search: dict, lists: dict, making: Record,
                 fusion_opts: FusionOptions) -> None:
    """One fusion's weights, search record, fused score files (+ metrics) of every list, and its
    provenance record (the systems' score files it fused) last."""
    with atomic_write(fused.root / "weights") as f:
        f.writelines(f"{s} {w}\n" for s, w in weights.items())
    with atomic_write(fused.root / "search.json") as f:
        json.dump(search, f, indent=1)
    written = [fused.root / "weights", fused.root / "search.json"]
    for t, (tl, s) in lists.values():
        fused_scores = fusion.fuse(s, np.array(list(weights.values())))
        m = metrics.compute_metrics(fused_scores, tl.labels, fusion_opts.p_target, fusion_opts.c_miss, fusion_opts.c_fa, fusion_opts.eer_method, str(t.path))
        scoring.write_scores(fused.score_file(t.set, t.name), tl, fused_scores)
        with atomic_write(fused.scores(t.set) / f"{t.name}.metrics.json") as f:
            json.dump({**m.to_json(), "system": fused.name, "weights": weights, "line": m.line()}, f, indent=1)
        written += [fused.score_file(t.set, t.name), fused.scores(t.set) / f"{t.name}.metrics.json"]
        print(f"  {fused.name} {t.name}: {m.line()}")
    making.write(written)


def fusion_record(fused: SystemDir, exp: Path, data: Path, systems: list[str], records: dict) -> Record:
    """What a fusion is made from: each system's score file of each list (their stage-5
    fingerprints) and the systems' names. The old record goes first: not done until rewritten."""
    (fused.root / RECORD).unlink(missing_ok=True)
    checked = {f"{s}:{t.set}/{t.name}.score": rec.input_entry(f"{t.name}.score", fused.root)
               for t, recs in records.values() for s, rec in recs.items()}
    return Record.made_from(fused.root, 6, f"steps/fuse.py --config conf/fusion.conf --systems \"{' '.join(systems)}\" "
                            f"{data} {exp}", {}, options={"--systems": " ".join(systems)}, checked=checked)


def fuse_systems(data: Path, exp: Path, fusion_opts: FusionOptions, report_opts: ReportOptions) -> int:
    """Search F1 and F2 on ``fusion_opts``'s tuning list for the ``report_opts.systems`` of ``exp`` and apply them
    to every trial list under ``data``."""
    systems = report_opts.systems.split()
    if not systems:
        raise SpkidError("--systems is empty: name the systems to fuse, e.g. --systems \"HA4 EA4\"")
    tune_path = data / fusion_opts.tune_set / "trials" / fusion_opts.tune_list
    if not tune_path.is_file():  # (VoxCeleb1 alone has no VoxSRC 2020 list): the table goes without F1/F2
        for name in FUSIONS:
            shutil.rmtree(fusion_dir(exp, name).root, ignore_errors=True)
        print(f"fuse.py: note: no fusion: {no_tuning_list(tune_path)}")
        return 0
    records = {t.name: (t, recs) for t in find_trial_lists(data)
               if (recs := checked_score_records(exp, data, systems, t)) is not None}
    if fusion_opts.tune_list not in records:
        raise SpkidError(f"no scores of {fusion_opts.tune_list} for {', '.join(systems)}: run steps/score.sh exp/SYS "
                         f"{data / fusion_opts.tune_set} first")
    trials, tune_scores = load_list_scores(exp, systems, fusion_opts.tune_set, fusion_opts.tune_list, tune_path)
    start = time.time()
    found = fusion.grid_search(tune_scores, trials.labels, list(FUSIONS.values()), fusion_opts.max_weight, fusion_opts.eer_method,
                               fusion_opts.p_target, fusion_opts.c_miss, fusion_opts.c_fa, fusion_opts.search_bins, fusion_opts.search_jobs)
    print(f"fuse.py: searched {found['eer'].n_combinations} weight vectors of {len(systems)} systems on "
          f"{fusion_opts.tune_list} ({len(trials)} trials) in {time.time() - start:.1f}s")
    loaded = {name: (t, load_list_scores(exp, systems, t.set, t.name, t.path)) for name, (t, _) in records.items()}
    for name, objective in FUSIONS.items():
        res, fused = found[objective], fusion_dir(exp, name)
        weights = dict(zip(systems, res.weights.tolist()))
        search = {"objective": objective, "value": res.value, "weights": weights, "tune_list": str(tune_path),
                  "n_combinations": res.n_combinations, "n_exact_evaluations": res.n_exact, "options": asdict(fusion_opts)}
        label = "EER" if objective == "eer" else f"MinDCF(p={fusion_opts.p_target:g})"
        print(f"{name}: weights {' '.join(f'{s}={w}' for s, w in weights.items())} "
              f"({label} {100 * res.value if objective == 'eer' else res.value:.4g}{'%' if objective == 'eer' else ''} "
              f"on {fusion_opts.tune_list})")
        write_fusion(fused, weights, search, loaded, fusion_record(fused, exp, data, systems, records), fusion_opts)
    return 0
