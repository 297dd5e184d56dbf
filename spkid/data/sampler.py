"""Speaker-balanced batches for training (paper section 3.4; voxceleb_trainer's sampler).

Per epoch each speaker contributes at most ``max_seg_per_spk`` of its utterances, in tuples of
M utterances of that speaker (M = 2 for the Angular Prototypical losses, 1 otherwise). Tuples
are packed into global batches of ``batch_size / M`` tuples with no speaker twice in a batch;
the incomplete last batch is dropped. Under DDP, rank r takes the r-th contiguous slice of
every global batch (whole tuples), so the ranks together see exactly the global batch.

The plan of an epoch is a pure function of (seed, epoch): every rank computes the same plan
and a resumed run repeats it. Each item carries its own 63-bit seed for its crop and
augmentation, so DataLoader workers need no epoch state and a batch is the same whatever the
number of workers.
"""

from __future__ import annotations

import logging
from typing import Iterator, Sequence

import numpy as np

from spkid.errors import SpkidError

log = logging.getLogger(__name__)

Item = tuple[int, int]  # (dataset index, per-item seed)


class SamplerError(SpkidError):
    pass


def pack_tuples(tuple_spk: np.ndarray, order: np.ndarray, per_batch: int) -> list[list[int]]:
    """Greedily pack tuples (visited in ``order``) into batches of ``per_batch`` distinct speakers.

    A tuple goes into the oldest open batch that lacks its speaker, or opens a new one, so a
    clash defers a tuple instead of dropping it (voxceleb_trainer drops it). Returns the full
    batches, as lists of tuple indices, in the order they filled up; open batches are dropped."""
    open_batches: list[tuple[list[int], set[int]]] = []
    full: list[list[int]] = []
    for t in order:
        spk = int(tuple_spk[t])
        for i, (members, speakers) in enumerate(open_batches):
            if spk not in speakers:
                members.append(int(t))
                speakers.add(spk)
                if len(members) == per_batch:
                    full.append(members)
                    del open_batches[i]
                break
        else:
            if per_batch == 1:
                full.append([int(t)])
            else:
                open_batches.append(([int(t)], {spk}))
    return full


class SpeakerBatchSampler:
    """Batch sampler yielding this rank's slice of each global batch as ``[(index, seed), ...]``.

    ``spk_utts``: for each speaker (label order), the dataset indices of its utterances.
    Items come speaker-major: M consecutive items of one speaker, ``batch_size/(M*world_size)``
    speakers per rank. Use as ``DataLoader(dataset, batch_sampler=sampler)``; call
    :meth:`set_epoch` before each epoch."""

    def __init__(self, spk_utts: Sequence[Sequence[int]], batch_size: int, m: int, max_seg_per_spk: int,
                 seed: int, rank: int = 0, world_size: int = 1, spk_names: Sequence[str] | None = None):
        if m < 1:
            raise SamplerError(f"utterances per speaker M must be >= 1, got {m}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise SamplerError(f"rank {rank} is not in [0, {world_size})")
        if batch_size % (world_size * m):
            good = max(world_size * m, batch_size // (world_size * m) * world_size * m)
            sizes = [str(w) for w in range(1, batch_size // m + 1) if batch_size % (w * m) == 0][:8]
            # no world size fits a batch that is not a multiple of M: only the batch size can change
            resume = (f", or, to resume checkpoints trained with --batch-size={batch_size}, a world size of "
                      f"{', '.join(sizes)}: GPUs x nodes" if sizes else
                      f"; no world size fits {batch_size}, which is not a multiple of M={m}")
            raise SamplerError(f"--batch-size={batch_size} must be a multiple of world size x M = "
                               f"{world_size} x {m}, so that each rank gets whole speaker groups "
                               f"(fix: --batch-size={good}{resume})")
        if max_seg_per_spk < m:
            raise SamplerError(f"--max-seg-per-spk={max_seg_per_spk} is below M={m}: no speaker could "
                               f"contribute a group (fix: --max-seg-per-spk={max(m, 500)})")
        self.m = m
        self.batch_size = batch_size
        self.max_seg_per_spk = max_seg_per_spk
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.spk_utts = [np.asarray(u, dtype=np.int64) for u in spk_utts]
        short = [s for s, u in enumerate(self.spk_utts) if len(u) < m]
        if short:
            names = [spk_names[s] if spk_names else str(s) for s in short[:5]]
            log.warning("%d speaker(s) have fewer than M=%d utterances and are never sampled (e.g. %s)",
                        len(short), m, ", ".join(names))
        self.speakers_per_batch = batch_size // m
        usable = len(self.spk_utts) - len(short)
        if usable < self.speakers_per_batch:
            raise SamplerError(f"a batch of {batch_size} utterances needs {self.speakers_per_batch} distinct "
                               f"speakers with >= {m} utterances each, but the data has {usable} "
                               f"(fix: --batch-size={max(m, usable // (world_size * m) * world_size * m)} or less)")
        self.epoch = 0
        self.start = 0
        self._plan: tuple[int, tuple[np.ndarray, np.ndarray]] | None = None

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Iterate epoch ``epoch``'s plan from its batch ``start`` (a run stopped mid-epoch resumes
        there: items carry their own seeds, so the batches after ``start`` are those of the
        whole epoch)."""
        self.epoch = epoch
        self.start = start

    def plan(self) -> tuple[np.ndarray, np.ndarray]:
        """This epoch's global batches as (dataset indices, item seeds), each (num_batches, batch_size)."""
        if self._plan is not None and self._plan[0] == self.epoch:
            return self._plan[1]
        rng = np.random.default_rng([self.seed, self.epoch])
        m = self.m
        tuple_utts, tuple_spk = [], []
        for spk, utts in enumerate(self.spk_utts):
            n = min(len(utts), self.max_seg_per_spk) // m * m
            if n == 0:
                continue
            chosen = rng.permutation(utts)[:n].reshape(-1, m)
            tuple_utts.append(chosen)
            tuple_spk.append(np.full(len(chosen), spk, dtype=np.int64))
        all_utts = np.concatenate(tuple_utts)
        all_spk = np.concatenate(tuple_spk)
        packed = pack_tuples(all_spk, rng.permutation(len(all_spk)), self.speakers_per_batch)
        index = all_utts[np.asarray(packed, dtype=np.int64).reshape(len(packed), -1)].reshape(len(packed), -1)
        seeds = rng.integers(0, 2**63 - 1, size=index.shape, dtype=np.int64)
        self._plan = (self.epoch, (index, seeds))
        return index, seeds

    def global_batches(self) -> list[list[Item]]:
        """This epoch's global batches (all ranks), each a speaker-major list of (index, seed)."""
        index, seeds = self.plan()
        return [list(zip(i.tolist(), s.tolist())) for i, s in zip(index, seeds)]

    def __iter__(self) -> Iterator[list[Item]]:
        per_rank = self.batch_size // self.world_size
        lo = self.rank * per_rank
        index, seeds = self.plan()
        for i, s in zip(index[self.start:, lo:lo + per_rank], seeds[self.start:, lo:lo + per_rank]):
            yield list(zip(i.tolist(), s.tolist()))

    def __len__(self) -> int:
        return len(self.plan()[0])
