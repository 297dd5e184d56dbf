import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from spkid.config import parse_options, read_resolved
from spkid.data.datadir import DataDir
from spkid.data.dataset import build_train_data
from spkid.errors import SpkidError
from spkid.models import build_model
from spkid.options import SYSTEM_OPTIONS, EvalOptions, LossOptions, ModelOptions, TrainOptions
from spkid.data.synthetic import make_train_dir
from spkid.expdir import SystemDir
from spkid.train.checkpoints import checkpoint_path, load_latest_checkpoint
from spkid.train.ranks import Dist, Terminated
from spkid.train.system import RunOptions, train_system
from spkid.train.epoch import EpochStats
from two_process_run import TRAIN_SH, assert_same_weights, local_env
from spkid.train.losses import class_vectors
from spkid.train.trainer import DATA_WAIT_WARNING, TrainJob, Trainer, amp_dtype, nonfinite_grads

ROOT = Path(__file__).resolve().parents[1]
CPU = Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
TINY_MODEL = ["--trunk=Q_SAP", "--channels=4,8,8,8", "--n-mels=16", "--embed-dim=16"]
TINY_TRAIN = ["--train-frames=20", "--num-workers=0", "--augment=false", "--max-seg-per-spk=500"]

torch.set_num_threads(1)


def train_command(argv: list[str]) -> int:
    """A training run from the command line's options, as steps/train.py runs it."""
    args = parse_options([*SYSTEM_OPTIONS, RunOptions], argv, positional=["exp_dir"])
    return train_system(*args.of(SYSTEM_OPTIONS), args[RunOptions], args.positionals["exp_dir"], notes=args.replaced)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    make_train_dir(root, num_speakers=6, utts_per_speaker=4, seconds=(1.0, 2.0), seed=3)
    return root / "data" / "train"


def tiny_options(**train):
    model = ModelOptions(trunk="Q_SAP", channels="4,8,8,8", n_mels=16, embed_dim=16)
    t = TrainOptions(train_frames=20, num_workers=0, augment=False, batch_size=8, epochs=2, seed=5)
    for k, v in train.items():
        setattr(t, k, v)
    return model, t


# ---------------------------------------------------------------- checkpoints, RNG and epochs

def _draws():
    import random

    import numpy as np
    return random.random(), np.random.random(3).tolist(), torch.rand(3).tolist()


def test_checkpoint_restores_every_random_stream(tmp_path):
    """A resumed run continues the Python, NumPy and torch streams where the checkpoint left them."""
    model, train = tiny_options()
    job = TrainJob(model, LossOptions(loss="softmax"), train, EvalOptions(), tmp_path, quiet=True)
    trainer = Trainer(job, 6, CPU)
    torch.manual_seed(123)
    state = trainer.state_dict(trainer.gather_rng())
    after_save = _draws()
    _draws()
    trainer.load_state_dict(state)
    assert _draws() == after_save


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # the stub takes no step
def test_fit_gives_each_epoch_its_own_sampler_epoch(corpus, tmp_path, monkeypatch):
    """fit() moves the sampler to each epoch's plan (a fresh and rerun epoch see the epoch's batches),
    also when it starts after a checkpoint."""
    model, train = tiny_options(epochs=3, batch_size=6)
    data = build_train_data(DataDir.load(corpus), None, train, 1, 0, 1, CPU.device)
    job = TrainJob(model, LossOptions(loss="softmax"), train, EvalOptions(), tmp_path, quiet=True)
    (tmp_path / "checkpoints").mkdir()
    seen = []

    def epoch_plan(self, data, epoch):
        seen.append((epoch, data.sampler.global_batches()))
        return EpochStats(1.0, 0.0, 1, 0, 8, 1.0)

    monkeypatch.setattr(Trainer, "train_epoch", epoch_plan)
    trainer = Trainer(job, data.num_speakers, CPU)
    trainer.fit(data)
    assert [e for e, _ in seen] == [1, 2, 3]
    plans = [b for _, b in seen]
    assert plans[0] != plans[1] != plans[2]
    for e, plan in seen:
        data.set_epoch(e)
        assert plan == data.sampler.global_batches()
    resumed = Trainer(job, data.num_speakers, CPU)
    resumed.load_state_dict(torch.load(checkpoint_path(tmp_path, 1), weights_only=True))
    seen.clear()
    resumed.fit(data)
    assert [e for e, _ in seen] == [2, 3] and [b for _, b in seen] == plans[1:]


def test_amp_dtype_and_nonfinite_flag():
    assert amp_dtype(TrainOptions(amp="fp16"), torch.device("cpu")) is None
    assert amp_dtype(TrainOptions(amp="bf16"), torch.device("cuda", 0)) is torch.bfloat16
    assert amp_dtype(TrainOptions(amp="none"), torch.device("cuda", 0)) is None
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.tensor([1.0, 2.0, 3.0])
    assert nonfinite_grads([p]).item() == 0.0
    p.grad[1] = float("nan")
    assert nonfinite_grads([p]).item() == 1.0


