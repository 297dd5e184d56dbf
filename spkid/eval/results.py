"""exp/RESULTS.md: the paper's Table 2 shape, filled from score files.

One row per trained system (Config, #Params, Loss, Aug., BN) and one per fusion (F1: best
EER weights, F2: best MinDCF weights, tuned on the VoxSRC 2020 validation list); per trial list
EER % and MinDCF, recomputed here from the score files with one EER definition and one
P_target for the whole table; a DET plot per trial list (every row's curve) linked below it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from spkid.config import option, read_resolved
from spkid.data.datadir import read_table, read_trials
from spkid.errors import SpkidError
from spkid.expdir import SHORT, Record, SystemDir, check_current, fingerprint, fusion_dir
from spkid.eval import backend, metrics, paper
from spkid.eval.fusion import FusionOptions
from spkid.eval.scoring import scores_for_trials
from spkid.fileio import atomic_write
from spkid.options import SYSTEM_OPTIONS
from spkid.registry import LOSSES

# Table 2's column order; other lists follow in name order.
LIST_ORDER = ("vox1_O", "vox1_E", "vox1_H", "voxsrc19_test", "voxsrc20_val")
LIST_TITLES = {"vox1_O": "VoxCeleb1 cl.", "vox1_E": "VoxCeleb1-E cl.", "vox1_H": "VoxCeleb1-H cl.",
               "voxsrc19_test": "VoxSRC 2019", "voxsrc20_val": "VoxSRC 2020 Val"}


@dataclass
class ReportOptions:
    """Stage 6's own options, read by both steps/fuse.py and steps/make_results_table.py (so that
    steps/fuse_and_report.sh can hand every option to both)."""

    systems: str = option("", "space-separated trained systems: fused by fuse.py, one row each in the table")
    fusions: str = option("F1 F2", "fusion rows of the table (exp/fusion/<name>/), skipped when absent")
    out: str = option("", "the table's markdown (default <exp>/RESULTS.md)")
    corpus: str = option("voxceleb", "voxceleb: a row of the paper's figures under each system or fusion named "
                         "as a Table 2 row; mini: list titles marked '-like', no paper rows (run.sh sets it)",
                         choices=("voxceleb", "mini"))
    floor: str = option("", "a directory of score files (<dir>/scores/<set>/<list>.score, as "
                        "local/mfcc_baseline.py --scores-dir writes them) shown as the table's first row, "
                        "named by <dir>/description (run.sh passes the MFCC baseline on the mini corpus)")


@dataclass
class TrialList:
    set: str      # data dir name, e.g. vox1
    name: str     # list name, e.g. vox1_O
    path: Path


def no_tuning_list(path: Path) -> str:
    return (f"{path}, the list that tunes the fusion weights, is not there; name another list all systems "
            f"were scored on with ./run.sh --fusion-tune SET/LIST (or --tune-set/--tune-list)")


def find_trial_lists(data_root: str | os.PathLike) -> list[TrialList]:
    """Every <data_root>/<set>/trials/<list>, in Table 2's order."""
    found = [TrialList(p.parent.parent.name, p.name, p)
             for p in sorted(Path(data_root).glob("*/trials/*")) if p.is_file()]
    rank = {n: i for i, n in enumerate(LIST_ORDER)}
    return sorted(found, key=lambda t: (rank.get(t.name, len(LIST_ORDER)), t.name, t.set))


def trunk_params(model_opts) -> int:
    """Trunk parameters of the model a config describes (no loss head, no embedding BN)."""
    from spkid.models import build_model, trunk_parameters

    return trunk_parameters(build_model(model_opts))


