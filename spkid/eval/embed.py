"""A collection of recordings embedded with a trained system, as evaluation embeds test
utterances (``steps/embed.py``): a folder, one audio file or a wav.scp in; ark/scp or .npy out,
one normalised-crop mean per recording (the vector scoring uses) or the raw crops."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spkid.config import option
from spkid.data.arks import check_key
from spkid.data.datadir import read_wav_scp
from spkid.data.inputs import Failures
from spkid.device import pick_device
from spkid.errors import SpkidError
from spkid.eval.extract import load_system, write_embeddings
from spkid.eval.usage import embed_recordings, normalised_means
from spkid.fileio import atomic_write, check_output_dir

# file extensions soundfile (libsndfile) decodes
AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".snd",
                    ".caf", ".w64", ".rf64", ".wv", ".voc", ".sf", ".sph", ".nist"}


@dataclass
class EmbedOptions:
    out: str = option("", "output folder (required)")
    format: str = option("ark", "ark: embeddings.{ark,scp} (kaldiio); npy: embeddings.npy + keys.txt", ("ark", "npy"))
    kind: str = option("mean", "mean: one normalised-crop mean per recording; crops: raw crops x dim", ("mean", "crops"))
    device: str = option("auto", "auto (CUDA when present), cpu, cuda, cuda:N")
    allow_pipes: bool = option(False, "run wav.scp entries that are shell commands ('... |')")
    quiet: bool = option(False, "no progress bar")


def list_inputs(source: str, allow_pipes: bool = False) -> list[tuple[str, str]]:
    """``(key, entry)`` for a folder of audio files, one audio file (its name without extension as
    the key) or a wav.scp (its commands only with ``allow_pipes``)."""
    p = Path(source)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
        if not files:
            raise SpkidError(f"{p}: no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) under it")
        items = [(f.relative_to(p).with_suffix("").as_posix(), str(f)) for f in files]
        keys = [k for k, _ in items]
        clash = sorted({k for k in keys if keys.count(k) > 1}) if len(set(keys)) < len(keys) else []
        if clash:
            raise SpkidError(f"{p}: files that differ only in extension share a key: {', '.join(clash[:5])}; rename them")
        return items
    if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS:  # one recording, not a list of them
        return [(p.stem, str(p))]
    if p.is_file():
        items = sorted(read_wav_scp(p, allow_pipes).items())
        if not items:
            raise SpkidError(f"{p} is empty: it lists no recordings; give a wav.scp with '<key> <audio file>' "
                             f"lines, or a folder of audio files")
        return items
    raise SpkidError(f"{p} not found: give a folder of audio files, an audio file or a wav.scp")


def write_ark(out: Path, table: dict[str, np.ndarray]) -> None:
    """``embeddings.{ark,scp}`` as stage 4 writes a set: atomically, and refusing a vector scoring
    would refuse (NaN, all zeros) by name rather than writing it."""
    write_embeddings(table.items(), out / "embeddings.ark")


def write_npy(out: Path, table: dict[str, np.ndarray]) -> None:
    shapes = {v.shape for v in table.values()}
    if len(shapes) > 1:
        raise SpkidError(f"--kind=crops with --format=npy needs equal crop counts, got shapes {sorted(shapes)}; "
                         f"use --format=ark")
    with atomic_write(out / "embeddings.npy", "wb") as f:
        np.save(f, np.stack(list(table.values())).astype(np.float32))
    with atomic_write(out / "keys.txt") as f:
        f.writelines(k + "\n" for k in table)


def embed(opts: EmbedOptions, exp_dir: str, source: str) -> int:
    """Embed every recording ``source`` lists into ``opts.out``; 1 when some could not be used
    (they are listed on stderr after the rest are written)."""
    if not opts.out:
        raise SpkidError("--out=FOLDER is required")
    check_output_dir(opts.out, "--out")
    items = list_inputs(source, opts.allow_pipes)
    if opts.format == "ark":  # before any work: Kaldi cannot read a key with a space back
        for key, entry in items:
            check_key(key, f"{Path(opts.out) / 'embeddings.scp'} (the key of {entry}; --format=npy keeps any name)")
    system = load_system(exp_dir, pick_device(opts.device))
    failures, notes = Failures(), []
    crops = dict(embed_recordings(system, items, failures, notes, opts.allow_pipes, opts.quiet))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if not crops:
        raise SpkidError(f"none of the {len(items)} input(s) could be used:\n{failures.report()}")
    if opts.kind == "mean":
        emb = normalised_means(crops)
        table = dict(zip(emb.utts, emb.means))
    else:
        table = crops
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    (write_ark if opts.format == "ark" else write_npy)(out, table)
    dim = next(iter(table.values())).shape[-1]
    print(f"embedded {len(table)} of {len(items)} recording(s) with {exp_dir} into {out} "
          f"({opts.kind}, {dim}-dim, {opts.format})")
    if failures:
        print(failures.report(), file=sys.stderr)
        return 1
    return 0

