"""spkid.registry: a front-end, a trunk and a loss added from outside the package, as
docs/design.md says, train through the path steps/train.py takes; unknown names fail while the
options are parsed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spkid.config import ConfigError, parse_options, read_resolved
from spkid.data.synthetic import make_train_dir
from spkid.errors import SpkidError
from spkid.options import SYSTEM_OPTIONS, LossOptions, TrainOptions, n_per_speaker
from spkid.models import build_model
from spkid.options import ModelOptions
from spkid.registry import FRONTENDS, LOSSES, TRUNKS, Frontend, Loss, Trunk
from spkid.train.system import RunOptions, train_system

torch.set_num_threads(1)


class FrameEnergy(nn.Module):
    """Waveform (B, samples) -> log mean square of each 10-ms hop, on every one of n_mels rows."""

    def __init__(self, n_mels: int, preemphasis: float, input_scale: float):
        super().__init__()
        self.n_mels, self.input_scale = n_mels, input_scale

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        hops = (wave * self.input_scale)[:, : wave.shape[1] // 160 * 160].view(len(wave), -1, 160)
        return hops.pow(2).mean(dim=2).add(1e-8).log()[:, None, :].expand(-1, self.n_mels, -1)


class MeanTrunk(nn.Module):
    """Features (B, n_mels, T) -> time average -> Linear -> (B, embed_dim)."""

    def __init__(self, n_mels: int, channels: tuple[int, ...], embed_dim: int, pool_std_floor: float):
        super().__init__()
        self.fc = nn.Linear(n_mels, embed_dim)
        self.embed_dim = embed_dim
        self.floor = pool_std_floor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=2))


class PairLoss(nn.Module):
    """Mean squared distance between the two utterances of each speaker (batches of pairs)."""

    seen: list[torch.Tensor] = []  # the labels of every batch, across instances

    def __init__(self, m: int):
        super().__init__()
        self.m = m
        self.anchor = nn.Parameter(torch.zeros(1))  # a head with no parameter has nothing to save

    @classmethod
    def from_options(cls, opts: LossOptions, embed_dim: int, num_speakers: int, m: int) -> PairLoss:
        return cls(m)

    def forward(self, emb: torch.Tensor, labels: torch.Tensor):
        self.seen.append(labels.clone())
        pairs = emb.view(-1, self.m, emb.shape[1])
        return (pairs[:, 0] - pairs[:, 1]).pow(2).sum(dim=1).mean() + 0 * self.anchor.sum(), None


@pytest.fixture
def toy_entries():
    FRONTENDS.register(Frontend("energy", FrameEnergy, "log energy per hop"))
    trunk = TRUNKS.register(Trunk("MEAN", MeanTrunk, "time average + Linear", channels=(), n_mels=24,
                                  embed_dim=8, frontend="energy", pooling=("pool_std_floor",)))
    loss = LOSSES.register(Loss("pair", PairLoss.from_options, "pair distance", label="Pair", per_speaker=2))
    PairLoss.seen.clear()
    yield trunk, loss
    TRUNKS.unregister("MEAN")
    LOSSES.unregister("pair")
    FRONTENDS.unregister("energy")


def test_a_registered_trunk_and_loss_train_through_the_training_step(toy_entries, tmp_path):
    make_train_dir(tmp_path, num_speakers=4, utts_per_speaker=2, seconds=(1.0, 1.5), seed=1)
    (tmp_path / "mine.conf").write_text("--trunk=MEAN\n--loss=pair\n--epochs=4\n")
    (tmp_path / "mini.conf").write_text("--epochs=1\n")  # as conf/mini.conf shrinks a system's conf
    argv = ["--config", str(tmp_path / "mine.conf"), "--config", str(tmp_path / "mini.conf"),
            "--pool-std-floor=0.01", "--batch-size=8",
            "--train-frames=20", "--num-workers=0", "--lr=0.1", f"--train-data={tmp_path / 'data' / 'train'}",
            "--quiet=true", str(tmp_path / "exp")]
    args = parse_options([*SYSTEM_OPTIONS, RunOptions], argv, positional=["exp_dir"])
    assert n_per_speaker(args[LossOptions], args[TrainOptions]) == 2
    assert train_system(*args.of(SYSTEM_OPTIONS), args[RunOptions], args.positionals["exp_dir"],
                        notes=args.replaced) == 0
    # the value one conf replaced in another is said in the training log
    assert f"note: {tmp_path / 'mini.conf'} replaces what {tmp_path / 'mine.conf'} set: --epochs=4 -> 1" in \
        (tmp_path / "exp" / "log" / "train.log").read_text()

    model, loss, _, _ = read_resolved(tmp_path / "exp" / "config.conf", SYSTEM_OPTIONS)
    assert (model.trunk, loss.loss, model.pool_std_floor) == ("MEAN", "pair", 0.01)
    final = torch.load(tmp_path / "exp" / "final.pt", weights_only=True)
    assert final["epoch"] == 1 and final["model"]["trunk.fc.weight"].shape == (8, 24)  # the entry's defaults
    assert PairLoss.seen, "the loss head was never called"
    for labels in PairLoss.seen:  # the sampler grouped each speaker's utterances in twos, as the entry asks
        pairs = labels.view(-1, 2)
        assert (pairs[:, 0] == pairs[:, 1]).all() and len(set(pairs[:, 0].tolist())) == len(pairs)


def test_the_trunk_entry_names_its_front_end_and_the_option_replaces_it(toy_entries):
    assert isinstance(build_model(ModelOptions(trunk="MEAN")).frontend, FrameEnergy)
    assert isinstance(build_model(ModelOptions(trunk="MEAN", frontend="mfcc")).frontend, type(FRONTENDS["mfcc"].build(24)))
    with pytest.raises(SpkidError, match=r"^--frontend=paper is not one to build: it means the trunk's own"):
        FRONTENDS["paper"]  # a value of the option, standing for the trunk's entry: never built itself


def test_the_sampler_gives_a_loss_its_utterances_per_speaker(toy_entries):
    loss, train = LossOptions(loss="pair"), TrainOptions()
    assert n_per_speaker(loss, train) == 2 and n_per_speaker(LossOptions(loss="softmax"), train) == 1


def test_an_unknown_name_fails_at_parse_time_with_the_known_names(toy_entries, tmp_path):
    conf = tmp_path / "a.conf"
    conf.write_text("--trunk=MEAN\n--loss=triplet\n")
    with pytest.raises(ConfigError, match=r"a.conf:2: --loss=triplet is not one of: softmax, .*, ap_softmax, pair$"):
        parse_options(SYSTEM_OPTIONS, ["--config", str(conf)])
    with pytest.raises(SpkidError, match=r"^unknown --trunk=VGG; choose one of: Q_SAP, H_ASP, ECAPA, MEAN$"):
        TRUNKS["VGG"]
    conf.write_text("--frontend=spectrogram\n")
    with pytest.raises(ConfigError, match=r"a.conf:1: --frontend=spectrogram is not one of: paper, logmel, mfcc, "
                                          r"fbank, energy$"):
        parse_options(SYSTEM_OPTIONS, ["--config", str(conf)])


def test_a_name_registers_once(toy_entries):
    with pytest.raises(ValueError, match="--loss=pair is registered twice"):
        LOSSES.register(Loss("pair", PairLoss.from_options, "again", label="Pair"))


def test_help_describes_every_entry(toy_entries):
    from spkid.config import format_help
    text = format_help(SYSTEM_OPTIONS)
    assert "      MEAN: time average + Linear; paper: --channels=, 24 energy bins, 8-dim" in text
    assert "      energy: log energy per hop" in text
    assert "      pair: pair distance; 2 utterance(s) per speaker in a batch" in text
