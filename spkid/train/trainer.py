"""The training loop: one process per device (torchrun), DDP when there are several.

Writes the experiment layout (README, "Stages"): ``checkpoints/epoch_NNNN.pt`` after every epoch
(model, loss head, optimizer, scheduler, gradient scaler, every rank's RNG states, epoch), then
``final.pt``; a text log in ``log/train.log``. Re-running resumes from the newest readable
checkpoint.

The step never waits for the device (paper section 3.4's mixed precision, made fast):
- loss and accuracy accumulate in device tensors, read every ``log_interval`` steps;
- a non-finite loss or gradient skips the optimizer step on the device: Adam is the fused
  kernel, which takes a ``found_inf`` flag (GradScaler sets it under fp16; without a scaler we
  compute it from the gradient norm). The flag comes from the gradients after DDP's all-reduce,
  so every rank skips the same steps. Non-finite losses are flagged per step in a device
  buffer and reported, with the batch's utterance ids, at the next read;
- the front-end stays fp32 inside the model; convolutions run channels-last on CUDA;
  ``--compile true`` wraps the step's forward in ``torch.compile`` (``--compile-mode
  reduce-overhead`` replays it as CUDA graphs).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from spkid.config import read_resolved, to_conf_lines
from spkid.data.dataset import device_wave
from spkid.errors import SpkidError
from spkid.fileio import atomic_tmp_path
from spkid.train.losses import build_loss
from spkid.models import build_model
from spkid.options import EvalOptions, LossOptions, ModelOptions, TrainOptions, n_per_speaker

log = logging.getLogger("spkid.train")

# Options that may change between a run and its resumption: they do not change what is trained.
RESUMABLE_CHANGES = frozenset({"epochs", "num_workers", "compile", "compile_mode", "aug_bank_max_gb"} | {f.name for f in dataclasses.fields(EvalOptions)})


# ----------------------------------------------------------------------------- processes

@dataclasses.dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> Dist:
    """Read torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) and join the process group:
    NCCL between GPUs, gloo on CPU. ``device``: auto (CUDA when present), cuda or cpu."""
    rank = int(os.environ.get("RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise SpkidError("--device cuda was asked for but PyTorch sees no GPU; use --gpus 0 (CPU) or check the driver")
        if local_rank >= torch.cuda.device_count():
            raise SpkidError(f"local rank {local_rank} has no GPU: this node has {torch.cuda.device_count()}; "
                             f"lower --gpus")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", device_id=dev if use_cuda else None)
    return Dist(rank, world_size, local_rank, dev)


def close_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def peer_lost(e: BaseException) -> bool:
    """Whether ``e`` is a collective failing because another rank went away (it raised, or was
    killed): NCCL's DistError, or gloo's plain RuntimeError about the closed connection."""
    return isinstance(e, dist.DistError) or any(
        text in str(e) for text in ("Connection closed by peer", "Connection reset by peer"))


def _barrier(d: Dist) -> None:
    if d.world_size > 1:
        dist.barrier()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, like Ctrl-C."""


def raise_on_sigterm() -> Any:
    """Make SIGTERM (a scheduler's pre-emption, torchrun stopping its workers) unwind the
    process like Ctrl-C, so that a checkpoint being written is removed rather than left as a
    temporary file beside the others. Returns the previous handler (for ``signal.signal``)."""
    def handler(signum, frame):
        raise Terminated(f"terminated ({signal.Signals(signum).name})")
    return signal.signal(signal.SIGTERM, handler)


# ----------------------------------------------------------------------------- RNG states

