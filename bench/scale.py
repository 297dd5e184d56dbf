#!/usr/bin/env python3
"""Host-side costs of stages 2, 4, 5 and 6 at VoxCeleb scale, each against a baseline in the same run.

    python bench/scale.py --work /tmp/spkid_scale [--parts embeddings,...] [--keep]

Synthetic inputs of the real sizes are written under --work (removed at the end unless --keep):

- ``embeddings``: stage 5 loading the embeddings of all 153,516 VoxCeleb1 utterances (ten crops
  x 512 dims, a 3.1 GB ark) to score Vox1-O/E/H: :func:`spkid.eval.scoring.read_embeddings` against
  the straightforward load (each utterance's matrix opened on its own, the crops dropped as
  ``x[:0]``), time and peak memory, each in its own process.

- ``arkchecks``: what :mod:`spkid.data.arks`'s checks cost on the same ark: stage 4's "already
  done" check of every record's structure against reading the scp's utterance list alone, and
  stage 5's value checks (finite, no zero crop, bounded) against the same load without them.
- ``provenance``: stage 5's check of that ark against stage 4's record (spkid.expdir): the
  load above, a full sha256 of the ark (MB/s) and the check as stage 5 makes it, each as a
  share of the load.

- ``headers``: stage 2's utt2dur of VoxCeleb2 dev (1,092,009 files): ``--files`` small 16-bit
  wav files (page cache warm, so this is the per-file CPU cost, not the disk's),
  :func:`spkid.data.audio.audio_infos` against the same with every header read by ``sf.info``.

- ``fuse``: stage 6 loading the scores of ``--systems`` systems on Vox1-E (579,818 trials) to
  fuse them (:func:`spkid.eval.fuse_systems.load_list_scores`), against reading every score file for
  the alignment check and again for the scores, all files' trial ids held at once; time and
  peak memory, each in its own process.

Each part prints the baseline, the project's path and their ratio; the machine is shared, so
compare the ratios of one run rather than absolute seconds across runs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import shutil
import subprocess
import sys
import time
import timeit
from pathlib import Path

import numpy as np

VOX1_UTTS = 153_516


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _in_process(part: str, variant: str, work: Path, args: argparse.Namespace) -> dict:
    """Run one variant of one part in a fresh process: its own peak memory."""
    cmd = [sys.executable, __file__, "--work", str(work), "--run", f"{part}:{variant}",
           "--utts", str(args.utts), "--dim", str(args.dim), "--crops", str(args.crops)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def compare_in_processes(part: str, work: Path, args: argparse.Namespace, what: str, baseline: str, new: str,
                         same: str) -> None:
    """Time and peak memory of the baseline and the project's path of ``part``, each in its own
    process, whose results (their "check") must agree."""
    a = _in_process(part, "baseline", work, args)
    b = _in_process(part, "new", work, args)
    assert a["check"] == b["check"], (a, b)
    width = max(len(baseline) + 11, len(new)) + 1
    print(f"{part}: {what}")
    for name, r in ((f"baseline ({baseline})", a), (new, b)):
        print(f"  {name + ':':<{width}} {r['seconds']:7.1f} s  peak {r['peak_mb']:7.0f} MB")
    print(f"  -> {a['seconds'] / b['seconds']:.2f}x faster, {a['peak_mb'] / b['peak_mb']:.2f}x less memory; {same}")


# ---------------------------------------------------------------- embeddings (stage 5)

def make_embeddings(work: Path, args: argparse.Namespace) -> Path:
    from spkid.eval.extract import write_embeddings

    ark = work / "emb" / "embeddings.ark"
    if not ark.is_file():
        rng = np.random.default_rng(0)
        pool = rng.normal(size=(997, args.crops, args.dim)).astype(np.float32)
        utts = sorted(f"id{10000 + i % 1251:05d}/s{i:06d}/00001" for i in range(args.utts))
        write_embeddings(((u, pool[i % 997]) for i, u in enumerate(utts)), ark)
    return ark.with_suffix(".scp")


def load_embeddings_baseline(scp: Path):
    """The straightforward load: every matrix opened on its own; crops dropped as a view."""
    import kaldiio

    from spkid.data.datadir import read_scp
    from spkid.eval.scoring import Embeddings, normalize_rows

    utts, crops, means = [], [], []
    for utt, ark, offset in sorted(read_scp(scp)):
        x = normalize_rows(kaldiio.load_mat(f"{ark}:{offset}"))
        utts.append(utt)
        means.append(x.mean(axis=0))
        crops.append(x[:0])
    return Embeddings(utts, crops, np.stack(means))


def run_embeddings(variant: str, work: Path) -> dict:
    from spkid.eval import scoring

    scp = work / "emb" / "embeddings.scp"
    start = time.perf_counter()
    emb = load_embeddings_baseline(scp) if variant == "baseline" else scoring.read_embeddings(scp, keep_crops=False)
    return {"seconds": time.perf_counter() - start, "peak_mb": _peak_mb(),
            "check": [len(emb.utts), float(emb.means.astype(np.float64).sum())]}


def bench_embeddings(work: Path, args: argparse.Namespace) -> None:
    make_embeddings(work, args)
    compare_in_processes("embeddings", work, args,
                         f"{args.utts} utterances x {args.crops} crops x {args.dim} (stage 5, means only)",
                         "open per utterance, x[:0] views", "read_embeddings", "same means")


# ---------------------------------------------------------------- ark checks (stages 4 and 5)

def bench_arkchecks(work: Path, args: argparse.Namespace) -> None:
    """What spkid.data.arks's checks cost on the VoxCeleb1 set: stage 4's "already done" check
    (every record's header and the tiling of the ark) against reading the scp's utterance list
    (all it checked before), and stage 5's value checks against the same load without them."""
    from unittest import mock

    from spkid.data import arks
    from spkid.data.datadir import read_scp
    from spkid.eval import scoring

    def best(fn, repeat: int = 3) -> float:
        return min(timeit.repeat(fn, number=1, repeat=repeat))

    scp = make_embeddings(work, args)
    utts = [u for u, _, _ in read_scp(scp)]
    scp_only = best(lambda: [u for u, _, _ in read_scp(scp)] == utts)
    structure = best(lambda: arks.set_problem(scp.with_suffix(".ark"), utts))
    print(f"arkchecks: {len(utts)} utterances x {args.crops} crops x {args.dim} "
          f"({scp.with_suffix('.ark').stat().st_size / 1e9:.1f} GB ark, page cache warm; best of 3 each)")
    print(f"  stage 4 done check: scp utterance list only {scp_only:6.2f} s; + every record's structure "
          f"(set_problem) {structure:6.2f} s")

    def load():
        return scoring.read_embeddings(scp, keep_crops=False)

    checked, unchecked = [], []
    for _ in range(3):  # alternated, so that a change in the machine's load falls on both
        checked.append(best(load, 1))
        with mock.patch.object(arks.Table, "check_lengths", lambda *_: None):
            unchecked.append(best(load, 1))
    checked, unchecked = min(checked), min(unchecked)
    print(f"  stage 5 load (read_embeddings): without value checks {unchecked:6.2f} s; with them {checked:6.2f} s "
          f"-> +{100 * (checked / unchecked - 1):.1f} %")
    # the check alone, on records already in memory: what a loaded machine's noise cannot hide
    table = arks.Table(scp)
    sample = [(u, m, np.sqrt(np.einsum("ij,ij->i", m, m)))
              for u, m in itertools.islice(table.read(check_values=False), 20_000)]
    per = best(lambda: [table.check_lengths(*item) for item in sample]) / len(sample)
    print(f"  the value check alone: {per * 1e6:.2f} us per record, {per * len(utts):.2f} s for the set")


# ---------------------------------------------------------------- provenance (stage 5's check)

def run_provenance(variant: str, work: Path) -> dict:
    from spkid.eval import scoring
    from spkid.expdir import check_current, file_digest

    emb = work / "emb"
    start = time.perf_counter()
    if variant == "load":
        check = len(scoring.read_embeddings(emb / "embeddings.scp", keep_crops=False).utts)
    elif variant == "digest":
        check = file_digest(emb / "embeddings.ark")
    else:
        check = len(check_current(emb, 4, "bench", ["embeddings.ark", "embeddings.scp"]).outputs)
    return {"seconds": time.perf_counter() - start, "peak_mb": _peak_mb(), "check": check}


def bench_provenance(work: Path, args: argparse.Namespace) -> None:
    """Stage 5 checks the ark it reads against stage 4's record before use. Measured: loading
    the embeddings (the part of stage 5 that reads the ark; the scoring comes on top), a full
    sha256 of the ark (what a check costs when the ark's stat changed since stage 4 hashed it),
    and the check as stage 5 makes it (the recorded stat still matches: no read)."""
    from spkid.expdir import RACY_NS, Record

    make_embeddings(work, args)
    emb = work / "emb"
    load = _in_process("provenance", "load", work, args)
    time.sleep(RACY_NS / 1e9)  # stage 4 hashes a finished ark; its stat is recorded once it is quiet
    Record.made_from(emb, 4, "bench", {}).write([emb / "embeddings.ark", emb / "embeddings.scp"])
    digest = _in_process("provenance", "digest", work, args)
    check = _in_process("provenance", "check", work, args)
    size = (emb / "embeddings.ark").stat().st_size
    print(f"provenance: stage 5's check of a {size / 1e9:.2f} GB ark ({args.utts} utterances x {args.crops} x {args.dim})")
    print(f"  loading the embeddings (stage 5, means only): {load['seconds']:7.2f} s")
    print(f"  sha256 of the whole ark:                      {digest['seconds']:7.2f} s = "
          f"{size / digest['seconds'] / 1e6:6.0f} MB/s = {100 * digest['seconds'] / load['seconds']:5.1f}% of the load")
    print(f"  stage 5's check (record's stat matches):      {check['seconds']:7.4f} s = "
          f"{100 * check['seconds'] / load['seconds']:5.2f}% of the load")


# ---------------------------------------------------------------- headers (stage 2)

def bench_headers(work: Path, args: argparse.Namespace) -> None:
    from unittest import mock

    import soundfile as sf

    from spkid.data import audio

    root = work / "wav"
    probe = work / "probe.wav"
    sf.write(probe, np.zeros(16000 * 8 // 100, np.int16), 16000, subtype="PCM_16")
    blob = probe.read_bytes()
    scp = {}
    for i in range(args.files):
        d = root / f"id{i // 400:05d}" / f"s{i // 20 % 20:03d}"
        if i % 20 == 0:
            d.mkdir(parents=True, exist_ok=True)
        scp[f"{d.name}/{i:05d}"] = path = str(d / f"{i % 20:05d}.wav")
        with open(path, "wb") as f:
            f.write(blob)
    audio.audio_infos(scp, args.nj)  # page cache warm for both
    times = {}
    for variant in ("baseline", "new"):
        with mock.patch.object(audio, "wav_header_info", (lambda path: None) if variant == "baseline"
                               else audio.wav_header_info):
            start = time.perf_counter()
            infos, errors = audio.audio_infos(scp, args.nj)
            times[variant] = time.perf_counter() - start
        assert not errors and len(infos) == len(scp)
        if variant == "baseline":
            want = infos
    assert infos == want
    per = {k: v / len(scp) for k, v in times.items()}
    print(f"headers: {len(scp)} wav files, audio_infos with nj={args.nj} (stage 2 utt2dur)")
    print(f"  baseline (sf.info per file): {times['baseline']:6.2f} s = {1e6 * per['baseline']:5.0f} us/file "
          f"-> {per['baseline'] * 1_092_009:5.0f} s for VoxCeleb2 dev")
    print(f"  header fast path:            {times['new']:6.2f} s = {1e6 * per['new']:5.0f} us/file "
          f"-> {per['new'] * 1_092_009:5.0f} s for VoxCeleb2 dev")
    print(f"  -> {times['baseline'] / times['new']:.2f}x; same infos")


# ---------------------------------------------------------------- fuse (stage 6)

VOX1_E_TRIALS = 579_818


def run_fuse(variant: str, work: Path) -> dict:
    from spkid.eval import fusion, scoring
    from spkid.eval.fuse_systems import load_list_scores
    from spkid.data.datadir import read_trials

    trials_path = work / "data" / "vox1" / "trials" / "vox1_E"
    systems = sorted(p.name for p in (work / "exp").iterdir())
    start = time.perf_counter()
    if variant == "baseline":
        files = [work / "exp" / s / "scores" / "vox1" / "vox1_E.score" for s in systems]
        trials = read_trials(trials_path)
        raw = [scoring.read_scores(f) for f in files]
        fusion.check_aligned([(str(f), e, t) for f, (e, t, _) in zip(files, raw)])
        scores = np.stack([scoring.scores_for_trials(f, trials, str(trials_path)) for f in files])
    else:
        trials, scores = load_list_scores(work / "exp", systems, "vox1", "vox1_E", trials_path)
    return {"seconds": time.perf_counter() - start, "peak_mb": _peak_mb(),
            "check": [list(scores.shape), float(scores.sum())]}


def bench_fuse(work: Path, args: argparse.Namespace) -> None:
    from spkid.eval import scoring
    from spkid.data.datadir import Trials, write_trials

    rng = np.random.default_rng(0)
    utts = [f"id{10000 + i % 1251:05d}/s{i:06d}/00001" for i in range(VOX1_UTTS)]
    e, t = rng.integers(0, len(utts), (2, VOX1_E_TRIALS))
    trials = Trials([utts[i] for i in e], [utts[i] for i in t], (rng.random(VOX1_E_TRIALS) < 0.5).astype(np.int8))
    write_trials(work / "data" / "vox1" / "trials" / "vox1_E", trials)
    for k in range(args.systems):
        scoring.write_scores(work / "exp" / f"SYS{k}" / "scores" / "vox1" / "vox1_E.score", trials,
                             rng.normal(size=VOX1_E_TRIALS) + 2.0 * trials.labels)
    compare_in_processes("fuse", work, args,
                         f"{args.systems} systems x {VOX1_E_TRIALS} trials (Vox1-E), loading the scores to fuse",
                         "each file read twice, all ids held", "load_list_scores (each read once, in turn)",
                         "same scores")


PARTS = {"embeddings": (bench_embeddings, run_embeddings), "arkchecks": (bench_arkchecks, None),
         "provenance": (bench_provenance, run_provenance),
         "headers": (bench_headers, None),
         "fuse": (bench_fuse, run_fuse)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, help="scratch folder for the synthetic data (a few GB)")
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of " + ",".join(PARTS))
    ap.add_argument("--utts", type=int, default=VOX1_UTTS, help="embeddings: utterances")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--crops", type=int, default=10)
    ap.add_argument("--files", type=int, default=30_000, help="headers: wav files")
    ap.add_argument("--nj", type=int, default=8, help="headers: threads (stage 2's --nj default)")
    ap.add_argument("--systems", type=int, default=8, help="fuse: systems")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic data")
    ap.add_argument("--run", default="", help=argparse.SUPPRESS)  # internal: PART:VARIANT in this process
    args = ap.parse_args()
    work = Path(args.work)
    if args.run:
        part, variant = args.run.split(":")
        print(json.dumps(PARTS[part][1](variant, work)))
        return
    work.mkdir(parents=True, exist_ok=True)
    try:
        for part in args.parts.split(","):
            PARTS[part][0](work, args)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
