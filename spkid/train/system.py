"""One training run of a system, as ``steps/train.py`` starts it: its run options, the checks
of the command line, the saved config.conf (a resumed run must match it), the data, the
trainer resumed from the newest checkpoint, the final model, and the way a run stops (an
error into the rank's log, a lost peer, SIGTERM or Ctrl-C naming the checkpoint to resume from)."""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from spkid.config import option, write_resolved
from spkid.data.augment import AUG_DIRS, RIR_DIR
from spkid.data.datadir import DataDir
from spkid.data.dataset import TrainData, build_train_data
from spkid.errors import SpkidError, error_message
from spkid.expdir import Record, SystemDir
from spkid.fileio import writer_lock
from spkid.options import EvalOptions, LossOptions, ModelOptions, TrainOptions, n_per_speaker
from spkid.train.checkpoints import config_differences, load_init_weights, load_resume_checkpoint, newest_checkpoint
from spkid.train.ranks import Dist, StopSignal, barrier, close_distributed, init_distributed, peer_lost
from spkid.train.trainer import TrainJob, Trainer, log, setup_logging


@dataclass
class RunOptions:
    train_data: str = option("", "training data dir (wav.scp, utt2spk, spk2utt, utt2dur)")
    aug_data: str = option("", "data root holding musan_noise, musan_music, musan_speech and rirs (used with --augment true)")
    device: str = option("auto", "auto (CUDA when present), cuda or cpu; steps/train.sh sets it from --gpus", ("auto", "cuda", "cpu"))
    log_interval: int = option(50, "steps between progress updates (the only points where the host waits for the device)", min=1)
    keep_checkpoints: int = option(3, "keep the newest N epoch checkpoints (0 = all)", min=0)
    log_utts: bool = option(False, "debug: append the utterance ids each rank trains on to log/utts.rank<R>.txt")
    quiet: bool = option(False, "no progress bar or per-epoch console lines (the log file still has them)")
    init_from: str = option("", "start from these weights: a final.pt (trained, or imported by steps/import_model.py) or its system dir; the network always, the loss head when its loss and speaker count match this run's (a log line says which); a run with checkpoints resumes from them instead")


def train_system(model: ModelOptions, loss: LossOptions, train: TrainOptions, evaluation: EvalOptions,
                 run: RunOptions, exp_dir: str | Path, notes: Sequence[str] = ()) -> int:
    """Train the system into ``exp_dir`` (resuming there); 0 when done. ``notes`` (the values one
    conf replaced in another, ``Args.replaced``) go to the log and the console."""
    _check_run_options(train, run)
    exp = Path(exp_dir)
    system = [model, loss, train, evaluation]
    stop = StopSignal()
    previous_handler = stop.install()
    d = init_distributed(run.device)
    try:
        with contextlib.ExitStack() as held, _stop_reported(exp, d) as report:
            if d.is_main:  # one writer per experiment, and its options checked before anything is written
                held.enter_context(writer_lock(exp, f"training {exp}"))
                _check_same_options(exp, system)
            barrier(d)
            setup_logging(exp, d, run.quiet)
            report.to_exp = True
            if d.is_main:
                for note in notes:
                    log.info("note: %s", note)
                write_resolved(SystemDir(exp).config, *system, header=f"written by steps/train.py for {exp}")
            trainer, data = _resumed_trainer(model, loss, train, evaluation, run, exp, d, stop)
            _train_to_the_end(trainer, data, exp, _training_lists(run, train))
    finally:
        close_distributed()
        signal.signal(signal.SIGTERM, previous_handler)
    return 0


def _check_run_options(train: TrainOptions, run: RunOptions) -> None:
    if not run.train_data:
        raise SpkidError("--train-data is required (a data dir such as data/vox2_dev)")
    if train.augment and not run.aug_data:
        raise SpkidError("--augment true needs --aug-data (the data root holding musan_* and rirs), "
                         "or set --augment false")
    if train.average_last > train.epochs:
        raise SpkidError(f"--average-last {train.average_last} needs at least that many epochs, not --epochs {train.epochs}")