def rng_state(device: torch.device) -> dict:
    """Python, NumPy and torch (CPU and the CUDA device) generator states, loadable with
    ``torch.load(weights_only=True)``."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
             "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- checkpoints

def checkpoint_path(exp_dir: Path, epoch: int) -> Path:
    return Path(exp_dir) / "checkpoints" / f"epoch_{epoch:04d}.pt"


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save to a temporary file, fsync, then rename: a checkpoint is whole or absent.
    A failed write (full disk, quota) is a SpkidError naming ``path``; the old file stays."""
    tmp = atomic_tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        cause = e if isinstance(e, (OSError, RuntimeError)) else None
        while cause is not None and not isinstance(cause, OSError):  # torch's zip writer may re-raise
            cause = cause.__context__                                 # a failed write as RuntimeError
        if isinstance(cause, OSError) and cause.errno is not None:
            raise SpkidError(f"cannot write {path}: {os.strerror(cause.errno)}; free space on its file system "
                             f"(or fix its permissions) and run the same command again (training resumes "
                             f"from the newest checkpoint)") from e
        raise


def remove_partial_writes(exp_dir: Path) -> int:
    """Delete the temporary files of checkpoints and final.pt whose writer was killed (SIGKILL,
    a node lost) before it could remove them; each is as large as a checkpoint. Returns how many."""
    exp_dir = Path(exp_dir)
    partial = [*(exp_dir / "checkpoints").glob(".epoch_*.pt.*.tmp"), *exp_dir.glob(".final.pt.*.tmp")]
    for path in partial:
        path.unlink(missing_ok=True)
    if partial:
        log.info("removed %d partial checkpoint file(s) left by a killed run (e.g. %s)", len(partial), partial[0])
    return len(partial)


def load_latest_checkpoint(exp_dir: Path) -> dict | None:
    """The newest checkpoint that loads; unreadable (e.g. truncated) ones are skipped with a warning."""
    paths = sorted((Path(exp_dir) / "checkpoints").glob("epoch_*.pt"), reverse=True)
    for path in paths:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state["path"] = str(path)
            return state
        except Exception as e:  # any corruption: torch/zip/pickle errors differ by how it broke
            log.warning("skipping unreadable checkpoint %s (%s: %s); resuming from an older one",
                        path, type(e).__name__, e)
    return None


def load_resume_checkpoint(exp_dir: Path, d: Dist) -> dict | None:
    """The checkpoint to resume from, the same file on every rank: rank 0 picks the newest
    readable one and the others load that one (a rank that picked on its own could start from
    another epoch after a read error, and the ranks' collectives would no longer match).
    Rank 0 first removes the partial writes of a killed run."""
    if d.is_main:
        remove_partial_writes(exp_dir)
    if d.world_size == 1:
        return load_latest_checkpoint(exp_dir)
    state = load_latest_checkpoint(exp_dir) if d.is_main else None
    chosen = [state["path"] if state else ""]
    dist.broadcast_object_list(chosen, src=0)
    if d.is_main or not chosen[0]:
        return state
    try:
        state = torch.load(chosen[0], map_location="cpu", weights_only=True)
    except Exception as e:  # any corruption or an unreachable file
        raise SpkidError(f"rank {d.rank} cannot read {chosen[0]}, the checkpoint rank 0 resumes from "
                         f"({type(e).__name__}: {e}); every node must see the same {exp_dir}") from None
    state["path"] = chosen[0]
    return state


def prune_checkpoints(exp_dir: Path, keep: int, newest: int) -> None:
    """Keep the ``keep`` checkpoints up to epoch ``newest`` (the one just written; 0 keeps all).
    Newer ones are left alone: they are the unreadable ones a resumed run skipped, and counting
    them could delete the only good checkpoint."""
    if keep <= 0:
        return
    done = sorted((p for p in (Path(exp_dir) / "checkpoints").glob("epoch_*.pt") if p <= checkpoint_path(exp_dir, newest)),
                  reverse=True)
    for path in done[keep:]:
        path.unlink(missing_ok=True)


def config_differences(saved: Path, current: Sequence[Any]) -> list[str]:
    """Options whose value in ``current`` differs from the conf ``saved`` (written by an
    earlier run), except those in RESUMABLE_CHANGES; each as '--opt: saved -> current'."""
    old = dict(line.split("=", 1) for line in to_conf_lines(*read_resolved(saved, [type(c) for c in current])))
    new = dict(line.split("=", 1) for line in to_conf_lines(*current))
    skip = {"--" + name.replace("_", "-") for name in RESUMABLE_CHANGES}
    return [f"{k}: {old[k]} -> {new[k]}" for k in new if k not in skip and old.get(k) != new[k]]


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


