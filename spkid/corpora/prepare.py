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

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from spkid.data.audio import audio_infos
from spkid.data.augment import pack_audio
from spkid.config import option
from spkid.data.datadir import Trials, read_trials, utt2spk_to_spk2utt, utt_id_from_path, write_table, write_trials
from spkid.data.validate import validate_data_dir
from spkid.corpora.voxsrc import voxsrc_trials
from spkid.errors import SpkidError
from spkid.options import SAMPLE_RATE

MINI_MARKER = "SUBSTITUTE_CORPUS.txt"   # written by local/make_mini_corpus.py


@dataclass(frozen=True)
class TrialListSpec:
    list_file: str          # under <corpus>/lists/
    wav_root: str           # under <corpus>/, the list's paths are relative to it
    data_dir: str           # under <data>/
    trial_name: str         # <data>/<data_dir>/trials/<trial_name>
    required: bool
    known_trials: int | None = None   # real VoxCeleb (cleaned lists); None: not checked
    challenge: bool = False           # a VoxSRC list: paths and ids as spkid.corpora.voxsrc reads them


# list file -> wav root -> data dir -> trial name.
TRIAL_LISTS = (
    TrialListSpec("veri_test2.txt", "voxceleb1/wav", "vox1", "vox1_O", True, 37_611),
    TrialListSpec("list_test_all2.txt", "voxceleb1/wav", "vox1", "vox1_E", False, 579_818),
    TrialListSpec("list_test_hard2.txt", "voxceleb1/wav", "vox1", "vox1_H", False, 550_894),
    TrialListSpec("voxsrc2019_test.txt", "voxsrc2019/wav", "voxsrc19_test", "voxsrc19_test", False, challenge=True),
    TrialListSpec("voxsrc2020_val.txt", "voxsrc2020_val/wav", "voxsrc20_val", "voxsrc20_val", False, challenge=True),
)
TRAIN_LIST = "train_list.txt"
TRAIN_ROOT = "voxceleb2/wav"
TEST_ROOT = "voxceleb1/wav"
# Real VoxCeleb sizes: (speakers, utterances) per data dir.
KNOWN_SIZES = {"vox2_dev": (5_994, 1_092_009), "vox1": (1_251, 153_516)}
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


@dataclass
class SetSummary:
    name: str
    utterances: int
    speakers: int
    trials: dict[str, int]


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
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
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
        shutil.rmtree(tmp, ignore_errors=True)
        raise PrepareError(f"{path}: the prepared data directory is invalid:\n  " + "\n  ".join(problems))
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def _require_dir(path: Path, what: str, fix: str) -> None:
    if not path.is_dir():
        raise PrepareError(f"{path} not found: {what}. Obtain the corpus first ({fix})")


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


