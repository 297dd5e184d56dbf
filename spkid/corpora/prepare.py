"""Stage 2: Kaldi data directories from a corpus in the layout docs/voxceleb.md shows.

The same code prepares the generated mini corpus and real VoxCeleb/MUSAN/RIRS_NOISES: it
knows only the layout. :data:`TRIAL_LISTS` is the one table of which list file is read
against which wav root into which data directory under which trial name.

Durations come from the audio headers (no decoding). The MUSAN and RIR dirs also get their
packed 16-bit bank (:func:`spkid.data.augment.pack_audio`), which makes a noise clip a slice of one
file and loading the RIRs one read. Every data directory is written into a
temporary directory, validated by Kaldi's rules (:func:`spkid.data.validate.validate_data_dir`), then swapped in,
so a re-run replaces complete directories and an interrupted one leaves the old ones intact.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from spkid.data.audio import audio_infos
from spkid.data.augment import pack_audio
from spkid.config import option
from spkid.data.datadir import Trials, read_trials, utt2spk_to_spk2utt, utt_id_from_path, write_table, write_trials
from spkid.data.validate import validate_data_dir
from spkid.corpora.sets import TRIAL_LISTS, SetSummary, TrialListSpec, compare_known
from spkid.corpora.voxsrc import voxsrc_trials
from spkid.errors import SpkidError
from spkid.fileio import atomic_dir
from spkid.options import SAMPLE_RATE

MINI_MARKER = "SUBSTITUTE_CORPUS.txt"   # written by local/make_mini_corpus.py


TRAIN_LIST = "train_list.txt"
TRAIN_ROOT = "voxceleb2/wav"
TEST_ROOT = "voxceleb1/wav"
MUSAN_KINDS = ("noise", "music", "speech")
RIR_TYPES = ("smallroom", "mediumroom")
MUSAN_WINDOW, MUSAN_HOP = 5.0, 3.0
FIX_MINI = "./run.sh --corpus mini --stage 1 --stop-stage 1"
FIX_VOX = "./run.sh --corpus voxceleb --stage 1 --stop-stage 1"


class PrepareError(SpkidError):
    pass


@dataclass
class PrepareOptions:
    corpus_dir: str = option("", "corpus directory written by stage 1 (required)")
    data: str = option("data", "where the data directories go")
    nj: int = option(8, "threads reading audio headers", min=1)
    quiet: bool = option(False, "no progress bars")


def scan_wavs(root: Path) -> dict[str, str]:
    """utt id (path below ``root`` without .wav) -> file path, for every .wav under ``root``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):  # linked speaker dirs count
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for name in filenames:
            if name.endswith(".wav") and not name.startswith("."):
                r = name if rel == "." else f"{rel}/{name}"
                out[utt_id_from_path(r)] = os.path.join(dirpath, name)
    return out


def durations(wav_scp: dict[str, str], nj: int, desc: str, quiet: bool) -> dict[str, float]:
    """Seconds per utterance from the file headers; a file that is not 16 kHz mono is an error."""
    infos, errors = audio_infos(wav_scp, nj, desc, quiet)
    if errors:
        raise PrepareError(str(next(iter(errors.values()))))
    bad = [u for u, i in infos.items() if not i.is_16k_mono]
    if bad:
        u = bad[0]
        raise PrepareError(f"{len(bad)} file(s) are not {SAMPLE_RATE} Hz mono, e.g. utterance '{u}' "
                           f"({wav_scp[u]}: {infos[u].sample_rate} Hz, {infos[u].channels} channel(s)); convert them: "
                           f"ffmpeg -i IN -ac 1 -ar {SAMPLE_RATE} -c:a pcm_s16le OUT.wav")
    return {u: i.frames / i.sample_rate for u, i in infos.items()}


def write_data_dir(path: Path, wav_scp: dict[str, str], utt2spk: dict[str, str], utt2dur: dict[str, float],
                   trials: dict[str, Trials] | None = None, segments: dict[str, str] | None = None,
                   reco2dur: dict[str, float] | None = None) -> None:
    """Write a data dir into a temporary sibling, validate it, then swap it in for ``path``.

    With ``segments``, wav.scp is keyed by recording and utt2spk/utt2dur by segment, as Kaldi
    has it; ``reco2dur`` then gives the recordings' durations."""
    with atomic_dir(path) as tmp:
        write_table(tmp / "wav.scp", wav_scp)
        write_table(tmp / "utt2spk", utt2spk)
        write_table(tmp / "spk2utt", utt2spk_to_spk2utt(utt2spk))
        write_table(tmp / "utt2dur", {u: f"{d:.3f}" for u, d in utt2dur.items()})
        if segments is not None:
            write_table(tmp / "segments", segments)
        if reco2dur is not None:
            write_table(tmp / "reco2dur", {r: f"{d:.3f}" for r, d in reco2dur.items()})
        for name, t in (trials or {}).items():
            write_trials(tmp / "trials" / name, t)
        problems = validate_data_dir(tmp, check_audio=False)
        if problems:
            raise PrepareError(f"{path}: the prepared data directory is invalid:\n  " + "\n  ".join(problems))


