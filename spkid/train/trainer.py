"""The training loop: one process per device (torchrun), DDP when there are several.
Its neighbours: ranks.py (process group, SIGTERM), checkpoints.py (atomic save, RNG states,
resume, pruning, config diff), epoch.py (an epoch's running figures), system.py (one run of
steps/train.py: options, resume, final model).

Writes the experiment layout (README, "Stages"; docs/stages.md): ``checkpoints/epoch_NNNN.pt`` after every epoch
(model, loss head, optimizer, scheduler, gradient scaler, every rank's RNG states, epoch), then
``final.pt``; a text log in ``log/train.log``. Re-running resumes from the newest readable
checkpoint.

The step never waits for the device (paper section 3.4's mixed precision, made fast):
- loss and accuracy accumulate in device tensors, read every ``log_interval`` steps;
- a non-finite loss or gradient skips the optimizer step on the device: Adam is the fused
  kernel, which takes a ``found_inf`` flag (GradScaler sets it under fp16; without a scaler we
  compute it from the gradient norm). The flag comes from the gradients after DDP's all-reduce,
  so every rank skips the same steps. Non-finite losses are flagged per step in a device
  buffer and reported, with the batch's utterance ids, at the next read; non-finite weights
  (which skipped steps cannot cause: the optimiser diverged) stop training at the read, before
  any step's loss blames its batch, and an epoch of skipped steps only stops it too;
- the front-end stays fp32 inside the model; convolutions run channels-last on CUDA;
  ``--compile true`` wraps the step's forward in ``torch.compile`` (``--compile-mode
  reduce-overhead`` replays it as CUDA graphs).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path
from typing import Sequence

import torch
from torch import nn
from tqdm import tqdm

from spkid.console import progress
from spkid.config import to_conf_lines
from spkid.data.dataset import device_wave
from spkid.errors import SpkidError
from spkid.expdir import SystemDir
from spkid.models import build_model
from spkid.options import EvalOptions, LossOptions, ModelOptions, TrainOptions, n_per_speaker
from spkid.train.checkpoints import (checkpoint_path, gather_rng_states, prune_checkpoints, save_atomic,
                                     seed_everything, set_rng_state)
from spkid.train.average import average_checkpoints, kept_checkpoints, last_checkpoints
from spkid.train.losses import build_loss, class_vectors
from spkid.train.epoch import EpochProgress, EpochStats
from spkid.train.ranks import Dist, StopSignal, Terminated, barrier

log = logging.getLogger("spkid.train")


# ----------------------------------------------------------------------------- the step

class ModelAndLoss(nn.Module):
    """Trunk and loss head as one module, so that DDP all-reduces both and compile sees both."""

    def __init__(self, model: nn.Module, head: nn.Module):
        super().__init__()
        self.model = model
        self.head = head

    def forward(self, wave: torch.Tensor, labels: torch.Tensor):
        loss, acc = self.head(self.model(wave), labels)
        return loss, acc if acc is not None else torch.zeros((), device=loss.device)


def nonfinite_grads(params: Sequence[nn.Parameter]) -> torch.Tensor:
    """1.0 (as a device tensor, without a sync) when any gradient holds inf or NaN."""
    grads = [p.grad for p in params if p.grad is not None]
    return (~torch.isfinite(torch.nn.utils.get_total_norm(grads))).float()


def amp_dtype(train: TrainOptions, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or train.amp == "none":
        return None
    return torch.float16 if train.amp == "fp16" else torch.bfloat16


@dataclasses.dataclass
class TrainJob:
    """What one training run needs besides the data: the system options and where to write."""
    model: ModelOptions
    loss: LossOptions
    train: TrainOptions
    eval: EvalOptions
    exp_dir: Path
    log_interval: int = 50
    keep_checkpoints: int = 3
    log_utts: bool = False
    quiet: bool = False


#: a data-wait share above this at the end of an epoch earns a warning to add workers.
DATA_WAIT_WARNING = 0.2


def setup_logging(exp_dir: Path, d: Dist, quiet: bool) -> None:
    """Rank 0 logs to exp/SYS/log/train.log (INFO) and the console; other ranks log warnings
    to log/train.rank<R>.log and the console. Console lines go through tqdm.write so that
    they do not break the progress bar."""
    log_dir = SystemDir(exp_dir).log
    log_dir.mkdir(parents=True, exist_ok=True)
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    log.setLevel(logging.INFO)
    log.propagate = False
    prefix = "" if d.world_size == 1 else f"[rank {d.rank}] "
    fmt = logging.Formatter(f"%(asctime)s %(levelname)s {prefix}%(message)s", "%Y-%m-%d %H:%M:%S")
    fh = logging.FileHandler(log_dir / ("train.log" if d.is_main else f"train.rank{d.rank}.log"))
    fh.setFormatter(fmt)
    fh.setLevel(logging.INFO if d.is_main else logging.WARNING)
    log.addHandler(fh)

    class _Console(logging.Handler):
        def emit(self, record):
            if getattr(record, "file_only", False):
                return
            tqdm.write(f"{prefix}{record.getMessage()}", file=sys.stderr)

    con = _Console(level=logging.WARNING if (quiet or not d.is_main) else logging.INFO)
    log.addHandler(con)


class Trainer:
    """Builds model, loss head, optimizer, scheduler and scaler for ``job``; ``fit(data)``
    trains from the newest checkpoint (or from scratch) to ``job.train.epochs``."""

    def __init__(self, job: TrainJob, num_speakers: int, d: Dist, stop: StopSignal | None = None):
        self.job = job
        self.d = d
        self.stop = stop or StopSignal()
        self.stop.join(d)
        self.stopped_at: tuple[int, dict] | None = None  # (step, figures) of an epoch a stop cut short
        t = job.train
        self.m = n_per_speaker(job.loss, t)
        self.num_speakers = num_speakers
        dev = d.device
        # Identical initialisation on every rank (DDP also broadcasts rank 0's at wrap time).
        seed_everything(t.seed)
        model = build_model(job.model)
        head = build_loss(job.loss, model.embed_dim, num_speakers, self.m)
        self.net = ModelAndLoss(model, head).to(dev)
        if dev.type == "cuda":
            self.net = self.net.to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=t.lr, weight_decay=t.weight_decay, fused=True)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=t.lr_step, gamma=t.lr_decay)
        self.amp_dtype = amp_dtype(t, dev)
        self.scaler = torch.amp.GradScaler(dev.type, enabled=self.amp_dtype == torch.float16)
        self.epoch = 0
        # Each rank draws its own crops and augmentations.
        seed_everything(t.seed * 1000 + d.rank)

        fwd: nn.Module = self.net
        if d.world_size > 1:
            fwd = nn.parallel.DistributedDataParallel(self.net, device_ids=[dev.index] if dev.type == "cuda" else None)
        if t.compile:
            fwd = torch.compile(fwd, mode=t.compile_mode)
        self.forward = fwd
        # Under CUDA graphs the step's outputs live in the graph's memory, which the next replay
        # reuses: each step is marked, and its outputs copied out.
        self.cuda_graphs = t.compile and t.compile_mode != "default" and dev.type == "cuda"

    # -- state

    def state_dict(self, rng_states: list[dict]) -> dict:
        return {"model": self.net.model.state_dict(),
                "loss": self.net.head.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": rng_states,
                "epoch": self.epoch,
                "num_speakers": self.num_speakers,
                "world_size": self.d.world_size,
                "config": to_conf_lines(self.job.model, self.job.loss, self.job.train, self.job.eval)}

    def load_state_dict(self, state: dict) -> None:
        where = state.get("path", "the checkpoint")
        if state["num_speakers"] != self.num_speakers:
            raise SpkidError(f"{where} was trained on {state['num_speakers']} speakers but the training data now "
                             f"has {self.num_speakers}; use the same --train-data, or a new experiment directory")
        self.net.model.load_state_dict(state["model"])
        self.net.head.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler.is_enabled() and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = state["epoch"]
        self.stopped_at = (state["step"], state["figures"]) if "step" in state else None
        if state["world_size"] == self.d.world_size:
            set_rng_state(state["rng"][self.d.rank], self.d.device)
        else:
            log.warning("%s was written by %d processes, this run has %d: random streams restart from "
                        "the seed (training continues, but not bit-identically)",
                        where, state["world_size"], self.d.world_size)
            seed_everything(self.job.train.seed * 1000 + self.d.rank + 7919 * self.epoch)

    def init_weights(self, state: dict) -> None:
        """Start from another run's network (``--init-from``): the network always (it must be the
        one these options build); its loss head when it has one of this run's shapes (same loss,
        same number of speakers), else the fresh head. A log line says which."""
        where = state["path"]
        try:
            self.net.model.load_state_dict(state["model"])
        except RuntimeError as e:
            detail = "; ".join(line.strip() for line in str(e).splitlines()[1:4])
            raise SpkidError(f"--init-from {where}: its network is not the one these options build ({detail}); "
                             f"train with its options (--config {SystemDir(Path(where).parent).config})") from None
        head = state.get("loss")
        mine = self.net.head.state_dict()
        speakers = state.get("num_speakers", 0)
        vectors = class_vectors(head, mine) if head is not None else None
        if head is not None and set(head) == set(mine) and all(head[k].shape == mine[k].shape for k in mine):
            self.net.head.load_state_dict(head)
            log.info("init from %s: network and %s loss head (%s speakers) loaded", where, self.job.loss.loss,
                     speakers or "no")
        elif vectors is not None:  # e.g. large-margin fine-tuning (conf/lm.conf) of an AP+softmax system
            self.net.head.load_state_dict({**mine, "weight": vectors})
            log.info("init from %s: network loaded; %s loss head on its classifier's class vectors", where,
                     self.job.loss.loss)
        else:
            why = ("it holds no loss head" if head is None else
                   f"its head is over {speakers} speakers, this run's over {self.num_speakers}"
                   if set(head) == set(mine) else f"its loss head is another loss's ({', '.join(sorted(head))})")
            log.info("init from %s: network loaded; %s loss head fresh (%s)", where, self.job.loss.loss, why)

    def gather_rng(self) -> list[dict]:
        return gather_rng_states(self.d)

    def save_final(self) -> Path:
        """final.pt: the network of the last epoch, or with --average-last N the mean of the last
        N epochs' networks (spkid.train.average: BN statistics averaged too)."""
        path = SystemDir(self.job.exp_dir).final
        self._check_weights(f"{path} not written: after epoch {self.epoch}")
        n = self.job.train.average_last
        if n > 1:
            paths = last_checkpoints(self.job.exp_dir, n)
            model = average_checkpoints(paths)
            log.info("final.pt = the mean of %d epochs' networks (%s)", n, ", ".join(p.name for p in paths))
        else:
            model = {k: v.contiguous() for k, v in self.net.model.state_dict().items()}
        save_atomic({"model": model, "loss": self.net.head.state_dict(), "epoch": self.epoch,
                     "num_speakers": self.num_speakers, "averaged": max(n, 1)}, path)
        return path

    # -- training

    def _check_weights(self, when: str) -> None:
        """Stop when a weight is NaN or infinite. Skipped steps never change the weights, so
        non-finite ones come from the optimiser (a learning rate, weight decay or decay factor
        too large), not from an utterance: say so before any step's loss blames its batch, and
        before a checkpoint or final.pt holds them."""
        if torch.isfinite(torch.nn.utils.get_total_norm(self.params, norm_type=float("inf"))).item():
            return
        bad = [name for name, p in self.net.named_parameters() if not torch.isfinite(p).all()]
        t = self.job.train
        raise SpkidError(
            f"{when}: {len(bad)} of the model's {len(self.params)} weight tensors are NaN or infinite "
            f"(e.g. {bad[0]}): the optimiser diverged, no utterance is to blame (learning rate now "
            f"{self.optimizer.param_groups[0]['lr']:g}; --lr={t.lr:g} --weight-decay={t.weight_decay:g} "
            f"--lr-decay={t.lr_decay:g}). Lower --lr (or --weight-decay) and train again in a new "
            f"experiment directory; no checkpoint was written with these weights")

    def _repair_buffers(self, epoch: int, step: int) -> None:
        """A non-finite batch also poisons BatchNorm running statistics during its forward pass,
        which skipping the optimizer step does not undo. At each read we check them and restore
        the snapshot of the previous read (losing at most ``log_interval`` updates of a moving
        average); then take a new snapshot."""
        buffers = self._float_buffers()
        if buffers and not torch.isfinite(torch.nn.utils.get_total_norm(buffers)).item():
            torch._foreach_copy_(buffers, self._buffer_snapshot)
            log.warning("epoch %d step %d: non-finite BatchNorm statistics restored from the previous read",
                        epoch, step)
        self._snapshot_buffers()

    def _float_buffers(self) -> list[torch.Tensor]:
        return [b for b in self.net.buffers() if b.is_floating_point()]

    def _snapshot_buffers(self) -> None:
        self._buffer_snapshot = [b.detach().clone() for b in self._float_buffers()]

    def step(self, batch: dict, device_augment=None) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on ``batch``, without waiting for the device. Returns the detached
        fp32 loss and accuracy as device tensors. A non-finite gradient (and so a non-finite
        loss) makes the fused Adam kernel skip the update, on the device."""
        dev = self.d.device
        wave = device_wave(batch, dev, device_augment)
        labels = batch["label"].to(dev, non_blocking=True)
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast(dev.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            loss, acc = self.forward(wave, labels)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler.is_enabled():
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)  # fused Adam: the scaler hands it found_inf, no sync
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.found_inf = nonfinite_grads(self.params)
            self.optimizer.step()
            del self.optimizer.found_inf
        loss, acc = loss.detach().float(), acc.detach().float()
        return (loss.clone(), acc.clone()) if self.cuda_graphs else (loss, acc)

    def train_epoch(self, data, epoch: int) -> EpochStats:
        """One pass over ``data.loader``; returns the epoch's mean loss and accuracy over all ranks."""
        job = self.job
        self.net.train()
        self._snapshot_buffers()
        # in a log, the epoch's line (setup_logging) follows: no closing progress line
        bar = progress(total=getattr(data, "batches_per_epoch", None), desc=f"epoch {epoch}/{job.train.epochs}",
                       unit="batch", dynamic_ncols=True, quiet=job.quiet or not self.d.is_main, leave=False,
                       file=sys.stderr, final_line=False)
        epoch_progress = EpochProgress.begin(epoch, self.d, job.log_interval, bar)
        if self.stopped_at is not None:
            epoch_progress.resume(*self.stopped_at)
            self.stopped_at = None
        batches = iter(data.loader)
        while (batch := epoch_progress.next_batch(batches)) is not None:
            loss, acc = self.step(batch, data.device_augment)
            if epoch_progress.add(loss, acc, batch["utts"], job.log_utts):
                self._read(epoch_progress)
            if self.stop.agreed():
                self._stop_mid_epoch(epoch_progress)
        if epoch_progress.unread:
            self._read(epoch_progress)
        bar.close()
        if epoch_progress.steps == 0:
            raise SpkidError(f"epoch {epoch}: the training data gave no batch on rank {self.d.rank}; "
                             f"lower --batch-size or add training utterances")
        epoch_progress.append_seen_utts(SystemDir(self.job.exp_dir).log)
        return epoch_progress.stats()

    def _stop_mid_epoch(self, epoch_progress: EpochProgress) -> None:
        """Every rank comes here after the same step (StopSignal): save that step's checkpoint,
        interrupted.pt, and stop (Terminated). A re-run resumes from it bit for bit."""
        if epoch_progress.unread:
            self._read(epoch_progress)
        self.stop.settle()
        epoch_progress.bar.close()
        epoch_progress.append_seen_utts(SystemDir(self.job.exp_dir).log)
        state = {**self.state_dict(self.gather_rng()), "step": epoch_progress.steps, "figures": epoch_progress.figures()}
        if self.d.is_main:
            save_atomic(state, SystemDir(self.job.exp_dir).interrupted)
        barrier(self.d)
        raise Terminated(f"{self.stop.received or 'SIGTERM on another rank'}: stopped in epoch {epoch_progress.epoch} "
                         f"after step {epoch_progress.steps} and saved it")

    def _read(self, epoch_progress: EpochProgress) -> None:
        """The only place the host waits for the device (every ``log_interval`` steps)."""
        self._check_weights(f"epoch {epoch_progress.epoch} step {epoch_progress.steps}")
        epoch_progress.check_flags()
        self._repair_buffers(epoch_progress.epoch, epoch_progress.steps)
        epoch_progress.report(self.optimizer.param_groups[0]["lr"])

    def fit(self, data) -> EpochStats | None:
        """Train from the current epoch to ``job.train.epochs``, checkpointing every epoch.
        Returns the last epoch's statistics (None when nothing was left to train)."""
        job, d = self.job, self.d
        last = None
        for epoch in range(self.epoch + 1, job.train.epochs + 1):
            data.set_epoch(epoch, self.stopped_at[0] if self.stopped_at else 0)
            stats = self.train_epoch(data, epoch)
            if stats.skipped == stats.steps:
                raise SpkidError(
                    f"epoch {epoch}: the loss was NaN or infinite at every one of its {stats.steps} steps, so "
                    f"the model did not change and no checkpoint was written. If the steps named above share "
                    f"utterances, check their audio (utils/validate_data_dir.py --check-audio on the training "
                    f"data); otherwise the loss options (--scale, --margin) or --amp are the cause")
            lr = self.optimizer.param_groups[0]["lr"]
            self.scheduler.step()
            self.epoch = epoch
            rng = self.gather_rng()
            if d.is_main:
                save_atomic(self.state_dict(rng), checkpoint_path(job.exp_dir, epoch))
                SystemDir(job.exp_dir).interrupted.unlink(missing_ok=True)  # older than this one now
                prune_checkpoints(job.exp_dir, kept_checkpoints(job.keep_checkpoints, job.train.average_last), epoch)
                log.info("epoch %d/%d: loss %.4f, accuracy %.2f%%, lr %.3g, %d steps (%d skipped), "
                         "%.0f utt/s, %.1f s, waiting for data %.0f%%", epoch, job.train.epochs, stats.loss,
                         100 * stats.accuracy, lr, stats.steps, stats.skipped,
                         stats.utterances / max(stats.seconds, 1e-9), stats.seconds, 100 * stats.data_wait)
                if stats.data_wait > DATA_WAIT_WARNING:
                    log.warning("epoch %d: the step waited for the DataLoader %.0f%% of the time; more workers "
                                "would train faster (--num-workers, now %d per process%s)", epoch,
                                100 * stats.data_wait, job.train.num_workers,
                                "; --batched-augment=true moves the augmentation off them"
                                if job.train.augment and data.device_augment is None else "")
            barrier(d)
            last = stats
        self.stop.settle()
        return last