def prepare(opts: PrepareOptions) -> list[SetSummary]:
    """Write every data dir the corpus supports; returns per-set counts."""
    corpus = Path(os.path.abspath(opts.corpus_dir)) if opts.corpus_dir else None
    if corpus is None:
        raise PrepareError("--corpus-dir DIR is required (the directory stage 1 wrote)")
    if not corpus.is_dir():
        raise PrepareError(f"corpus directory {corpus} not found: run stage 1 first ({FIX_MINI}, or {FIX_VOX})")
    mini = (corpus / MINI_MARKER).is_file()
    fix = FIX_MINI if mini else FIX_VOX
    data = Path(opts.data)
    data.mkdir(parents=True, exist_ok=True)
    lists = corpus / "lists"
    summaries: list[SetSummary] = []
    notes: list[str] = []

    def dur(scp: dict[str, str], name: str) -> dict[str, float]:
        return durations(scp, opts.nj, f"utt2dur {name}", opts.quiet)

    # Training set.
    root = corpus / TRAIN_ROOT
    _require_dir(root, "the training speakers (VoxCeleb2 dev audio)", fix)
    if (lists / TRAIN_LIST).is_file():
        scp = read_train_list(lists / TRAIN_LIST, root)
    else:
        notes.append(f"{lists / TRAIN_LIST} not found: vox2_dev holds every .wav under {root}")
        scp = scan_wavs(root)
    if not scp:
        raise PrepareError(f"{root}: no .wav files; re-run stage 1 ({fix})")
    absent = [u for u, p in scp.items() if not os.path.isfile(p)]
    if absent:
        raise PrepareError(f"{lists / TRAIN_LIST}: {len(absent)} listed files are missing, e.g. {scp[absent[0]]}; "
                           f"re-run stage 1 ({fix})")
    u2s = _speaker_utt2spk(scp)
    write_data_dir(data / "vox2_dev", scp, u2s, dur(scp, "vox2_dev"))
    summaries.append(SetSummary("vox2_dev", len(scp), len(set(u2s.values())), {}))

    # Evaluation sets: one data dir per wav root, holding its trial lists.
    _require_dir(corpus / TEST_ROOT, "the evaluation speakers (VoxCeleb1 audio)", fix)
    by_dir: dict[str, list[TrialListSpec]] = {}
    for spec in TRIAL_LISTS:
        by_dir.setdefault(spec.data_dir, []).append(spec)
    for set_name, specs in by_dir.items():
        root = corpus / specs[0].wav_root
        present = [s for s in specs if (lists / s.list_file).is_file()]
        for s in specs:
            if s not in present:
                if s.required:
                    raise PrepareError(f"{lists / s.list_file} not found: the {s.trial_name} trial list is required; "
                                       f"re-run stage 1 ({fix})")
                notes.append(f"{lists / s.list_file} not found: skipping {s.trial_name}")
        if not present:
            continue
        _require_dir(root, f"audio for {', '.join(s.list_file for s in present)}", fix)
        trials = {}
        if specs[0].challenge:
            scp, u2s = {}, {}
            for s in present:
                t, list_scp, list_u2s = voxsrc_trials(lists / s.list_file, root)
                absent = sorted(p for p in list_scp.values() if not os.path.isfile(p))
                if absent:
                    raise PrepareError(f"{lists / s.list_file}: {len(absent)} listed files have no audio, e.g. "
                                       f"{absent[0]}; re-run stage 1 with --{s.trial_name.split('_')[0]}-list and --{s.trial_name.split('_')[0]}-audio ({fix})")
                _check_trials(t, lists / s.list_file, list_scp, root)
                trials[s.trial_name] = t
                scp.update(list_scp)
                u2s.update(list_u2s)
        else:
            all_wavs = scan_wavs(root)
            for s in present:
                t = read_trials(lists / s.list_file)
                _check_trials(t, lists / s.list_file, all_wavs, root)
                trials[s.trial_name] = t
            # VoxCeleb1 keeps all its utterances (E and H draw on dev and test); other sets keep the
            # utterances their lists use.
            keep = set(all_wavs) if set_name == "vox1" else set().union(*(t.utterances for t in trials.values()))
            scp = {u: all_wavs[u] for u in keep}
            u2s = _speaker_utt2spk(scp)
        d = dur(scp, set_name)
        write_data_dir(data / set_name, scp, u2s, d, trials)
        summaries.append(SetSummary(set_name, len(scp), len(set(u2s.values())),
                                    {n: len(t) for n, t in trials.items()}))
        if set_name == "vox1" and "vox1_O" in trials:
            o = trials["vox1_O"].utterances
            sub = {u: scp[u] for u in o}
            write_data_dir(data / "vox1_test", sub, _speaker_utt2spk(sub), {u: d[u] for u in o})
            summaries.append(SetSummary("vox1_test", len(sub), len(set(_speaker_utt2spk(sub).values())), {}))

    # Augmentation sets.
    for kind in MUSAN_KINDS:
        root = corpus / "musan" / kind
        _require_dir(root, f"MUSAN {kind} (augmentation)", fix)
        scp = scan_wavs(root)
        if not scp:
            raise PrepareError(f"{root}: no .wav files; re-run stage 1 ({fix})")
        d = dur(scp, f"musan_{kind}")
        segments = musan_segments(d)
        # Kaldi's way: each window is an utterance (its own speaker), wav.scp holds the recordings
        windows = {w: float(end) - float(start) for w, (_rec, start, end) in
                   ((w, s.split()) for w, s in segments.items())}
        kept = {s.split()[0] for s in segments.values()}
        if len(kept) < len(scp):
            notes.append(f"{root}: {len(scp) - len(kept)} clip(s) shorter than 5 ms left out of musan_{kind}")
            scp, d = {r: scp[r] for r in kept}, {r: d[r] for r in kept}
        write_data_dir(data / f"musan_{kind}", scp, {w: w for w in windows}, windows, segments=segments, reco2dur=d)
        pack_audio(data / f"musan_{kind}", quiet=opts.quiet)
        summaries.append(SetSummary(f"musan_{kind}", len(windows), len(windows), {}))
    scp = {}
    for room_type in RIR_TYPES:
        root = corpus / "RIRS_NOISES" / "simulated_rirs" / room_type
        _require_dir(root, f"RIRS_NOISES simulated {room_type} impulse responses", fix)
        scp.update({f"{room_type}/{u}": p for u, p in scan_wavs(root).items()})
    write_data_dir(data / "rirs", scp, _speaker_utt2spk(scp), dur(scp, "rirs"))
    pack_audio(data / "rirs", quiet=opts.quiet)
    summaries.append(SetSummary("rirs", len(scp), len(RIR_TYPES), {}))

    for note in notes:
        print(f"note: {note}")
    if not mini:
        for w in compare_known(summaries):
            print(f"warning: {w}")
    return summaries


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


def compare_known(summaries: list[SetSummary]) -> list[str]:
    """Differences from the published VoxCeleb sizes (a partial download shows here)."""
    out = []
    by_name = {s.name: s for s in summaries}
    for name, (spk, utt) in KNOWN_SIZES.items():
        s = by_name.get(name)
        if s and (s.speakers, s.utterances) != (spk, utt):
            out.append(f"{name}: {s.speakers} speakers, {s.utterances} utterances; VoxCeleb has {spk:,} and {utt:,}")
    for spec in TRIAL_LISTS:
        s = by_name.get(spec.data_dir)
        n = s.trials.get(spec.trial_name) if s else None
        if spec.known_trials and n is not None and n != spec.known_trials:
            out.append(f"{spec.trial_name} ({spec.list_file}): {n} trials; the cleaned list has {spec.known_trials:,}")
    return out


def format_summary(summaries: list[SetSummary]) -> str:
    lines = [f"{'set':<16}{'utts':>10}{'spks':>8}  trials"]
    for s in summaries:
        trials = ", ".join(f"{k} {v}" for k, v in s.trials.items())
        lines.append(f"{s.name:<16}{s.utterances:>10}{s.speakers:>8}  {trials}")
    return "\n".join(lines)