# ---------------------------------------------------------------- the step

class ListData:
    """A stand-in for TrainData with fixed batches, to inject a non-finite batch."""

    def __init__(self, batches):
        self.batches = batches
        self.device_augment = None
        self.batches_per_epoch = len(batches)
        self.loader = batches

    def set_epoch(self, epoch, start=0):
        pass


def _batch(name: str, wave: torch.Tensor) -> dict:
    return {"wave": wave, "label": torch.tensor([0, 0, 1, 1]), "utts": [f"{name}-{i}" for i in range(4)]}


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
DEVICE_AMP = [("cpu", "none"), pytest.param("cuda", "fp16", marks=CUDA), pytest.param("cuda", "bf16", marks=CUDA)]


def _dist(device: str) -> Dist:
    return CPU if device == "cpu" else Dist(0, 1, 0, torch.device("cuda", 0))


@pytest.mark.parametrize("device,amp", DEVICE_AMP)
def test_nonfinite_loss_is_reported_and_skipped(tmp_path, caplog, device, amp):
    model, train = tiny_options(epochs=1, amp=amp)
    job = TrainJob(model, LossOptions(loss="ap_softmax"), train, EvalOptions(), tmp_path, log_interval=2, quiet=True)
    trainer = Trainer(job, num_speakers=2, d=_dist(device))
    g = torch.Generator().manual_seed(0)
    good = _batch("good", 0.1 * torch.randn(4, 3440, generator=g))
    poisoned = good["wave"].clone()
    poisoned[2, 100] = float("nan")
    bad = _batch("bad", poisoned)
    before = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    with caplog.at_level(logging.WARNING, logger="spkid.train"):
        stats = trainer.train_epoch(ListData([bad]), epoch=1)
    # Nothing moved: weights, BatchNorm statistics, Adam's step count.
    after = trainer.net.state_dict()
    for k, v in before.items():
        if k.endswith("num_batches_tracked"):
            continue
        assert torch.equal(v, after[k]), k
    assert all(int(s["step"]) == 0 for s in trainer.optimizer.state.values())
    assert stats.skipped == 1 and stats.steps == 1
    assert "non-finite loss" in caplog.text and "bad-0 bad-1 bad-2 bad-3" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="spkid.train"):
        stats = trainer.train_epoch(ListData([good, bad, good]), epoch=2)
    assert stats.steps == 3 and stats.skipped == 1
    if amp != "fp16":  # (fp16 may also skip a good step while the scaler finds its scale)
        assert all(int(s["step"]) == 2 for s in trainer.optimizer.state.values())
    assert all(torch.isfinite(v).all() for v in trainer.net.state_dict().values() if v.is_floating_point())
    assert "epoch 2 step 2: non-finite loss" in caplog.text and "bad-0" in caplog.text
    assert torch.isfinite(torch.tensor(stats.loss))


def _good_batches(n: int) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    return [_batch(f"good{i}", 0.1 * torch.randn(4, 3440, generator=g)) for i in range(n)]


@pytest.mark.parametrize("option", [dict(lr=float("inf")), dict(weight_decay=float("inf")),
                                    dict(lr_decay=float("nan"), lr_step=1)])
def test_diverged_weights_stop_training_without_blaming_utterances(tmp_path, caplog, option):
    # --lr=inf and the like skipped every later step as a "non-finite loss" of its utterances,
    # logged loss 0.0000, exited 0 and wrote checkpoints and a final.pt of NaN weights
    model, train = tiny_options(epochs=3, **option)
    job = TrainJob(model, LossOptions(loss="ap_softmax"), train, EvalOptions(), tmp_path, log_interval=2, quiet=True)
    trainer = Trainer(job, num_speakers=2, d=CPU)
    with caplog.at_level(logging.WARNING, logger="spkid.train"), pytest.raises(SpkidError) as e:
        trainer.fit(ListData(_good_batches(3)))
    msg = str(e.value)
    assert "weight tensors are NaN or infinite" in msg and "the optimiser diverged, no utterance is to blame" in msg
    assert "Lower --lr" in msg and f"--lr={train.lr:g} --weight-decay={train.weight_decay:g}" in msg
    assert "utterances:" not in caplog.text
    for path in tmp_path.rglob("*.pt"):  # whatever was saved before the divergence is finite
        state = torch.load(path, weights_only=True)
        assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point()), path
    with pytest.raises(SpkidError, match=r"final.pt not written: after epoch \d+: .* NaN or infinite"):
        trainer.save_final()
    assert not (tmp_path / "final.pt").exists()


