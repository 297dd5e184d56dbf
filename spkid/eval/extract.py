"""Embedding extraction (paper section 3.5): ten evenly spaced 4.015-s crops per utterance.

Each utterance becomes one float32 matrix, crops x embed_dim, of raw (unnormalised) crop
embeddings, stored with kaldiio as ark/scp (read back, checked, by :mod:`spkid.data.arks`), so
that scoring, AS-norm and fusion never need the network again. Crops: ``eval_frames * 160 +
240`` samples (400 frames -> 64,240); starts ``linspace(0, len - crop, num_eval_crops)``
truncated to integers (as the paper's code); an utterance shorter than a crop is first
wrap-padded (repeated circularly) to one crop, as in training. ``num_eval_crops = 0`` embeds
the whole utterance (one row; wrap-padded to one crop when shorter). Crops of several
utterances go through the network in one batch.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from spkid.data.audio import crop_samples, read_checked, wrap_crop
from spkid.config import read_resolved, to_conf_lines
from spkid.data.arks import Table, check_key, value_problem
from spkid.data.datadir import read_scp
from spkid.device import available_memory
from spkid.errors import SpkidError
from spkid.expdir import SystemDir
from spkid.fileio import atomic_paths
from spkid.options import SYSTEM_OPTIONS, EvalOptions, ModelOptions


class ExtractError(SpkidError):
    pass


def crop_starts(n_samples: int, crop: int, num_crops: int) -> np.ndarray:
    """Evenly spaced crop starts, ``linspace(0, n_samples - crop, num_crops)`` as integers."""
    return np.linspace(0, max(n_samples - crop, 0), num_crops).astype(np.int64)


def utterance_crops(wave: np.ndarray, crop: int, num_crops: int) -> np.ndarray:
    """(num_crops, crop) evaluation crops of one utterance; (1, len) when ``num_crops`` is 0."""
    wave = np.asarray(wave, dtype=np.float32)
    if len(wave) < crop:
        wave = wrap_crop(wave, 0, crop)
    if num_crops == 0:
        return wave[None]
    return np.stack([wave[s:s + crop] for s in crop_starts(len(wave), crop, num_crops)])


class CropDataset(torch.utils.data.Dataset):
    """(utt, crops) per utterance of a wav.scp subset, read in DataLoader workers."""

    def __init__(self, items: Sequence[tuple[str, str]], crop: int, num_crops: int, allow_pipes: bool = False):
        self.items, self.crop, self.num_crops, self.allow_pipes = list(items), crop, num_crops, allow_pipes

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[str, np.ndarray]:
        utt, entry = self.items[i]
        # refused as verify/embed refuse it: NaN audio made NaN embeddings, a cut-short WAV its start
        wave = read_checked(entry, utt=utt, allow_pipes=self.allow_pipes)
        return utt, utterance_crops(wave, self.crop, self.num_crops)


def _collate(batch):
    return batch


@dataclass
class LoadedSystem:
    """A trained ``exp/<SYS>`` loaded for use (not the training of one, spkid.train.system): its
    network in eval mode and the options it was trained and scored with."""

    exp_dir: Path
    model: torch.nn.Module
    model_opts: ModelOptions
    eval_opts: EvalOptions
    all_opts: tuple  # every SYSTEM_OPTIONS group, as read from config.conf

    def config_text(self) -> str:
        return "".join(line + "\n" for line in to_conf_lines(*self.all_opts))


def load_system(exp_dir: str | os.PathLike, device: torch.device | str = "cpu") -> LoadedSystem:
    """build_model(config.conf's ModelOptions) with the weights of final.pt, in eval mode."""
    from spkid.models import build_model, non_finite_tensors

    exp_dir = Path(exp_dir)
    conf, final = SystemDir(exp_dir).config, SystemDir(exp_dir).final
    for path, what in ((conf, "resolved options"), (final, "trained network")):
        if not path.is_file():
            raise ExtractError(f"{path} not found: {exp_dir} holds no {what}; train it first "
                               f"(run.sh stage 3, steps/train.sh ... {exp_dir})")
    opts = tuple(read_resolved(conf, SYSTEM_OPTIONS))
    model_opts = next(o for o in opts if isinstance(o, ModelOptions))
    eval_opts = next(o for o in opts if isinstance(o, EvalOptions))
    try:
        state = torch.load(final, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: torch raises many types
        raise ExtractError(f"{final}: cannot load it as a checkpoint ({e}); re-run training's last epoch") from None
    if not isinstance(state, dict) or "model" not in state:
        raise ExtractError(f"{final}: expected a dict with key 'model' (the layout steps/train.py writes)")
    bad = non_finite_tensors(state["model"])
    if bad:  # (a diverged training once wrote one: every embedding would be NaN)
        raise ExtractError(f"{final}: {len(bad)} weight tensors are NaN or infinite (e.g. {bad[0]}): the training "
                           f"diverged; train the system again with a lower --lr")
    model = build_model(model_opts)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise ExtractError(f"{final} does not match {conf} ({str(e).splitlines()[0]}); "
                           f"was config.conf edited after training?") from None
    return LoadedSystem(exp_dir, model.to(device).eval(), model_opts, eval_opts, opts)


class _PeakTensorBytes(TorchDispatchMode):
    """The most bytes of tensor storage alive at once while it is active: each op's outputs are
    counted until the last tensor on their storage is freed (a view adds no bytes, nor does a view
    of the ``held`` tensors, the network's weights)."""

    def __init__(self, held: Iterable[torch.Tensor]):
        super().__init__()
        self.held = {t.untyped_storage().data_ptr() for t in held}
        self.live: dict[int, list[int]] = {}  # storage address -> [bytes, tensors on it]
        self.now = self.peak = 0

    def _release(self, key: int) -> None:
        entry = self.live[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.now -= entry[0]
            del self.live[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if torch.is_tensor(t) and t.untyped_storage().nbytes() and t.untyped_storage().data_ptr() not in self.held:
                key = t.untyped_storage().data_ptr()
                entry = self.live.setdefault(key, [t.untyped_storage().nbytes(), 0])
                if entry[1] == 0:
                    self.now += entry[0]
                    self.peak = max(self.peak, self.now)
                entry[1] += 1
                weakref.finalize(t, self._release, key)
        return out


PROBE_FRAMES = 100  # activations grow linearly with a crop's frames: measured on two short crops, extended


def _peak_bytes(model: torch.nn.Module, samples: int, device: torch.device | str) -> int:
    peak = _PeakTensorBytes([*model.parameters(), *model.buffers()])
    with peak:
        model(torch.zeros(1, samples, device=device))
    return peak.peak


@torch.no_grad()
def crops_bytes(model: torch.nn.Module, crop: int, num_crops: int, device: torch.device | str) -> int:
    """About the memory that embedding ``num_crops`` crops of ``crop`` samples in one forward pass
    takes: the network's activations, measured on crops of 100 and 200 frames and extended along
    that line, and the crops' waveforms (the numpy batch and its tensor)."""
    short, long = crop_samples(PROBE_FRAMES), crop_samples(2 * PROBE_FRAMES)
    a, b = _peak_bytes(model, short, device), _peak_bytes(model, long, device)
    per_crop = max(a, a + (b - a) * (crop - short) / (long - short))
    return int(num_crops * (per_crop + 2 * 4 * crop))


def check_crop_memory(model: torch.nn.Module, crop: int, num_crops: int, device: torch.device | str) -> None:
    """Refuse crops whose one forward pass cannot fit (100,000 crops were an OOM kill at 11.6 GB):
    the estimate, the limit and the options to lower. Whole utterances (0 crops) are not known yet."""
    if num_crops == 0:
        return
    device = torch.device(device)
    need = crops_bytes(model, crop, num_crops, device)
    have, where = available_memory(device)
    if need > have:
        frames = (crop - crop_samples(0)) // 160
        raise ExtractError(f"--num-eval-crops={num_crops} crops of --eval-frames={frames} need about "
                           f"{need / 2**30:.1f} GiB to embed one utterance, but {where} has {have / 2**30:.1f} GiB "
                           f"available: lower --num-eval-crops or --eval-frames (the paper: 10 crops of 400 frames)")


@torch.no_grad()
def embed_waveform(model: torch.nn.Module, wave: np.ndarray, evaluation: EvalOptions,
                   device: torch.device | str = "cpu") -> np.ndarray:
    """Raw crop embeddings (crops x dim) of one waveform, with the crops of stage 4."""
    crops = utterance_crops(wave, crop_samples(evaluation.eval_frames), evaluation.num_eval_crops)
    return model(torch.from_numpy(crops).to(device)).float().cpu().numpy()


@torch.no_grad()
def embed(model: torch.nn.Module, items: Sequence[tuple[str, str]], crop: int, num_crops: int,
          device: torch.device | str = "cpu", batch_utts: int = 16, num_workers: int = 0,
          allow_pipes: bool = False) -> Iterator[tuple[str, np.ndarray]]:
    """(utt, crops x dim float32) for every (utt, wav.scp entry), in order; the crops of up to
    ``batch_utts`` utterances share one forward pass (whole utterances go one at a time)."""
    check_crop_memory(model, crop, num_crops, device)
    loader = torch.utils.data.DataLoader(
        CropDataset(items, crop, num_crops, allow_pipes), batch_size=batch_utts if num_crops else 1,
        num_workers=num_workers, collate_fn=_collate, pin_memory=torch.device(device).type == "cuda")
    for batch in loader:
        waves = torch.from_numpy(np.concatenate([c for _, c in batch])).to(device, non_blocking=True)
        out = model(waves).float().cpu().numpy()
        row = 0
        for utt, c in batch:
            yield utt, out[row:row + len(c)]
            row += len(c)


def write_embeddings(items: Iterable[tuple[str, np.ndarray]], ark: str | os.PathLike,
                     on_item: Callable[[], None] | None = None) -> int:
    """Write (utt, matrix) pairs to ``ark`` + ``ark`` with .scp, atomically (both or neither).
    A key Kaldi cannot read back, or values stage 5 would refuse (:func:`value_problem`), stop
    the write naming the utterance: extracting again would only make them again."""
    import kaldiio

    ark, scp = Path(ark), Path(ark).with_suffix(".scp")
    n = 0
    with atomic_paths(ark, scp) as (tmp_ark, tmp_scp):
        with kaldiio.WriteHelper(f"ark,scp:{tmp_ark},{tmp_scp}") as w:
            for utt, mat in items:
                check_key(utt, str(ark))
                mat = np.ascontiguousarray(mat, dtype=np.float32)
                problem = value_problem(mat)
                if problem:
                    raise ExtractError(f"{ark}: utterance '{utt}': its embedding: {problem}; nothing is written. "
                                       f"Check its audio (utils/validate_data_dir.py --check-audio) and the system")
                w(utt, mat)
                n += 1
                if on_item:
                    on_item()
        lines = Path(tmp_scp).read_text().splitlines()
        # the scp must name the final ark, not the temporary one
        Path(tmp_scp).write_text("".join(f"{ln.split(' ', 1)[0]} {ark}:{ln.rsplit(':', 1)[1]}\n" for ln in lines))
    return n


def write_utterance_vectors(matrices_scp: str | os.PathLike, ark: str | os.PathLike) -> int:
    """One vector per utterance beside the crop matrices, for Kaldi's back-end tools (ivector-mean,
    ivector-compute-lda, ivector-compute-plda read vectors, FV): the mean of the L2-normalised
    crops, the vector cosine scoring uses (:class:`spkid.eval.scoring.Embeddings`). Written as
    ``ark`` and its .scp (``xvector.{ark,scp}``), atomically; returns the number of utterances."""
    from spkid.eval.scoring import normalize_rows

    reader = Table(matrices_scp).read()
    return write_embeddings(((utt, normalize_rows(mat).mean(axis=0)) for utt, mat in reader), ark)


def merge_arks(parts: Sequence[str | os.PathLike], ark: str | os.PathLike) -> int:
    """Concatenate job arks into ``ark`` byte for byte and write its scp (offsets shifted, lines
    sorted by utterance), atomically; returns the number of utterances."""
    ark, scp = Path(ark), Path(ark).with_suffix(".scp")
    entries: list[tuple[str, int]] = []
    with atomic_paths(ark, scp) as (tmp_ark, tmp_scp):
        base = 0
        with open(tmp_ark, "wb") as out:
            for part in parts:
                part = Path(part)
                for utt, _, offset in read_scp(part.with_suffix(".scp")):
                    entries.append((utt, base + offset))
                with open(part, "rb") as f:
                    while chunk := f.read(1 << 24):
                        out.write(chunk)
                base = out.tell()
        entries.sort()
        dup = [u for (u, _), (v, _) in zip(entries, entries[1:]) if u == v]
        if dup:
            raise ExtractError(f"utterance '{dup[0]}' was extracted by two jobs; remove {ark.parent}/split and re-run")
        with open(tmp_scp, "w", encoding="utf-8") as f:
            f.writelines(f"{u} {ark}:{o}\n" for u, o in entries)
    return len(entries)


def cohort_subset(spk2utt: dict[str, list[str]], per_speaker: int) -> list[str]:
    """Up to ``per_speaker`` utterances of every speaker, evenly spaced in its sorted list
    (so that they span its sessions); 0 = all."""
    out = []
    for spk in sorted(spk2utt):
        utts = sorted(spk2utt[spk])
        if per_speaker and len(utts) > per_speaker:
            utts = [utts[i] for i in np.unique(np.linspace(0, len(utts) - 1, per_speaker).round().astype(int))]
        out += utts
    return sorted(out)