def _resumed_trainer(model: ModelOptions, loss: LossOptions, train: TrainOptions, evaluation: EvalOptions,
                     run: RunOptions, exp: Path, d: Dist, stop: StopSignal) -> tuple[Trainer, TrainData]:
    """This rank's data, and the trainer resumed from the newest checkpoint, or started from
    ``--init-from`` (recorded in exp/<SYS>/initialised_from), or from scratch."""
    data_dir = DataDir.load(run.train_data)
    aug_dir = Path(run.aug_data) if train.augment else None
    data = build_train_data(data_dir, aug_dir, train, n_per_speaker(loss, train), d.rank, d.world_size, d.device)
    job = TrainJob(model, loss, train, evaluation, exp, log_interval=run.log_interval,
                   keep_checkpoints=run.keep_checkpoints, log_utts=run.log_utts, quiet=run.quiet)
    trainer = Trainer(job, data.num_speakers, d, stop)
    state = load_resume_checkpoint(exp, d, train.epochs)
    if state is not None:
        trainer.load_state_dict(state)
        log.info("resuming after epoch %d%s from %s%s", trainer.epoch,
                 f" and step {state['step']} of epoch {trainer.epoch + 1}" if "step" in state else "", state["path"],
                 f" (not from --init-from {run.init_from})" if run.init_from else "")
    elif run.init_from:
        trainer.init_weights(load_init_weights(run.init_from))
        if d.is_main:  # the results table says where a fine-tuned system started
            SystemDir(exp).record_initialised_from(run.init_from)
    log.info("training %s: %s, %s loss, %d speakers, %d batches/epoch, %d process(es) on %s",
             exp, model.trunk, loss.loss, data.num_speakers, data.batches_per_epoch, d.world_size, d.device)
    return trainer, data


def _training_lists(run: RunOptions, train: TrainOptions) -> dict[str, Path]:
    """The lists training read, by role: the training set's, and the augmentation sets' when it
    augments (their packed banks are made from these lists by stage 2)."""
    dirs = {"train": Path(run.train_data)}
    if train.augment:
        dirs.update({name: Path(run.aug_data) / name for name in (*AUG_DIRS.values(), RIR_DIR)})
    return {f"{role} {name}": d / name for role, d in dirs.items() for name in ("wav.scp", "utt2spk", "segments")
            if (d / name).is_file()}


def _train_to_the_end(trainer: Trainer, data: TrainData, exp: Path, lists: dict[str, Path]) -> None:
    """Train the epochs left, then (rank 0) write final.pt and the record of what it was trained
    on (``provenance.json``: stage 4 and run.sh refuse a model whose training lists changed since),
    and say what was done, in the log and on stdout."""
    first = trainer.epoch + 1
    start = time.time()
    stats = trainer.fit(data)
    if not trainer.d.is_main:
        return
    final = trainer.save_final()
    Record.made_from(exp, 3, f"./run.sh --stage 3 --stop-stage 3 --systems {exp.name} --force true", lists).write([final])
    epochs = trainer.job.train.epochs
    if stats is None:
        summary = f"nothing left to train (epoch {trainer.epoch} of {epochs} done)"
    else:
        done = f"epoch {first}" if first == trainer.epoch else f"epochs {first}-{trainer.epoch}"
        summary = (f"{done} of {epochs} in {time.time() - start:.1f} s; "
                   f"last epoch loss {stats.loss:.4f}, accuracy {100 * stats.accuracy:.2f}%")
    log.info("train.py: %s: %s; model in %s", exp, summary, final, extra={"file_only": True})
    print(f"train.py: {exp}: {summary}; model in {final}", flush=True)


@dataclass
class _Logging:
    to_exp: bool = False  # the run's own log is set up (a run refused beside another never writes to its log)


@contextlib.contextmanager
def _stop_reported(exp: Path, d: Dist):
    """How a run that stops early says so: its error into log/train[.rank<R>].log too (on a
    cluster that is where one looks); a lost peer as one line naming the logs; SIGTERM or Ctrl-C
    naming the checkpoint to resume from."""
    report = _Logging()
    try:
        yield report
    except SpkidError as e:
        if report.to_exp:
            log.error("%s", error_message(e), extra={"file_only": True})
        raise
    except RuntimeError as e:
        if d.world_size > 1 and peer_lost(e):
            raise SpkidError(f"rank {d.rank} stopped: another rank failed or was killed (its error, if it "
                             f"printed one, is above and in {SystemDir(exp).log}/train.log or train.rank<R>.log); "
                             f"fix it and run the same command to resume") from None
        raise
    except KeyboardInterrupt as e:
        if d.is_main:
            log.warning("%s: run the same command to resume from %s", e or "interrupted",
                        newest_checkpoint(exp) or "the start (no checkpoint yet)")
        raise


def _check_same_options(exp: Path, system: list) -> None:
    """A directory holding a trained model (checkpoints or final.pt, not only checkpoints) is
    resumed only with the options it was trained with."""
    layout = SystemDir(exp)
    conf = layout.config
    trained = newest_checkpoint(exp) is not None or layout.final.is_file()
    if not (conf.is_file() and trained):
        return
    diffs = config_differences(conf, system)
    if diffs:
        raise SpkidError(
            f"{exp} holds a model trained with other options ({conf}); differing: "
            f"{'; '.join(diffs)}. To resume, run with the options of {conf} "
            f"(e.g. --config {conf}); to train anew, use another experiment directory or remove "
            f"{layout.checkpoints} and {layout.final}")