class Absent(Exception):
    """A set whose audio (or list) is not in the corpus: skipped, with the reason and the fix."""


def _require_dir(path: Path, what: str, fix: str) -> None:
    if not path.is_dir():
        raise Absent(f"{path} not found: {what}; obtain it first ({fix})")


def _speaker_utt2spk(utts) -> dict[str, str]:
    return {u: u.split("/", 1)[0] for u in utts}


def read_train_list(path: Path, root: Path) -> dict[str, str]:
    """VoxCeleb-trainer list ``<spk> <spk>/<session>/<n>.wav`` -> utt -> file path."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1].split("/", 1)[0] != parts[0]:
                raise PrepareError(f"{path}:{lineno}: expected '<spk> <spk>/<session>/<n>.wav', got '{line.strip()}'")
            out[utt_id_from_path(parts[1])] = str(root / parts[1])
    return out


def _check_trials(t: Trials, listfile: Path, wav_scp: dict[str, str], root: Path) -> None:
    missing = [(i, u) for i, (e, s) in enumerate(zip(t.enroll, t.test), 1) for u in (e, s) if u not in wav_scp]
    if missing:
        i, u = missing[0]
        raise PrepareError(f"{listfile}:{i}: utterance '{u}' has no audio under {root} "
                           f"({len(missing)} trial sides missing in all); the corpus is incomplete: "
                           f"re-run stage 1, or fetch the missing files")
    for name, labels in (("target", 1), ("non-target", 0)):
        if not (t.labels == labels).any():
            raise PrepareError(f"{listfile}: no {name} trials; a trial list needs both")


@dataclass
class _Run:
    """One stage-2 run: where the corpus and the data dirs are, and what it noted on the way."""
    corpus: Path
    data: Path
    opts: PrepareOptions
    fix: str
    notes: list[str]

    @property
    def lists(self) -> Path:
        return self.corpus / "lists"

    def durations(self, scp: dict[str, str], name: str) -> dict[str, float]:
        return durations(scp, self.opts.nj, f"utt2dur {name}", self.opts.quiet)


# what each kind of set is for, said when it is skipped
USED_BY = {"vox2_dev": "stage 3 trains on it", "musan": "stage 3 augments with it",
           "rirs": "stage 3 augments with it", "eval": "stages 4-6 score it"}


def prepare(opts: PrepareOptions) -> list[SetSummary]:
    """Write every data dir whose audio the corpus holds; say, one line each, which sets it skipped
    and why. Fails only when neither training nor evaluation audio is there."""
    if not opts.corpus_dir:
        raise PrepareError("--corpus-dir DIR is required (the directory stage 1 wrote)")
    corpus = Path(os.path.abspath(opts.corpus_dir))
    if not corpus.is_dir():
        raise PrepareError(f"corpus directory {corpus} not found: run stage 1 first ({FIX_MINI}, or {FIX_VOX})")
    fix = FIX_MINI if (corpus / MINI_MARKER).is_file() else FIX_VOX
    run = _Run(corpus, Path(opts.data), opts, fix, [])
    run.data.mkdir(parents=True, exist_ok=True)
    steps = [("vox2_dev", USED_BY["vox2_dev"], _prepare_training)]
    steps += [(name, USED_BY["eval"], functools.partial(_prepare_evaluation_set, name=name, specs=specs))
              for name, specs in _lists_by_dir().items()]
    steps += [(f"musan_{kind}", USED_BY["musan"], functools.partial(_prepare_musan, kind=kind)) for kind in MUSAN_KINDS]
    steps += [("rirs", USED_BY["rirs"], _prepare_rirs)]
    summaries, skipped = [], []
    for name, used_by, step in steps:
        try:
            summaries += step(run)
        except Absent as why:
            skipped.append(f"skipped {name} ({used_by}): {why}")
    for note in run.notes:
        print(f"note: {note}")
    for line in skipped:
        print(line)
    if not any(s.name == "vox2_dev" or s.trials for s in summaries):
        raise PrepareError(f"{corpus} holds neither training nor evaluation audio with its trial lists:\n  "
                           + "\n  ".join(skipped))
    if fix == FIX_VOX:
        for w in compare_known(summaries):
            print(f"warning: {w}")
    return summaries


def _prepare_training(run: _Run) -> list[SetSummary]:
    root, lists = run.corpus / TRAIN_ROOT, run.lists
    _require_dir(root, "the training speakers (VoxCeleb2 dev audio)", run.fix)
    if (lists / TRAIN_LIST).is_file():
        scp = read_train_list(lists / TRAIN_LIST, root)
    else:
        run.notes.append(f"{lists / TRAIN_LIST} not found: vox2_dev holds every .wav under {root}")
        scp = scan_wavs(root)
    if not scp:
        raise Absent(f"{root}: no .wav files; re-run stage 1 ({run.fix})")
    absent = [u for u, p in scp.items() if not os.path.isfile(p)]
    if absent:
        raise PrepareError(f"{lists / TRAIN_LIST}: {len(absent)} listed files are missing, e.g. {scp[absent[0]]}; "
                           f"re-run stage 1 ({run.fix})")
    u2s = _speaker_utt2spk(scp)
    write_data_dir(run.data / "vox2_dev", scp, u2s, run.durations(scp, "vox2_dev"))
    return [SetSummary("vox2_dev", len(scp), len(set(u2s.values())), {})]


def _lists_by_dir() -> dict[str, list[TrialListSpec]]:
    by_dir: dict[str, list[TrialListSpec]] = {}
    for spec in TRIAL_LISTS:
        by_dir.setdefault(spec.data_dir, []).append(spec)
    return by_dir


def _present_lists(run: _Run, specs: list[TrialListSpec]) -> list[TrialListSpec]:
    """The set's lists that are in lists/ (a missing optional one noted); none: the set is absent."""
    present = [s for s in specs if (run.lists / s.list_file).is_file()]
    if not present:
        names = ", ".join(s.list_file for s in specs)
        raise Absent(f"none of its trial lists ({names}) is in {run.lists}; obtain them first ({run.fix})")
    for s in specs:
        if s not in present:
            run.notes.append(f"{run.lists / s.list_file} not found: skipping {s.trial_name}")
    return present