def format_params(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"


@dataclass
class Row:
    name: str
    params: str = "-"
    loss: str = "-"
    aug: str = "-"
    bn: str = "-"
    results: dict[str, metrics.Metrics | paper.Reported] = field(default_factory=dict)  # list name -> figures
    note: str = ""
    digests: dict[str, str] = field(default_factory=dict)  # file the row was computed from -> its sha256


def with_paper_rows(rows: Sequence[Row], lists: Sequence[TrialList]) -> list[Row]:
    """``rows`` with the paper's Table 2 figures, as a row "<name> (paper)", under every row named
    as one of its rows (fusions included), when a system (not only a fusion) is named as one and
    any of ``lists`` is one the paper reports."""
    out = list(rows)
    if (not any(r.name in paper.TABLE2 and r.name not in paper.FUSIONS for r in rows)
            or not any(t.name in paper.LISTS for t in lists)):
        return out
    for r in rows:
        p = paper.TABLE2.get(r.name)
        if p is not None:
            out.insert(out.index(r) + 1, Row(f"{p.name} (paper)", p.params, p.loss, p.aug, p.bn, dict(p.results)))
    return out


def fitted_lda_dim(exp_dir: Path) -> int | None:
    """The dimension of the LDA a PLDA back-end fitted (exp/<SYS>/backend/plda.npz), if it has one."""
    import numpy as np

    plda = SystemDir(exp_dir).plda
    if not plda.is_file():
        return None
    with np.load(plda) as z:
        return int(z["lda"].shape[0]) if "lda" in z.files else None


def system_row(exp_dir: str | os.PathLike) -> Row:
    """Config, #Params, Loss, Aug. and BN of a trained system, from exp/<SYS>/config.conf."""
    exp_dir = Path(exp_dir)
    system = SystemDir(exp_dir)
    conf = system.config
    if not conf.is_file():
        raise SpkidError(f"{conf} not found: {exp_dir.name} has not been trained (stage 3)")
    model, loss, train, evaluation = read_resolved(conf, SYSTEM_OPTIONS)
    notes = [f"final.pt averages the last {train.average_last} epochs"] if train.average_last else []
    init = system.initialised_from()
    if init is not None:
        notes.insert(0, f"trained from {init} (--init-from)")
    if evaluation.score_type != "cosine" or backend.needs_training_set(evaluation):
        notes.append(f"back-end {backend.describe(evaluation, lda_dim=fitted_lda_dim(exp_dir))}"
                     + (f" (its figures on {evaluation.qmf_trials.split('/')[-1]} are tuned there)" if evaluation.qmf else ""))
    return Row(exp_dir.name, format_params(trunk_params(model)), LOSSES[loss.loss].label,
               "yes" if train.augment else "no", "yes" if model.embed_bn else "no", note="; ".join(notes))


def floor_row(score_dir: Path) -> Row:
    """The row of a reference scorer that is not a trained system (the MFCC baseline): its name
    from ``<score_dir>/description``."""
    desc = score_dir / "description"
    if not desc.is_file():
        raise SpkidError(f"{desc} not found: --floor takes a directory written by "
                         f"local/mfcc_baseline.py --scores-dir {score_dir}")
    return Row(desc.read_text().strip() or score_dir.name)


def render(rows: Sequence[Row], lists: Sequence[TrialList], p_target: float, eer_method: str,
           det_links: dict[str, str], tune_list: str = "", max_weight: int = 3, corpus: str = "voxceleb") -> str:
    """The markdown of RESULTS.md; ``corpus="voxceleb"`` adds the paper's rows (:func:`with_paper_rows`)."""
    lines = ["# Results", "",
             f"EER in %, {metrics.EER_DESCRIPTIONS[eer_method]} (--eer-method={eer_method}). "
             f"MinDCF with P_target = {p_target:g}, C_miss = C_fa = 1 (the paper's 0.05; other toolkits "
             f"often print 0.01).", ""]
    if tune_list:
        lines += [f"F1 / F2: score fusion sum_i w_i s_i / sum_i w_i, w_i in 0..{max_weight}, every combination "
                  f"searched for the best EER (F1) or MinDCF (F2) on {tune_list}; the weights are listed "
                  f"below the table. Their figures on {tune_list} itself are tuned, not held out.", ""]
    shown = with_paper_rows(rows, lists) if corpus == "voxceleb" else list(rows)
    if len(shown) > len(rows):
        lines += ["Rows \"<name> (paper)\": the paper's Table 2, for comparison (its F1 weights "
                  + " + ".join(f"{w}*{s}" for s, w in paper.F1_WEIGHTS.items())
                  + "; a fusion here fuses the systems of this table). "
                  + ("The paper's figures use the same EER definition and P_target."
                     if (eer_method, p_target) == ("roc", 0.05) else
                     "The paper's figures use --eer-method=roc and P_target = 0.05, not this table's: "
                     "compare with care."), ""]
    head = ["Config", "#Params", "Loss", "Aug.", "BN"]
    for t in lists:
        title = LIST_TITLES.get(t.name, t.name)
        if corpus == "mini":
            title = f"{title}-like (mini)"
        head += [f"{title} EER", f"{title} MinDCF(p={p_target:g})"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] * 5 + ["---:"] * (2 * len(lists))) + "|")
    for r in shown:
        cells = [r.name, r.params, r.loss, r.aug, r.bn]
        for t in lists:
            m = r.results.get(t.name)
            cells += [f"{100 * m.eer:.2f}", f"{m.min_dcf:.3f}"] if m else ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {r.name}: {r.note}" for r in rows if r.note]
    if notes:
        lines += [""] + notes
    digests = [f"- {r.name}: " + "; ".join(f"{f} {d[:SHORT]}" for f, d in r.digests.items()) for r in rows if r.digests]
    if digests:
        lines += ["", f"Files each row was computed from, with the first {SHORT} hex digits of their sha256 "
                  f"(`sha256sum FILE`):", ""] + digests
    if det_links:
        lines += ["", "DET curves (every row; dots mark the EER):", ""]
        lines += [f"- {name}: ![{name}]({link})" for name, link in det_links.items()]
    return "\n".join(lines) + "\n"


