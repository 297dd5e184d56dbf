"""bench/datapipe_common.py: the timed training loop measures the loader's steady state."""

import os
import subprocess
import time
from pathlib import Path

import pytest
import torch

from bench.datapipe_common import UTTS_PER_SPEAKER, loader_backlog, synthetic_speakers, time_training
from spkid.options import EvalOptions, LossOptions, ModelOptions, TrainOptions
from spkid.data.sampler import SpeakerBatchSampler
from spkid.train.trainer import TrainJob

torch.set_num_threads(1)


class QueuedLoader:
    """A DataLoader as the timed steps find it after the warm-up: ``num_workers x
    prefetch_factor`` batches (and the warm-up's own) already waiting, each later one taking
    ``delay`` seconds, as from workers that cannot keep up with the step."""

    num_workers, prefetch_factor = 2, 2

    def __init__(self, batches: list[dict], ready: int, delay: float):
        self.batches, self.ready, self.delay = batches, ready, delay

    def __iter__(self):
        for i, b in enumerate(self.batches):
            if i >= self.ready:
                time.sleep(self.delay)
            yield b


class QueuedData:
    num_speakers = 2
    device_augment = None

    def __init__(self, loader: QueuedLoader):
        self.loader = loader
        self.batches_per_epoch = len(loader.batches)

    def set_epoch(self, epoch, start=0):
        pass


def test_timed_steps_wait_for_a_slow_loader_not_for_its_queue(tmp_path):
    warmup, steps = 1, 3
    g = torch.Generator().manual_seed(0)
    batches = [{"wave": 0.1 * torch.randn(4, 3440, generator=g), "label": torch.tensor([0, 0, 1, 1]),
                "utts": [f"u{i}-{k}" for k in range(4)]} for i in range(10)]
    loader = QueuedLoader(batches, ready=warmup + loader_backlog(QueuedLoader), delay=0.3)
    model = ModelOptions(trunk="Q_SAP", channels="4,8,8,8", n_mels=16, embed_dim=16)
    train = TrainOptions(train_frames=20, num_workers=2, augment=False, batch_size=4, seed=5)
    job = TrainJob(model, LossOptions(loss="softmax"), train, EvalOptions(), tmp_path, quiet=True)
    rate, wait = time_training(QueuedData(loader), job, torch.device("cpu"), steps, warmup)
    # a tiny model's step takes far less than the 0.3 s each timed batch waits
    assert wait > 0.6, wait
    assert rate < 4 / 0.3


@pytest.mark.parametrize("batch,m,batches", [(200, 1, 53), (400, 1, 41), (200, 2, 53), (8, 1, 3), (64, 2, 30)])
def test_synthetic_epochs_outlast_the_measurement(batch, m, batches):
    speakers = synthetic_speakers(batch, m, batches)
    spk_utts = [list(range(s * UTTS_PER_SPEAKER, (s + 1) * UTTS_PER_SPEAKER)) for s in range(speakers)]
    sampler = SpeakerBatchSampler(spk_utts, batch, m, max_seg_per_spk=500, seed=1)
    assert len(sampler) >= batches
    assert speakers >= 2 * batch // m


def test_a_bench_script_runs_from_a_plain_shell_after_path_sh(tmp_path):
    # `bench/dataloader.py` said "No module named 'bench'": the README has bench/ scripts run
    # as the steps are, after `. ./path.sh`, which puts the repository on PYTHONPATH
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SPKID_ROOT")}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    run = subprocess.run(["bash", "-c", f". {root}/path.sh && {root}/bench/dataloader.py --help"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.startswith("usage: bench/dataloader.py"), run.stderr[-500:]