def _prepare_evaluation_set(run: _Run, name: str, specs: list[TrialListSpec]) -> list[SetSummary]:
    """One data dir per wav root, holding its trial lists (and data/vox1_test beside data/vox1)."""
    present = _present_lists(run, specs)
    root = run.corpus / specs[0].wav_root
    _require_dir(root, f"the audio of {', '.join(s.list_file for s in present)}", run.fix)
    read = _challenge_lists if specs[0].challenge else _voxceleb_lists
    scp, u2s, trials = read(run, name, present, root)
    d = run.durations(scp, name)
    write_data_dir(run.data / name, scp, u2s, d, trials)
    out = [SetSummary(name, len(scp), len(set(u2s.values())), {n: len(t) for n, t in trials.items()})]
    if name == "vox1" and "vox1_O" in trials:
        o = trials["vox1_O"].utterances
        sub = {u: scp[u] for u in o}
        write_data_dir(run.data / "vox1_test", sub, _speaker_utt2spk(sub), {u: d[u] for u in o})
        out.append(SetSummary("vox1_test", len(sub), len(set(_speaker_utt2spk(sub).values())), {}))
    return out


def _challenge_lists(run: _Run, name: str, present: list[TrialListSpec], root: Path):
    scp, u2s, trials = {}, {}, {}
    for s in present:
        t, list_scp, list_u2s = voxsrc_trials(run.lists / s.list_file, root)
        absent = sorted(p for p in list_scp.values() if not os.path.isfile(p))
        if absent:
            option = s.trial_name.split("_")[0]
            raise PrepareError(f"{run.lists / s.list_file}: {len(absent)} listed files have no audio, e.g. "
                               f"{absent[0]}; re-run stage 1 with --{option}-list and --{option}-audio ({run.fix})")
        _check_trials(t, run.lists / s.list_file, list_scp, root)
        trials[s.trial_name] = t
        scp.update(list_scp)
        u2s.update(list_u2s)
    return scp, u2s, trials