def test_an_epoch_of_only_skipped_steps_stops_training(tmp_path):
    model, train = tiny_options(epochs=2)
    job = TrainJob(model, LossOptions(loss="ap_softmax"), train, EvalOptions(), tmp_path, log_interval=2, quiet=True)
    trainer = Trainer(job, num_speakers=2, d=CPU)
    bad = []
    for b in _good_batches(3):
        b["wave"][1, 7] = float("inf")
        bad.append(b)
    with pytest.raises(SpkidError, match=r"epoch 1: the loss was NaN or infinite at every one of its 3 steps.*"
                                         r"validate_data_dir.py --check-audio"):
        trainer.fit(ListData(bad))
    assert not list(tmp_path.rglob("*.pt"))


class SlowLoader:
    """Batches that each take ``delay`` seconds to arrive."""

    def __init__(self, batches, delay):
        self.batches, self.delay = batches, delay

    def __iter__(self):
        for b in self.batches:
            time.sleep(self.delay)
            yield b


def test_data_wait_is_measured_and_warned_about(tmp_path, caplog):
    model, train = tiny_options(epochs=1, num_workers=3)
    job = TrainJob(model, LossOptions(loss="softmax"), train, EvalOptions(), tmp_path, quiet=True)
    trainer = Trainer(job, num_speakers=2, d=CPU)
    g = torch.Generator().manual_seed(0)
    data = ListData([_batch(f"b{i}", 0.1 * torch.randn(4, 3440, generator=g)) for i in range(3)])
    data.loader = SlowLoader(data.batches, delay=0.5)
    with caplog.at_level(logging.INFO, logger="spkid.train"):
        stats = trainer.fit(data)
    # the three 0.5-s waits are measured (not the steps, however slow a loaded machine makes them)
    assert 1.5 <= stats.data_wait * stats.seconds < 1.5 + 0.4
    assert 0 < stats.data_wait < 1
    assert "waiting for data" in caplog.text
    # the advice comes exactly when the share passes the threshold (the share itself depends on how
    # fast this machine runs the steps: under load they can outweigh the waits)
    advised = "more workers would train faster (--num-workers, now 3 per process)" in caplog.text
    assert advised == (stats.data_wait > DATA_WAIT_WARNING)


@CUDA
@pytest.mark.parametrize("amp", ["fp16", "bf16", "none"])
@pytest.mark.parametrize("trunk,channels,loss", [("Q_SAP", "4,8,8,8", "ap_softmax"), ("H_ASP", "4,8,8,8", "aam_softmax"),
                                                 ("ECAPA", "32", "am_softmax")])
