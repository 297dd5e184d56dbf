#!/usr/bin/env python3
"""Stage 6b: exp/RESULTS.md, shaped like the paper's Table 2, and a DET plot per trial list.

    steps/make_results_table.py --config conf/fusion.conf --systems "HA4 EA4" data exp

Rows: each system (Config, #Params from the model its config.conf builds, Loss, Aug., BN),
then the fusions F1 and F2 written by steps/fuse.py (when present). Columns: EER % and MinDCF
per trial list found under <data>/*/trials/, in Table 2's order; all figures recomputed from
the score files with one EER definition and P_target (conf/fusion.conf). DET plots:
<exp>/results_det/<list>.png.
"""

from __future__ import annotations

from pathlib import Path

from spkid.eval import metrics, results
from spkid.cli import run_main
from spkid.config import parse_options
from spkid.data.datadir import read_table, read_trials
from spkid.eval.det import DetCurve, plot_det
from spkid.errors import SpkidError
from spkid.fileio import atomic_write
from spkid.eval.fusion import FusionOptions
from spkid.eval.results import ReportOptions
from spkid.eval.scoring import scores_for_trials


def main(argv: list[str]) -> int:
    fo, to, (data, exp) = parse_options([FusionOptions, ReportOptions], argv, ["data", "exp"],
                                        prog="make_results_table.py", description=__doc__)
    data, exp = Path(data), Path(exp)
    systems = to.systems.split()
    if not systems:
        raise SpkidError("--systems is empty: name the systems of the table")
    rows = [(results.system_row(exp / s), exp / s) for s in systems]
    for name in to.fusions.split():
        fdir = exp / "fusion" / name
        if (fdir / "weights").is_file():
            weights = read_table(fdir / "weights")
            what = "EER" if name == "F1" else "MinDCF" if name == "F2" else "objective"
            note = f"best {what} fusion on {fo.tune_list}: " + " + ".join(
                f"{w}*{s}" for s, w in weights.items() if w != "0")
            rows.append((results.Row(name, note=note), fdir))
    lists = results.find_trial_lists(data)
    shown, det_links = [], {}
    out = Path(to.out) if to.out else exp / "RESULTS.md"
    for t in lists:
        trials = read_trials(t.path)
        curves = []
        for row, d in rows:
            f = d / "scores" / t.set / f"{t.name}.score"
            if not f.is_file():
                continue
            s = scores_for_trials(f, trials, str(t.path))
            row.results[t.name] = metrics.compute_metrics(s, trials.labels, fo.p_target, fo.c_miss, fo.c_fa,
                                                          fo.eer_method, str(t.path))
            curves.append(DetCurve.from_scores(row.name, s, trials.labels, fo.eer_method))
        if curves:
            shown.append(t)
            png = exp / "results_det" / f"{t.name}.png"
            plot_det(curves, png, f"{t.name} ({len(trials)} trials)", fo.eer_method)
            det_links[t.name] = str(png.relative_to(out.parent)) if png.is_relative_to(out.parent) else str(png)
    if not shown:
        raise SpkidError(f"no scores of any trial list under {data}/*/trials for {', '.join(systems)}: run stage 5 first")
    text = results.render([r for r, _ in rows], shown, fo.p_target, fo.eer_method, det_links,
                          f"{fo.tune_set}/{fo.tune_list}", fo.max_weight, to.corpus)
    with atomic_write(out) as f:
        f.write(text)
    print(f"make_results_table.py: {len(rows)} row(s) x {len(shown)} trial list(s) -> {out}")
    return 0


if __name__ == "__main__":
    run_main(main)