@dataclass
class RowSource:
    """Where a row's score files are, and how they were made (so that they are checked before use)."""

    row: Row
    root: Path
    stage: int  # 5: a system (exp/<SYS>/scores/<set>/provenance.json); 6: a fusion or the floor (one record)
    redo: str   # what makes the score files again, with SET for the set's name

    def scores(self, t: TrialList) -> tuple[Path, Record, str] | None:
        """The row's score file of ``t``, the record of the stage that made it and the file's name
        there, checked against that record (a SpkidError naming the stale or missing file and the
        stage to re-run); None when the row has no scores of ``t``."""
        path = SystemDir(self.root).score_file(t.set, t.name)
        folder = path.parent if self.stage == 5 else self.root
        name = os.path.relpath(path, folder)
        record = Record.load(folder)
        if not path.is_file() and (record is None or name not in record.outputs):
            return None
        return path, check_current(folder, self.stage, self.redo.replace("SET", t.set), [name]), name


def row_sources(data: Path, exp: Path, fusion_opts: FusionOptions, report_opts: ReportOptions, systems: list[str]) -> list[RowSource]:
    """The table's rows in order: the floor, the systems, then the fusions of exactly these
    systems (a fusion of others is refused: its weights would be reported under this table)."""
    rows = [RowSource(system_row(exp / s), exp / s, 5, f"steps/score.sh {exp / s} {data}/SET") for s in systems]
    if report_opts.floor:
        rows.insert(0, RowSource(floor_row(Path(report_opts.floor)), Path(report_opts.floor), 6,
                                 f"local/mfcc_baseline.py --data {data} --scores-dir {report_opts.floor}"))
    redo = f"steps/fuse.py --config conf/fusion.conf --systems \"{' '.join(systems)}\" {data} {exp}"
    for name in report_opts.fusions.split():
        fdir = fusion_dir(exp, name).root
        if not (fdir / "weights").is_file():
            continue
        fused_from = check_current(fdir, 6, redo).options.get("--systems")
        if fused_from != " ".join(systems):
            raise SpkidError(f"{fdir} fuses {fused_from}, not this table's systems {' '.join(systems)}: fuse "
                             f"these first (stage 6: {redo})")
        weights = read_table(fdir / "weights")
        what = "EER" if name == "F1" else "MinDCF" if name == "F2" else "objective"
        note = f"best {what} fusion on {fusion_opts.tune_list}: " + " + ".join(f"{w}*{s}" for s, w in weights.items() if w != "0")
        rows.append(RowSource(Row(name, note=note), fdir, 6, redo))
    return rows