def test_cuda_step_does_not_synchronise(tmp_path, amp, trunk, channels, loss):
    model, train = tiny_options(amp=amp)
    model.trunk, model.channels = trunk, channels
    job = TrainJob(model, LossOptions(loss=loss), train, EvalOptions(), tmp_path, quiet=True)
    trainer = Trainer(job, num_speakers=2, d=_dist("cuda"))
    convs = [p for p in trainer.net.parameters() if p.dim() == 4]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    batch = {"wave": (0.1 * torch.randn(4, 3440)).pin_memory(), "label": torch.tensor([0, 0, 1, 1]).pin_memory(),
             "utts": ["a", "b", "c", "d"]}
    trainer.step(batch)  # warm-up: cuDNN autotuning, lazy optimizer and scaler state
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            loss_value, acc = trainer.step(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(loss_value).item() and 0 <= acc.item() <= 1


class _ScalarReads(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the operators that read a device value back to the host (a sync on CUDA)."""

    READS = {"_local_scalar_dense", "nonzero", "is_nonzero", "equal", "masked_select", "_unique2"}

    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in self.READS:
            self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("loss,scaler", [("ap_softmax", False), ("aam_softmax", True)])
def test_step_reads_nothing_back_from_the_device(tmp_path, loss, scaler):
    """The CPU half of test_cuda_step_does_not_synchronise, run everywhere: no operator of the
    step (front-end, trunk, loss, backward, the non-finite flag, fused Adam; with a gradient
    scaler under fp16 autocast too) reads a value back to the host."""
    model, train = tiny_options()
    job = TrainJob(model, LossOptions(loss=loss), train, EvalOptions(), tmp_path, quiet=True)
    trainer = Trainer(job, num_speakers=2, d=CPU)
    if scaler:
        trainer.amp_dtype, trainer.scaler = torch.float16, torch.amp.GradScaler("cpu")
    g = torch.Generator().manual_seed(0)
    trainer.step(_batch("warm", 0.1 * torch.randn(4, 3440, generator=g)))  # lazy optimizer and scaler state
    with _ScalarReads() as reads:
        trainer.step(_batch("a", 0.1 * torch.randn(4, 3440, generator=g)))
    assert reads.seen == []


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compile_mode_reaches_torch_compile(tmp_path, monkeypatch, mode):
    seen = []

    def fake_compile(module, **kw):
        seen.append(kw)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    model, train = tiny_options(compile=True, compile_mode=mode)
    job = TrainJob(model, LossOptions(loss="softmax"), train, EvalOptions(), tmp_path, quiet=True)
    trainer = Trainer(job, num_speakers=2, d=CPU)
    assert seen == [{"mode": mode}]
    assert not trainer.cuda_graphs  # CUDA graphs only on CUDA
    loss, _ = trainer.step(_batch("a", 0.1 * torch.randn(4, 3440)))
    assert torch.isfinite(loss)


@CUDA
def test_cuda_graph_step_matches_eager(tmp_path):
    """--compile-mode reduce-overhead: the same losses as the eager step, and outputs that
    survive the next replay."""
    g = torch.Generator().manual_seed(0)
    batches = [_batch(f"b{i}", 0.1 * torch.randn(4, 3440, generator=g)) for i in range(4)]
    losses = {}
    for mode in ("eager", "reduce-overhead"):
        model, train = tiny_options(amp="none", compile=mode != "eager",
                                    compile_mode="default" if mode == "eager" else mode)
        job = TrainJob(model, LossOptions(loss="softmax"), train, EvalOptions(), tmp_path / mode, quiet=True)
        trainer = Trainer(job, num_speakers=2, d=_dist("cuda"))
        assert trainer.cuda_graphs == (mode != "eager")
        losses[mode] = torch.stack([trainer.step(b)[0] for b in batches]).cpu()
    torch.testing.assert_close(losses["reduce-overhead"], losses["eager"], rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_loss_decreases(corpus, tmp_path):
    """200 steps of a tiny model on six tone-like speakers lower the loss well below chance."""
    model, train = tiny_options(epochs=50, batch_size=6, lr=0.005)
    model.n_mels = 32
    data = build_train_data(DataDir.load(corpus), None, train, 1, 0, 1, CPU.device)
    job = TrainJob(model, LossOptions(loss="softmax"), train, EvalOptions(), tmp_path, quiet=True)
    trainer = Trainer(job, data.num_speakers, CPU)
    losses, accs, steps = [], [], 0
    for epoch in range(1, train.epochs + 1):
        data.set_epoch(epoch)
        stats = trainer.train_epoch(data, epoch)
        losses.append(stats.loss)
        accs.append(stats.accuracy)
        steps += stats.steps
    assert steps >= 200
    assert sum(losses[:5]) / 5 > 1.7  # ~ln 6 at the start
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5, losses
    assert sum(accs[-5:]) / 5 > 0.4, accs  # chance is 1/6


# ---------------------------------------------------------------- a run from the command line

def _run_train(corpus: Path, exp: Path, *extra: str) -> None:
    rc = train_command([*TINY_MODEL, *TINY_TRAIN, "--loss=ap_softmax", "--batch-size=8", "--seed=7",
                          "--lr-step=1", "--lr-decay=0.5", f"--train-data={corpus}", "--quiet=true",
                          "--log-interval=3", *extra, str(exp)])
    assert rc == 0


def test_one_writer_per_experiment_and_options_checked_before_writing(corpus, tmp_path):
    # two trainings of one exp dir both trained (interleaved log, config.conf of one model and
    # final.pt of the other); options were compared only when checkpoints existed
    from spkid.fileio import writer_lock

    exp = tmp_path / "exp"
    with writer_lock(exp, "training elsewhere"):
        with pytest.raises(SpkidError, match=rf"{exp} is in use by PID {os.getpid()} on .*training elsewhere"):
            _run_train(corpus, exp, "--epochs=1")
    assert sorted(p.name for p in exp.iterdir()) == [".lock"]  # nothing else written

    model, train = tiny_options(lr=0.01)
    from spkid.config import write_resolved
    write_resolved(exp / "config.conf", model, LossOptions(), train, EvalOptions())
    (exp / "final.pt").write_bytes(b"a model trained with --lr=0.01")
    before = (exp / "config.conf").read_text()
    with pytest.raises(SpkidError, match=rf"{exp} holds a model trained with other options .*--lr: 0.01 -> 0.001"):
        _run_train(corpus, exp, "--epochs=1")
    assert (exp / "config.conf").read_text() == before and not (exp / "log").exists()


def test_training_records_the_lists_it_read_and_a_changed_one_is_named(corpus, tmp_path):
    """Stage 3's provenance: exp/<SYS>/provenance.json holds final.pt's and the training lists'
    digests; once a list changes, utils/check_provenance.py (what run.sh asks before it skips a
    trained system or extracts with it) names the list."""
    import hashlib
    import shutil
    import subprocess
    import sys

    from spkid.expdir import Record

    data = tmp_path / "data"
    shutil.copytree(corpus, data)
    exp = tmp_path / "exp"
    _run_train(data, exp, "--epochs=1")
    record = Record.load(exp)
    assert record.stage == 3 and record.problems() == [] and set(record.outputs) == {"final.pt"}
    assert record.inputs["train wav.scp"]["sha256"] == hashlib.sha256((data / "wav.scp").read_bytes()).hexdigest()
    assert set(record.inputs) == {"train wav.scp", "train utt2spk"}
    lines = (data / "wav.scp").read_text().splitlines()
    (data / "wav.scp").write_text("\n".join(lines[:-1]) + "\n")  # an utterance dropped after training
    check = Path(__file__).resolve().parent.parent / "utils" / "check_provenance.py"
    p = subprocess.run([sys.executable, str(check), str(exp)], capture_output=True, text=True)
    assert p.returncode == 3 and "wav.scp" in p.stderr, p.stderr


def test_resume_gives_the_same_weights(corpus, tmp_path, capsys):
    _run_train(corpus, tmp_path / "straight", "--epochs=2")
    _run_train(corpus, tmp_path / "resumed", "--epochs=1")
    assert not (tmp_path / "resumed" / "checkpoints" / "epoch_0002.pt").exists()
    _run_train(corpus, tmp_path / "resumed", "--epochs=2")
    out = capsys.readouterr().out
    assert "epoch 2 of 2" in out and "final.pt" in out

    a = torch.load(tmp_path / "straight" / "checkpoints" / "epoch_0002.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoints" / "epoch_0002.pt", weights_only=True)
    for part in ("model", "loss"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    assert a["scheduler"] == b["scheduler"] and a["scheduler"]["_last_lr"] == [0.00025]
    for s, t in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(s["exp_avg_sq"], t["exp_avg_sq"])
    assert "resuming after epoch 1" in (tmp_path / "resumed" / "log" / "train.log").read_text()

    # final.pt loads into the model that config.conf describes.
    final = torch.load(tmp_path / "resumed" / "final.pt", weights_only=True)
    assert final["epoch"] == 2 and final["num_speakers"] == 6
    model_opts = read_resolved(tmp_path / "resumed" / "config.conf", SYSTEM_OPTIONS)[0]
    build_model(model_opts).load_state_dict(final["model"])

    # A finished run is not retrained; a changed option is refused, naming it and the fix.
    _run_train(corpus, tmp_path / "resumed", "--epochs=2")
    assert "nothing left to train" in capsys.readouterr().out
    with pytest.raises(SpkidError, match=r"--lr: 0.001 -> 0.002.*--config .*config.conf"):
        _run_train(corpus, tmp_path / "resumed", "--epochs=3", "--lr=0.002")


def test_average_last_keeps_and_averages_the_last_epochs(corpus, tmp_path, capsys):
    """--average-last 4 with --keep-checkpoints 2: four checkpoints kept, final.pt their mean."""
    exp = tmp_path / "avg"
    _run_train(corpus, exp, "--epochs=5", "--average-last=4", "--keep-checkpoints=2")
    kept = sorted(p.name for p in (exp / "checkpoints").glob("epoch_*.pt"))
    assert kept == [f"epoch_{e:04d}.pt" for e in (2, 3, 4, 5)]
    final = torch.load(exp / "final.pt", weights_only=True)["model"]
    states = [torch.load(exp / "checkpoints" / k, weights_only=True)["model"] for k in kept]
    for k, v in final.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, sum(s[k] for s in states) / 4)
    # a finished run asked for another average rewrites final.pt from the kept checkpoints
    _run_train(corpus, exp, "--epochs=5", "--average-last=2", "--keep-checkpoints=2")
    final2 = torch.load(exp / "final.pt", weights_only=True)["model"]
    k = next(k for k, v in final.items() if v.is_floating_point())
    torch.testing.assert_close(final2[k], (states[2][k] + states[3][k]) / 2)
    with pytest.raises(SpkidError, match="--average-last 6 needs at least that many epochs"):
        _run_train(corpus, tmp_path / "x", "--epochs=5", "--average-last=6")



def _same_state(a: dict, b: dict) -> None:
    for part in ("model", "loss"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)


def test_sigterm_mid_epoch_saves_the_step_and_the_rerun_resumes_it_bit_for_bit(corpus, tmp_path, monkeypatch):
    """SIGTERM in epoch 2's fourth step: that step ends, interrupted.pt holds it, the run stops
    (Terminated, like Ctrl-C); the same command resumes there and its final.pt, checkpoints and
    epoch figures are those of an uninterrupted run."""
    _run_train(corpus, tmp_path / "straight", "--epochs=3", "--batch-size=4")
    exp = tmp_path / "stopped"
    step = Trainer.step
    calls = []

    def signalled_step(self, batch, device_augment=None):
        calls.append(1)
        if len(calls) == 6 + 4:  # 6 steps an epoch (24 utterances, batches of 4)
            os.kill(os.getpid(), signal.SIGTERM)
        return step(self, batch, device_augment)

    monkeypatch.setattr(Trainer, "step", signalled_step)
    with pytest.raises(Terminated, match="SIGTERM: stopped in epoch 2 after step 4 and saved it"):
        _run_train(corpus, exp, "--epochs=3", "--batch-size=4")
    monkeypatch.setattr(Trainer, "step", step)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the run's handler is gone with it
    stopped = torch.load(SystemDir(exp).interrupted, weights_only=True)
    assert (stopped["epoch"], stopped["step"]) == (1, 4)
    assert "run the same command to resume from " + str(SystemDir(exp).interrupted) in (exp / "log" / "train.log").read_text()

    _run_train(corpus, exp, "--epochs=3", "--batch-size=4")
    assert not SystemDir(exp).interrupted.exists()
    log = (exp / "log" / "train.log").read_text()
    assert f"resuming after epoch 1 and step 4 of epoch 2 from {SystemDir(exp).interrupted}" in log
    for name in ("checkpoints/epoch_0002.pt", "checkpoints/epoch_0003.pt", "final.pt"):
        _same_state(torch.load(tmp_path / "straight" / name, weights_only=True), torch.load(exp / name, weights_only=True))
    figures = [line.split("epoch 2/3: ")[1].split(", lr")[0] for line in log.splitlines() if "epoch 2/3: " in line]
    straight = [line.split("epoch 2/3: ")[1].split(", lr")[0]
                for line in (tmp_path / "straight" / "log" / "train.log").read_text().splitlines() if "epoch 2/3: " in line]
    assert figures == straight and len(figures) == 1  # the epoch's loss and accuracy over all its steps


def test_an_interrupted_checkpoint_older_than_an_epoch_checkpoint_is_not_resumed(corpus, tmp_path):
    """A run killed between writing epoch N+1 and removing interrupted.pt resumes from epoch N+1;
    and one asked for no more epochs than interrupted.pt had finished ends at an epoch's end."""
    exp = tmp_path / "exp"
    _run_train(corpus, exp, "--epochs=2")
    state = torch.load(checkpoint_path(exp, 1), weights_only=True)
    torch.save({**state, "step": 1, "figures": {}}, SystemDir(exp).interrupted)
    assert load_latest_checkpoint(exp)["path"] == str(checkpoint_path(exp, 2))
    torch.save({**state, "epoch": 2, "step": 1, "figures": {}}, SystemDir(exp).interrupted)
    assert load_latest_checkpoint(exp, epochs=3)["path"] == str(SystemDir(exp).interrupted)
    assert load_latest_checkpoint(exp, epochs=2)["path"] == str(checkpoint_path(exp, 2))


def _weights(path: Path, part: str) -> dict:
    return torch.load(path, weights_only=True)[part]


def test_init_from_loads_the_network_and_a_matching_head(corpus, tmp_path):
    """--init-from: the network always; the head when loss and speaker count match, fresh
    otherwise, with a log line saying which; resuming wins over it."""
    base = tmp_path / "base"
    _run_train(corpus, base, "--epochs=1")
    # lr 0: an epoch changes only BatchNorm statistics, so the start is visible in final.pt
    _run_train(corpus, tmp_path / "same", "--epochs=1", "--lr=0", f"--init-from={base}")
    start, end = _weights(base / "final.pt", "model"), _weights(tmp_path / "same" / "final.pt", "model")
    for k, v in start.items():
        if "running_" not in k and "num_batches" not in k:
            assert torch.equal(v, end[k]), k
    head, head2 = _weights(base / "final.pt", "loss"), _weights(tmp_path / "same" / "final.pt", "loss")
    assert all(torch.equal(head[k], head2[k]) for k in head)
    log_text = (tmp_path / "same" / "log" / "train.log").read_text()
    assert f"init from {base / 'final.pt'}: network and ap_softmax loss head (6 speakers) loaded" in log_text
    assert (tmp_path / "same" / "initialised_from").read_text() == f"{base.resolve()}\n"  # for the results table
    assert not (base / "initialised_from").exists()

    # another speaker count: the head starts fresh, and the log says why
    other = torch.load(base / "final.pt", weights_only=True)
    other["loss"]["softmax.fc.weight"] = torch.zeros(5, 16)
    other["loss"]["softmax.fc.bias"] = torch.zeros(5)
    other["num_speakers"] = 5
    torch.save(other, tmp_path / "five.pt")
    _run_train(corpus, tmp_path / "fresh", "--epochs=1", "--lr=0", f"--init-from={tmp_path / 'five.pt'}")
    assert "ap_softmax loss head fresh (its head is over 5 speakers, this run's over 6)" in \
        (tmp_path / "fresh" / "log" / "train.log").read_text()
    assert not torch.equal(_weights(tmp_path / "fresh" / "final.pt", "loss")["softmax.fc.weight"][:5], torch.zeros(5, 16))

    # resuming wins: the run's own checkpoint, not the (here missing) --init-from file
    _run_train(corpus, tmp_path / "same", "--epochs=2", "--lr=0", f"--init-from={tmp_path / 'gone.pt'}")
    assert "(not from --init-from" in (tmp_path / "same" / "log" / "train.log").read_text()
    with pytest.raises(SpkidError, match=r"--init-from .*final.pt: its network is not the one these options build"):
        _run_train(corpus, tmp_path / "wide", "--epochs=1", "--channels=4,8,8,16", f"--init-from={base}")


def test_large_margin_fine_tuning_starts_from_the_softmax_class_vectors(corpus, tmp_path):
    """conf/lm.conf on an AP+softmax system: the AAM head starts on its softmax weight rows, also
    from a final.pt that holds no head (the newest checkpoint's head is used)."""
    base = tmp_path / "base"
    _run_train(corpus, base, "--epochs=1")
    vectors = _weights(base / "final.pt", "loss")["softmax.fc.weight"]
    old = torch.load(base / "final.pt", weights_only=True)
    del old["loss"]
    torch.save(old, base / "final.pt")  # as final.pt was written before it held the head
    _run_train(corpus, tmp_path / "lm", "--epochs=1", "--lr=0", "--loss=aam_softmax", "--margin=0.5", "--batch-size=6",
               f"--init-from={base}")
    assert torch.equal(_weights(tmp_path / "lm" / "final.pt", "loss")["weight"], vectors)
    assert "aam_softmax loss head on its classifier's class vectors" in \
        (tmp_path / "lm" / "log" / "train.log").read_text()
    state = {"weight": torch.zeros(6, 16)}
    assert class_vectors({"fc.weight": torch.ones(5, 16)}, state) is None  # other speakers
    assert class_vectors({"w": torch.ones(1)}, state) is None  # AP: no class vectors


def test_one_epoch_from_an_imported_model(corpus, tmp_path):
    """A voxceleb_trainer ResNetSE34V2 + softmaxproto checkpoint, imported, trains one epoch from
    its weights with its config.conf (loss head kept: six speakers, as the training data)."""
    from source_checkpoints import vt_checkpoint, vt_head, vt_resnet
    from spkid.models.imports import ImportOptions, import_model

    torch.save(vt_checkpoint(vt_resnet("V2", (8, 8, 16, 16), 16, n_out=16), vt_head("softmaxproto", 16, classes=6)),
               tmp_path / "v2.model")
    defaults = [cls() for cls in SYSTEM_OPTIONS]  # nothing given: the file's own options
    assert import_model(str(tmp_path / "v2.model"), str(tmp_path / "VT"), defaults, ImportOptions(), set()) == 0
    exp = tmp_path / "VT_ft"
    rc = train_command(["--config", str(tmp_path / "VT" / "config.conf"), *TINY_TRAIN, "--batch-size=8",
                        "--epochs=1", f"--train-data={corpus}", "--quiet=true", f"--init-from={tmp_path / 'VT'}",
                        str(exp)])
    assert rc == 0
    log_text = (exp / "log" / "train.log").read_text()
    assert "network and ap_softmax loss head (6 speakers) loaded" in log_text and "epoch 1 of 1" in log_text
    start, end = _weights(tmp_path / "VT" / "final.pt", "model"), _weights(exp / "final.pt", "model")
    assert not torch.equal(start["trunk.fc.weight"], end["trunk.fc.weight"])  # it trained
    assert torch.equal(start["frontend.logmel.mel.mel_scale.fb"], end["frontend.logmel.mel.mel_scale.fb"])


def test_missing_train_data_is_an_error(tmp_path):
    with pytest.raises(SpkidError, match="--train-data"):
        train_command([str(tmp_path / "exp")])


# ---------------------------------------------------------------- DDP via steps/train.sh

def _train_sh(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = local_env()
    return subprocess.run([str(ROOT / "steps" / "train.sh"), *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_train_sh_checks_its_options(tmp_path):
    r = _train_sh("--gpus", "two", str(tmp_path))
    assert r.returncode != 0 and "--gpus takes a whole number" in r.stderr
    r = _train_sh("--nnodes", "2", "--node-rank", "2", str(tmp_path))
    assert r.returncode != 0 and "--node-rank 2 is not below --nnodes 2" in r.stderr
    r = _train_sh("--help")
    assert r.returncode == 0 and "--cpu-procs" in r.stderr


@pytest.mark.slow
def test_two_process_ddp(corpus, tmp_path):
    exp = tmp_path / "exp"
    r = _train_sh("--cpu-procs", "2", *TINY_MODEL, *TINY_TRAIN, "--loss=ap", "--batch-size=8", "--epochs=2",
                  "--log-utts=true", "--quiet=true", f"--train-data={corpus}", str(exp))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "epochs 1-2 of 2" in r.stdout
    # 6 speakers x 4 utterances, batches of 8 (4 per rank): 3 steps an epoch, counted once
    assert "epoch 2/2:" in (exp / "log" / "train.log").read_text()
    assert ", 3 steps (0 skipped), " in (exp / "log" / "train.log").read_text()
    seen = {}
    for rank in (0, 1):
        for line in (exp / "log" / f"utts.rank{rank}.txt").read_text().splitlines():
            epoch, utt = line.split()
            seen.setdefault((int(epoch), rank), []).append(utt)
    for epoch in (1, 2):
        r0, r1 = seen[(epoch, 0)], seen[(epoch, 1)]
        assert r0 and len(r0) == len(r1)
        # Disjoint ranks, and no utterance twice in one epoch (crops of one utterance are one draw).
        assert not set(r0) & set(r1)
        assert len(set(r0) | set(r1)) == len(r0) + len(r1)
    state = torch.load(exp / "checkpoints" / "epoch_0002.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])
    assert (exp / "final.pt").is_file() and (exp / "log" / "train.log").is_file()
    # both ranks resume from the checkpoint rank 0 picks
    r = _train_sh("--cpu-procs", "2", *TINY_MODEL, *TINY_TRAIN, "--loss=ap", "--batch-size=8", "--epochs=3",
                  "--quiet=true", f"--train-data={corpus}", str(exp))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "epoch 3 of 3" in r.stdout
    assert "resuming after epoch 2 from" in (exp / "log" / "train.log").read_text()


@pytest.mark.slow
def test_an_error_on_one_rank_stops_all_with_its_line(corpus, tmp_path):
    """A wav only rank 1 reads is corrupt: rank 1's error, naming the utterance, is printed and
    in its log; rank 0, whose collective lost its peer, says so in one line (no traceback)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for name in ("utt2spk", "spk2utt", "utt2dur", "wav.scp"):
        (data_dir / name).write_text((corpus / name).read_text())
    model, train = tiny_options(batch_size=8, seed=7, max_seg_per_spk=500)
    rank1 = build_train_data(DataDir.load(data_dir), None, train, 2, 1, 2, CPU.device)
    rank1.set_epoch(1)
    utt = rank1.dataset.utts[next(iter(rank1.sampler))[0][0]]
    wav = tmp_path / "broken.wav"
    wav.write_bytes(b"not a wav file" * 10)
    scp = DataDir.load(data_dir).wav_scp
    (data_dir / "wav.scp").write_text("".join(f"{u} {wav if u == utt else e}\n" for u, e in sorted(scp.items())))
    exp = tmp_path / "exp"
    r = _train_sh("--cpu-procs", "2", *TINY_MODEL, *TINY_TRAIN, "--loss=ap", "--batch-size=8", "--seed=7", "--epochs=1",
                  "--quiet=true", f"--train-data={data_dir}", str(exp), timeout=120)
    assert r.returncode != 0
    assert f"train.py: error: utterance '{utt}'" in r.stderr
    assert f"utterance '{utt}'" in (exp / "log" / "train.rank1.log").read_text()
    assert "[rank0]: Traceback" not in r.stderr, r.stderr[-3000:]


def _descendant(root: int, env_line: str) -> int | None:
    """The pid of a descendant of ``root`` whose environment holds ``env_line`` (e.g. RANK=1)
    (torchrun starts its workers in sessions of their own)."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
    for pid in parent:
        ancestor = pid
        while ancestor in parent and ancestor != root:
            ancestor = parent[ancestor]
        try:
            if ancestor == root and env_line.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                return pid
        except OSError:
            continue
    return None


@pytest.mark.slow
def test_sigterm_to_one_rank_stops_both_after_one_step_and_the_rerun_resumes_it(two_process_run, tmp_path):
    """torchrun, two ranks with a DataLoader worker each: SIGTERM reaches rank 1 only (its
    workers and rank 0 never see it); both ranks stop after the same step, interrupted.pt holds
    it, and the re-run's final.pt is the uninterrupted run's."""
    exp = tmp_path / "stopped"
    command = [TRAIN_SH, "--cpu-procs", "2", *two_process_run.options, str(exp)]
    proc = subprocess.Popen(command, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=local_env())
    try:
        log = exp / "log" / "train.log"
        deadline = time.monotonic() + 120
        while not (log.is_file() and "epoch 1 step 1:" in log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(_descendant(proc.pid, "RANK=1"), signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0, err[-3000:]
    stopped = torch.load(SystemDir(exp).interrupted, weights_only=True)
    assert stopped["world_size"] == 2 and len(stopped["rng"]) == 2 and not (exp / "final.pt").exists()
    assert "SIGTERM on another rank: stopped in epoch" in log.read_text()  # rank 0 had no signal
    r = subprocess.run(command, env=local_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"and step {stopped['step']} of epoch {stopped['epoch'] + 1} from {SystemDir(exp).interrupted}" in log.read_text()
    assert_same_weights(two_process_run.exp / "final.pt", exp / "final.pt")



def test_a_wav_scp_command_is_refused_before_training_naming_file_and_line(corpus, tmp_path):
    # training has no --allow-pipes: a 'cmd |' entry was refused mid-epoch by utterance, if at all
    data = tmp_path / "train"
    shutil.copytree(corpus, data)
    lines = (data / "wav.scp").read_text().splitlines()
    pwned = tmp_path / "PWNED"
    lines[2] = f"{lines[2].split()[0]} touch {pwned}; cat {lines[2].split()[1]} |"
    (data / "wav.scp").write_text("\n".join(lines) + "\n")
    with pytest.raises(SpkidError, match=rf"^{data}/wav.scp:3: utterance '.*' is a shell command"):
        _run_train(data, tmp_path / "exp")
    assert not pwned.exists()
