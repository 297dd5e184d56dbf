"""The running state of one training epoch on one rank (:class:`EpochProgress`): step figures kept
in device tensors, read back every ``log_interval`` steps, non-finite steps reported, and the
epoch's figures summed over ranks (:class:`EpochStats`)."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import torch
import torch.distributed as dist

from spkid.console import Progress
from spkid.train.ranks import Dist

log = logging.getLogger("spkid.train")


@dataclasses.dataclass
class EpochStats:
    loss: float
    accuracy: float
    steps: int
    skipped: int
    utterances: int
    seconds: float
    data_wait: float = 0.0  # share of the epoch rank 0 spent waiting for the DataLoader


@dataclasses.dataclass
class EpochProgress:
    """The running state of one epoch on this rank. ``add`` accumulates each step's figures in
    device tensors without waiting for the device; ``check_flags`` and ``report`` read them back
    every ``log_interval`` steps (the only places the host waits for the device)."""
    epoch: int
    d: Dist
    bar: Progress
    sums: torch.Tensor  # loss, accuracy, finite steps
    bad: torch.Tensor  # per step since the last read: its loss was non-finite
    recent: list[list[str]]  # per step since the last read: its batch's utterances
    start: float
    steps: int = 0
    utts: int = 0
    skipped: int = 0
    last_read: int = 0
    waited: float = 0.0  # host seconds blocked on the loader (the step never waits for the device)
    seen_utts: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def begin(cls, epoch: int, d: Dist, log_interval: int, bar: Progress) -> EpochProgress:
        n_read = max(1, log_interval)
        return cls(epoch, d, bar, torch.zeros(3, device=d.device), torch.zeros(n_read, dtype=torch.bool, device=d.device),
                   [[] for _ in range(n_read)], time.time())

    def next_batch(self, batches) -> dict | None:
        """The loader's next batch (None at the end), timing the wait for it."""
        t0 = time.perf_counter()
        batch = next(batches, None)
        self.waited += time.perf_counter() - t0
        return batch

    def add(self, loss: torch.Tensor, acc: torch.Tensor, utts: list[str], keep_utts: bool) -> bool:
        """Count one step (its loss and accuracy only when finite); True when a read is due."""
        finite = torch.isfinite(loss)
        slot = self.steps - self.last_read
        self.bad[slot] = ~finite
        self.recent[slot] = utts
        zero = torch.zeros((), device=loss.device)
        self.sums += torch.stack([torch.where(finite, loss, zero), torch.where(finite, acc, zero), finite.float()])
        self.steps += 1
        self.utts += len(utts)
        self.bar.update(1)  # host-side only: the loss figures wait for the next read
        if keep_utts:
            self.seen_utts.extend(utts)
        return self.steps - self.last_read == len(self.bad)

    def append_seen_utts(self, log_dir: Path) -> None:
        """The utterances this rank trained on (kept with ``keep_utts``), to log/utts.rank<R>.txt."""
        if self.seen_utts:
            with open(log_dir / f"utts.rank{self.d.rank}.txt", "a", encoding="utf-8") as f:
                f.writelines(f"{self.epoch} {u}\n" for u in self.seen_utts)

    @property
    def unread(self) -> bool:
        return self.steps > self.last_read

    def check_flags(self) -> None:
        """Report and count the steps since the last read whose loss was non-finite: a
        non-finite loss on any rank skipped that step on all of them."""
        flags = self.bad.tolist()
        anywhere = flags
        if self.d.world_size > 1:
            seen = self.bad.to(torch.uint8)
            dist.all_reduce(seen, op=dist.ReduceOp.MAX)
            anywhere = seen.bool().tolist()
        for slot in range(self.steps - self.last_read):
            if flags[slot]:
                log.warning("epoch %d step %d: non-finite loss; optimizer step skipped; utterances: %s",
                            self.epoch, self.last_read + slot + 1, " ".join(self.recent[slot]))
            elif anywhere[slot]:
                log.warning("epoch %d step %d: non-finite loss on another rank; optimizer step skipped "
                            "(its utterances are in that rank's log/train.rank<R>.log)", self.epoch,
                            self.last_read + slot + 1)
            self.skipped += anywhere[slot]
        self.bad.zero_()

    def report(self, lr: float) -> None:
        """The running loss, accuracy, speed and data wait onto the progress bar and into the log."""
        loss_sum, acc_sum, good = self.sums.tolist()
        elapsed = time.time() - self.start
        stats = dict(loss=f"{loss_sum / max(good, 1):.3f}", acc=f"{100 * acc_sum / max(good, 1):.1f}%",
                     lr=f"{lr:.2e}", utt_s=f"{self.utts * self.d.world_size / max(elapsed, 1e-9):.0f}",
                     data_wait=f"{100 * self.waited / max(elapsed, 1e-9):.0f}%")
        self.bar.set_postfix(stats)
        log.info("epoch %d step %d: %s", self.epoch, self.steps, " ".join(f"{k}={v}" for k, v in stats.items()),
                 extra={"file_only": True})
        self.last_read = self.steps

    def totals(self) -> list[float]:
        """Loss and accuracy sums, finite steps and utterances, added up over all ranks (a collective)."""
        totals = torch.tensor([*self.sums.tolist(), self.utts], dtype=torch.float64)
        if self.d.world_size > 1:
            totals = totals.to(self.d.device)
            dist.all_reduce(totals)
            totals = totals.cpu()
        return totals.tolist()

    def figures(self) -> dict:
        """What a checkpoint taken now keeps of this epoch's figures (a collective, for :meth:`resume`)."""
        return {"skipped": self.skipped, "totals": self.totals(), "seconds": time.time() - self.start,
                "waited": self.waited}

    def resume(self, step: int, figures: dict) -> None:
        """Go on from a stop after ``step`` steps, whose :meth:`figures` these are. Rank 0 takes
        the sums over all ranks, the others start from zero, so :meth:`stats` adds them up once."""
        self.steps = self.last_read = step
        self.skipped = figures["skipped"]
        if self.d.is_main:
            loss_sum, acc_sum, good, utts = figures["totals"]
            self.sums += torch.tensor([loss_sum, acc_sum, good], device=self.sums.device)
            self.utts = int(utts)
            self.start -= figures["seconds"]
            self.waited = figures["waited"]
        self.bar.update(step)

    def stats(self) -> EpochStats:
        """The epoch's figures over all ranks: losses, accuracies and utterances add up; every
        rank takes the same steps and counts the same skipped ones (check_flags gathers the
        flags of all ranks)."""
        loss_sum, acc_sum, good, n_utts = self.totals()
        seconds = time.time() - self.start
        return EpochStats(loss_sum / max(good, 1), acc_sum / max(good, 1), self.steps, self.skipped,
                          int(n_utts), seconds, self.waited / max(seconds, 1e-9))