def final_fingerprints(rows: list[RowSource], folder: Path) -> dict[str, dict]:
    """Each system row's final.pt, hashed once: its digest goes into the row and the table's record."""
    finals = {}
    for r in rows:
        if r.stage == 5:
            finals[f"{r.row.name}:final.pt"] = entry = fingerprint(SystemDir(r.root).final, folder)
            r.row.digests["final.pt"] = entry["sha256"]
    return finals


def write_table_record(out: Path, files: dict[str, tuple[Record, str]], finals: dict[str, dict], redo: str) -> None:
    """provenance.json beside the table: every score file (its record, its name there) and
    final.pt its figures came from."""
    folder = out.parent
    checked = {role: record.input_entry(name, folder) for role, (record, name) in files.items()}
    Record.made_from(folder, 6, redo, {}, checked={**checked, **finals}).write([out])


def write_results_table(data: Path, exp: Path, fusion_opts: FusionOptions, report_opts: ReportOptions) -> int:
    """Stage 6b: the table of ``report_opts.systems`` and the fusions of ``exp`` on every trial list under
    ``data`` (figures recomputed from the score files with ``fusion_opts``'s EER method and P_target, each
    checked against the record of the stage that wrote it), a DET plot per list, and the table's
    own provenance record."""
    # matplotlib only here: steps/fuse.py imports this module for its options and lists
    from spkid.eval.det import DetCurve, plot_det

    systems = report_opts.systems.split()
    if not systems:
        raise SpkidError("--systems is empty: name the systems of the table")
    rows = row_sources(data, exp, fusion_opts, report_opts, systems)
    shown, det_links, used = [], {}, {}
    out = Path(report_opts.out) if report_opts.out else exp / "RESULTS.md"
    finals = final_fingerprints(rows, out.parent)
    for t in find_trial_lists(data):
        trials = read_trials(t.path)
        curves = []
        for source in rows:
            found = source.scores(t)
            if found is None:
                continue
            path, record, name = found
            used[f"{source.row.name}:{t.set}/{t.name}.score"] = (record, name)
            source.row.digests[f"{t.name}.score"] = record.outputs[name]["sha256"]
            s = scores_for_trials(path, trials, str(t.path))
            m = metrics.compute_metrics(s, trials.labels, fusion_opts.p_target, fusion_opts.c_miss, fusion_opts.c_fa, fusion_opts.eer_method, str(t.path))
            curves.append(DetCurve.from_metrics(source.row.name, m))
            source.row.results[t.name] = replace(m, rates=None)  # the table keeps the figures, not every point
        if curves:
            shown.append(t)
            png = exp / "results_det" / f"{t.name}.png"
            plot_det(curves, png, f"{t.name} ({len(trials)} trials)", fusion_opts.eer_method)
            det_links[t.name] = str(png.relative_to(out.parent)) if png.is_relative_to(out.parent) else str(png)
    if not shown:
        raise SpkidError(f"no scores of any trial list under {data}/*/trials for {', '.join(systems)}: run stage 5 first")
    tune_path = data / fusion_opts.tune_set / "trials" / fusion_opts.tune_list
    tuned = tune_path.is_file()
    text = render([r.row for r in rows], shown, fusion_opts.p_target, fusion_opts.eer_method, det_links,
                  f"{fusion_opts.tune_set}/{fusion_opts.tune_list}" if tuned else "", fusion_opts.max_weight, report_opts.corpus)
    if not tuned:
        text += f"\nNo fusion (F1, F2): {no_tuning_list(tune_path)}.\n"
    with atomic_write(out) as f:
        f.write(text)
    write_table_record(out, used, finals, f"steps/make_results_table.py --systems \"{' '.join(systems)}\" {data} {exp}")
    print(f"make_results_table.py: {len(rows)} row(s) x {len(shown)} trial list(s) -> {out}")
    return 0
