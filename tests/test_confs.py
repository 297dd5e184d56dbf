"""Every conf/<SYSTEM>.conf against a summary of the paper's Table 2 and section 3.4."""
from pathlib import Path

import pytest

from spkid.config import parse_options
from spkid.options import SYSTEM_OPTIONS, n_per_speaker

CONF = Path(__file__).resolve().parents[1] / "conf"

# Table 2: loss per row index 1..8 (the same cycle for every trunk), and per family the trunk,
# augmentation, and the schedule of section 3.4 (StepLR factor, period, epochs).
LOSS_CYCLE = {1: "am_softmax", 2: "aam_softmax", 3: "ap", 4: "ap_softmax",
              5: "am_softmax", 6: "aam_softmax", 7: "ap", 8: "ap_softmax"}
FAMILIES = {
    "Q": ("Q_SAP", False, 0.95, 5, 300),
    "QA": ("Q_SAP", True, 0.95, 5, 300),
    "H": ("H_ASP", False, 0.75, 16, 250),
    "HA": ("H_ASP", True, 0.75, 16, 250),
    "EA": ("ECAPA", True, 0.75, 8, 150),
}
SYSTEMS = [f"{fam}{i}" for fam in FAMILIES for i in range(1, 9)]


def load(*names):
    argv = []
    for n in names:
        argv += ["--config", str(CONF / n)]
    return parse_options(SYSTEM_OPTIONS, argv).of(SYSTEM_OPTIONS)


def test_every_table2_row_has_a_conf():
    present = {p.stem for p in CONF.glob("*.conf")} - {"mini", "fusion", "lm", "download"}
    present = {p for p in present if not p.startswith("mini_")}
    assert present == set(SYSTEMS)


@pytest.mark.parametrize("name", SYSTEMS)
def test_conf_matches_table2(name):
    fam, row = name.rstrip("12345678"), int(name[-1])
    trunk, aug, decay, step, epochs = FAMILIES[fam]
    model, loss, train, evaluation = load(f"{name}.conf")
    assert model.trunk == trunk
    assert loss.loss == LOSS_CYCLE[row]
    assert model.embed_bn == (row >= 5)
    assert train.augment == aug
    assert (train.lr_decay, train.lr_step, train.epochs) == (decay, step, epochs)
    assert (train.lr, train.weight_decay) == (0.001, 5e-5)
    assert train.batch_size == (400 if loss.loss.startswith("ap") else 200)
    assert n_per_speaker(loss, train) == (2 if loss.loss.startswith("ap") else 1)
    if loss.loss in ("am_softmax", "aam_softmax"):
        assert (loss.margin, loss.scale) == (0.2, 30.0)
    assert (evaluation.eval_frames, evaluation.num_eval_crops, evaluation.p_target) == (400, 10, 0.05)
    first = (CONF / f"{name}.conf").read_text().splitlines()[0]
    assert first.startswith(f"# {name}: Table 2 row {name}")


@pytest.mark.parametrize("name", ["Q4", "H2", "EA4"])
def test_mini_overrides_parse_on_top(name):
    model, _, train, _ = load(f"{name}.conf")
    mini = load(f"{name}.conf", "mini.conf", f"mini_{model.trunk}.conf")
    assert mini[2].epochs < train.epochs and mini[0].channels != ""


def test_large_margin_conf_is_wespeakers_recipe():
    """conf/lm.conf on top of a system: wespeaker's LM values (resnet_lm.yaml, ecapa_tdnn_lm.yaml)."""
    _, loss, train, _ = load("EA4.conf", "lm.conf")
    assert (loss.loss, loss.margin) == ("aam_softmax", 0.5)
    assert (train.train_frames, train.epochs, train.lr) == (600, 5, 1e-4)
    assert train.lr * train.lr_decay ** (train.epochs - 1) == pytest.approx(2.5e-5, rel=1e-3)
    mini = load("EA4.conf", "mini.conf", "mini_ECAPA.conf", "lm.conf", "mini_lm.conf")
    assert (mini[2].train_frames, mini[2].epochs) == (300, 3)


@pytest.mark.parametrize("part", ["avg", "ms", "qmf", "plda"])
def test_backend_confs_change_only_the_back_end(part):
    base = load("EA4.conf")
    new = load("EA4.conf", f"backend/{part}.conf")
    assert new[:2] == base[:2]  # the network and its loss stay
    changed = [f for a, b in zip(base[2:], new[2:]) for f in vars(a) if getattr(a, f) != getattr(b, f)]
    assert changed and set(changed) <= {"average_last", "mean_subtract", "qmf", "qmf_trials", "score_type", "lda_dim"}