@dataclasses.dataclass
class EpochStats:
    loss: float
    accuracy: float
    steps: int
    skipped: int
    utterances: int
    seconds: float
    data_wait: float = 0.0  # share of the epoch rank 0 spent waiting for the DataLoader

#: a data-wait share above this at the end of an epoch earns a warning to add workers.
DATA_WAIT_WARNING = 0.2


def setup_logging(exp_dir: Path, d: Dist, quiet: bool) -> None:
    """Rank 0 logs to exp/SYS/log/train.log (INFO) and the console; other ranks log warnings
    to log/train.rank<R>.log and the console. Console lines go through tqdm.write so that
    they do not break the progress bar."""
    log_dir = Path(exp_dir) / "log"
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

    def __init__(self, job: TrainJob, num_speakers: int, d: Dist):
        self.job = job
        self.d = d
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
        if state["world_size"] == self.d.world_size:
            set_rng_state(state["rng"][self.d.rank], self.d.device)
        else:
            log.warning("%s was written by %d processes, this run has %d: random streams restart from "
                        "the seed (training continues, but not bit-identically)",
                        where, state["world_size"], self.d.world_size)
            seed_everything(self.job.train.seed * 1000 + self.d.rank + 7919 * self.epoch)

    def gather_rng(self) -> list[dict]:
        mine = rng_state(self.d.device)
        if self.d.world_size == 1:
            return [mine]
        out: list = [None] * self.d.world_size
        dist.all_gather_object(out, mine)
        return out

    def save_final(self) -> Path:
        path = Path(self.job.exp_dir) / "final.pt"
        model = {k: v.contiguous() for k, v in self.net.model.state_dict().items()}
        save_atomic({"model": model, "epoch": self.epoch, "num_speakers": self.num_speakers}, path)
        return path

    # -- training

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
        dev = self.d.device
        job = self.job
        self.net.train()
        self._snapshot_buffers()
        n_read = max(1, job.log_interval)
        sums = torch.zeros(3, device=dev)  # loss, accuracy, finite steps
        bad = torch.zeros(n_read, dtype=torch.bool, device=dev)
        recent: list[list[str]] = [[] for _ in range(n_read)]
        seen_utts: list[str] = []
        total = getattr(data, "batches_per_epoch", None)
        bar = tqdm(total=total, desc=f"epoch {epoch}/{job.train.epochs}", unit="batch", dynamic_ncols=True,
                   disable=job.quiet or not self.d.is_main, leave=False, file=sys.stderr)
        start = time.time()
        steps = utts = skipped = last_read = 0
        waited = 0.0  # host seconds blocked on the loader (the step never waits for the device)

        def read(step: int) -> None:
            """The only place the host waits for the device (every ``log_interval`` steps)."""
            nonlocal skipped, last_read
            loss_sum, acc_sum, good = sums.tolist()
            flags = bad.tolist()
            anywhere = flags
            if self.d.world_size > 1:  # a non-finite loss on any rank skips the step on all of them
                seen = bad.to(torch.uint8)
                dist.all_reduce(seen, op=dist.ReduceOp.MAX)
                anywhere = seen.bool().tolist()
            for slot in range(step - last_read):
                if flags[slot]:
                    log.warning("epoch %d step %d: non-finite loss; optimizer step skipped; utterances: %s",
                                epoch, last_read + slot + 1, " ".join(recent[slot]))
                elif anywhere[slot]:
                    log.warning("epoch %d step %d: non-finite loss on another rank; optimizer step skipped "
                                "(its utterances are in that rank's log/train.rank<R>.log)", epoch, last_read + slot + 1)
                skipped += anywhere[slot]
            bad.zero_()
            self._repair_buffers(epoch, step)
            elapsed = time.time() - start
            lr = self.optimizer.param_groups[0]["lr"]
            stats = dict(loss=f"{loss_sum / max(good, 1):.3f}", acc=f"{100 * acc_sum / max(good, 1):.1f}%",
                         lr=f"{lr:.2e}", utt_s=f"{utts * self.d.world_size / max(elapsed, 1e-9):.0f}",
                         data_wait=f"{100 * waited / max(elapsed, 1e-9):.0f}%")
            bar.set_postfix(stats)
            log.info("epoch %d step %d: %s", epoch, step, " ".join(f"{k}={v}" for k, v in stats.items()),
                     extra={"file_only": True})
            last_read = step

        batches = iter(data.loader)
        while True:
            t0 = time.perf_counter()
            batch = next(batches, None)
            waited += time.perf_counter() - t0
            if batch is None:
                break
            loss, acc = self.step(batch, data.device_augment)
            finite = torch.isfinite(loss)
            slot = steps - last_read
            bad[slot] = ~finite
            recent[slot] = batch["utts"]
            zero = torch.zeros((), device=dev)
            sums += torch.stack([torch.where(finite, loss, zero), torch.where(finite, acc, zero), finite.float()])
            steps += 1
            utts += len(batch["utts"])
            bar.update(1)  # host-side only: the loss figures wait for the next read
            if job.log_utts:
                seen_utts.extend(batch["utts"])
            if steps - last_read == n_read:
                read(steps)
        if steps > last_read:
            read(steps)
        bar.close()
        if steps == 0:
            raise SpkidError(f"epoch {epoch}: the training data gave no batch on rank {self.d.rank}; "
                             f"lower --batch-size or add training utterances")
        if job.log_utts:
            with open(Path(job.exp_dir) / "log" / f"utts.rank{self.d.rank}.txt", "a", encoding="utf-8") as f:
                f.writelines(f"{epoch} {u}\n" for u in seen_utts)
        # Losses, accuracies and utterances add up over the ranks; every rank takes the same
        # steps and counts the same skipped ones (read() gathers the flags of all ranks).
        totals = torch.tensor([*sums.tolist(), utts], dtype=torch.float64)
        if self.d.world_size > 1:
            totals = totals.to(dev)
            dist.all_reduce(totals)
            totals = totals.cpu()
        loss_sum, acc_sum, good, n_utts = totals.tolist()
        seconds = time.time() - start
        return EpochStats(loss_sum / max(good, 1), acc_sum / max(good, 1), steps, skipped,
                          int(n_utts), seconds, waited / max(seconds, 1e-9))

    def fit(self, data) -> EpochStats | None:
        """Train from the current epoch to ``job.train.epochs``, checkpointing every epoch.
        Returns the last epoch's statistics (None when nothing was left to train)."""
        job, d = self.job, self.d
        last = None
        for epoch in range(self.epoch + 1, job.train.epochs + 1):
            data.set_epoch(epoch)
            stats = self.train_epoch(data, epoch)
            lr = self.optimizer.param_groups[0]["lr"]
            self.scheduler.step()
            self.epoch = epoch
            rng = self.gather_rng()
            if d.is_main:
                save_atomic(self.state_dict(rng), checkpoint_path(job.exp_dir, epoch))
                prune_checkpoints(job.exp_dir, job.keep_checkpoints, epoch)
                log.info("epoch %d/%d: loss %.4f, accuracy %.2f%%, lr %.3g, %d steps (%d skipped), "
                         "%.0f utt/s, %.1f s, waiting for data %.0f%%", epoch, job.train.epochs, stats.loss,
                         100 * stats.accuracy, lr, stats.steps, stats.skipped,
                         stats.utterances / max(stats.seconds, 1e-9), stats.seconds, 100 * stats.data_wait)
                if stats.data_wait > DATA_WAIT_WARNING:
                    log.warning("epoch %d: the step waited for the DataLoader %.0f%% of the time; more workers "
                                "would train faster (--num-workers, now %d per process%s)", epoch,
                                100 * stats.data_wait, job.train.num_workers,
                                "" if job.train.batched_augment or not job.train.augment
                                else "; --batched-augment true moves the augmentation off them")
            _barrier(d)
            last = stats
        return last