def _voxceleb_lists(run: _Run, name: str, present: list[TrialListSpec], root: Path):
    all_wavs = scan_wavs(root)
    trials = {}
    for s in present:
        t = read_trials(run.lists / s.list_file)
        _check_trials(t, run.lists / s.list_file, all_wavs, root)
        trials[s.trial_name] = t
    # VoxCeleb1 keeps all its utterances (E and H draw on dev and test); other sets keep the
    # utterances their lists use.
    keep = set(all_wavs) if name == "vox1" else set().union(*(t.utterances for t in trials.values()))
    scp = {u: all_wavs[u] for u in keep}
    return scp, _speaker_utt2spk(scp), trials


def _prepare_musan(run: _Run, kind: str) -> list[SetSummary]:
    """Kaldi's way: each 5-s window is an utterance (its own speaker), wav.scp holds the recordings."""
    root = run.corpus / "musan" / kind
    _require_dir(root, f"MUSAN {kind} (augmentation)", run.fix)
    scp = scan_wavs(root)
    if not scp:
        raise Absent(f"{root}: no .wav files; re-run stage 1 ({run.fix})")
    d = run.durations(scp, f"musan_{kind}")
    segments = musan_segments(d)
    windows = {w: float(end) - float(start) for w, (_rec, start, end) in
               ((w, s.split()) for w, s in segments.items())}
    kept = {s.split()[0] for s in segments.values()}
    if len(kept) < len(scp):
        run.notes.append(f"{root}: {len(scp) - len(kept)} clip(s) shorter than 5 ms left out of musan_{kind}")
        scp, d = {r: scp[r] for r in kept}, {r: d[r] for r in kept}
    out = run.data / f"musan_{kind}"
    write_data_dir(out, scp, {w: w for w in windows}, windows, segments=segments, reco2dur=d)
    pack_audio(out, quiet=run.opts.quiet)
    return [SetSummary(f"musan_{kind}", len(windows), len(windows), {})]


def _prepare_rirs(run: _Run) -> list[SetSummary]:
    scp = {}
    for room_type in RIR_TYPES:
        root = run.corpus / "RIRS_NOISES" / "simulated_rirs" / room_type
        _require_dir(root, f"RIRS_NOISES simulated {room_type} impulse responses (augmentation)", run.fix)
        scp.update({f"{room_type}/{u}": p for u, p in scan_wavs(root).items()})
    write_data_dir(run.data / "rirs", scp, _speaker_utt2spk(scp), run.durations(scp, "rirs"))
    pack_audio(run.data / "rirs", quiet=run.opts.quiet)
    return [SetSummary("rirs", len(scp), len(RIR_TYPES), {})]


# The data dirs training reads, and the corpus folder stage 2 makes each from.
TRAINING_SETS = {"vox2_dev": (TRAIN_ROOT, "VoxCeleb2 dev, the training speakers (--vox2-dir DIR, or a download)")}
AUGMENTATION_SETS = {**{f"musan_{k}": (f"musan/{k}", f"MUSAN {k} (--musan-dir DIR, or a download)") for k in MUSAN_KINDS},
                     "rirs": ("RIRS_NOISES/simulated_rirs", "RIRS_NOISES simulated rooms (--rirs-dir DIR, or a download)")}


def missing_training_data(data: Path, corpus: Path, augment: bool, stage2_runs: bool) -> list[str]:
    """The data dirs a system's training needs (its training set; MUSAN and the RIRs when it
    augments) that are not in ``data`` nor, when stage 2 is about to run, in ``corpus``: one
    description each, naming how to obtain it."""
    wanted = {**TRAINING_SETS, **(AUGMENTATION_SETS if augment else {})}
    out = []
    for name, (folder, what) in wanted.items():
        if (data / name / "wav.scp").is_file() or (stage2_runs and (corpus / folder).is_dir()):
            continue
        out.append(f"{data / name} ({what})")
    return out


def musan_segments(utt2dur: dict[str, float]) -> dict[str, str]:
    """5-s windows with a 3-s hop over each clip (VoxCeleb_trainer pre-splits MUSAN so);
    a clip shorter than a window is one segment."""
    out = {}
    for utt, dur in utt2dur.items():
        starts = [0.0] if dur <= MUSAN_WINDOW else \
            [k * MUSAN_HOP for k in range(int((dur - MUSAN_WINDOW) // MUSAN_HOP) + 1)]
        for st in starts:
            end = f"{min(dur, st + MUSAN_WINDOW):.2f}"
            if float(end) > st:  # a clip under 5 ms rounds to an empty window, which Kaldi refuses
                out[f"{utt}-{int(round(st * 100)):07d}"] = f"{utt} {st:.2f} {end}"
    return out
