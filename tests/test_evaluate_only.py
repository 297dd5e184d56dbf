"""Evaluating imported models with VoxCeleb1 alone (or the VoxSRC 2020 list alone): run.sh's
stage 1 links what is on disk and skips the rest by name, stage 2 prepares the sets whose audio
is there, stages 4-6 score, and stage 6 fuses only on a list that exists.

The corpora are fake trees in the published layouts; the two systems are checkpoints built from
the sources' published key names (voxceleb_trainer's ResNetSE34V2, wespeaker's ECAPA), narrowed
so that the CPU scores them in seconds."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from recipe_copy import clean_env, copy_recipe
from source_checkpoints import vt_checkpoint, vt_head, vt_resnet, ws_ecapa
from trained_system import write_voice

SPEAKERS = {"dev": ["id10001", "id10002"], "test": ["id10270", "id10271", "id10272"]}
F0 = {"id10001": 100.0, "id10002": 150.0, "id10270": 110.0, "id10271": 170.0, "id10272": 230.0}
EVAL = ["--num-eval-crops=2", "--eval-frames=100"]


def vox1_copy(root: Path) -> dict[str, list[str]]:
    """vox1_dev_wav/wav/<spk>/<video>/<n>.wav and vox1_test_wav/... as extracted; utterance ids per part."""
    utts = {}
    for part, spks in SPEAKERS.items():
        utts[part] = []
        for i, spk in enumerate(spks):
            for v, video in enumerate(("aaaaaaaaaaa", "bbbbbbbbbbb")):
                for n in (1, 2):
                    u = f"{spk}/{video}/0000{n}"
                    write_voice(root / f"vox1_{part}_wav" / "wav" / f"{u}.wav", 1.2, f0=F0[spk] * (1 + 0.03 * v),
                                seed=100 * i + 10 * v + n)
                    utts[part].append(u)
    return utts


def pairs(utts: list[str]) -> list[str]:
    return [f"{int(a.split('/')[0] == b.split('/')[0])} {a}.wav {b}.wav" for i, a in enumerate(utts) for b in utts[i + 1:]]


def write_lists(folder: Path, utts: dict[str, list[str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    everything = sorted(utts["dev"] + utts["test"])
    for name, lines in (("veri_test2.txt", pairs(sorted(utts["test"]))), ("list_test_all2.txt", pairs(everything)),
                        ("list_test_hard2.txt", pairs(everything)[::3])):
        (folder / name).write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    return copy_recipe(tmp_path_factory.mktemp("recipe"))


def sh(recipe: Path, *args: str) -> subprocess.CompletedProcess:
    """``args`` in the recipe's environment, with no VoxCeleb credentials."""
    env = {k: v for k, v in clean_env().items() if not k.startswith("SPKID_VOX")}
    return subprocess.run(["bash", "-c", f". ./path.sh && {' '.join(args)}"], cwd=recipe, env=env,
                          capture_output=True, text=True, timeout=900)


def import_two_systems(recipe: Path) -> None:
    """VT_V2 (voxceleb_trainer's ResNetSE34V2 with its AP+softmax head, as today's saveParameters
    writes it) and WS_ECAPA (wespeaker's ECAPA_TDNN_GLOB with its projection head), both narrowed."""
    ckpts = {"VT_V2": vt_checkpoint(vt_resnet("V2", (8, 16, 16, 16), 64, n_out=32), vt_head("softmaxproto", 32, 10)),
             "WS_ECAPA": ws_ecapa(channels=32, embed_dim=24, classes=10, mfa=96)}
    for name, state in ckpts.items():
        torch.save(state, recipe / f"{name}.model")
        p = sh(recipe, "steps/import_model.py", *EVAL, f"{name}.model", f"exp/{name}")
        assert p.returncode == 0, p.stdout + p.stderr


def results_columns(table: str) -> list[str]:
    head = next(line for line in table.splitlines() if line.startswith("| Config"))
    return [c.strip() for c in head.strip("|").split("|")]


def table_rows(table: str) -> list[str]:
    return [r.split("|")[1].strip() for r in table.splitlines() if r.startswith("| ") and "Config" not in r]


@pytest.mark.slow
def test_imported_systems_scored_with_voxceleb1_alone(recipe, tmp_path):
    utts = vox1_copy(tmp_path / "mine")
    write_lists(tmp_path / "mine" / "lists", utts)
    import_two_systems(recipe)
    base = ["./run.sh", "--corpus", "voxceleb", "--nj", "1"]
    vox1 = f'"{tmp_path}/mine/vox1_dev_wav {tmp_path}/mine/vox1_test_wav"'
    p = sh(recipe, *base, "--stage", "1", "--stop-stage", "1", "--vox1-dir", vox1,
           "--lists-dir", str(tmp_path / "mine" / "lists"), "--skip-download", "true")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for comp in ("vox2", "musan", "rirs"):  # what is not on disk: one line each, with what needs it
        assert p.stdout.count(f"{comp}: {comp} under") == 1, p.stdout

    # a system that needs training is refused before any work, naming what it would train on
    p = sh(recipe, *base, "--stage", "2", "--stop-stage", "6", "--systems", '"VT_V2 HA4"')
    assert p.returncode == 1 and "HA4 needs training" in p.stderr and "data/vox2_dev (VoxCeleb2 dev" in p.stderr
    assert "data/musan_noise" in p.stderr and not (recipe / "data").exists()

    p = sh(recipe, *base, "--stage", "2", "--stop-stage", "6", "--systems", '"VT_V2 WS_ECAPA"')
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = p.stdout
    for name in ("vox2_dev", "voxsrc19_test", "voxsrc20_val", "musan_noise", "musan_music", "musan_speech", "rirs"):
        assert out.count(f"skipped {name} (") == 1, (name, out)  # each skipped set named once
    assert "skipped vox1 " not in out
    table = (recipe / "exp" / "RESULTS.md").read_text()
    cols = results_columns(table)
    for title in ("VoxCeleb1 cl.", "VoxCeleb1-E cl.", "VoxCeleb1-H cl."):
        assert f"{title} EER" in cols
    assert not any("VoxSRC" in c for c in cols)
    assert [r for r in table_rows(table) if "(paper)" not in r] == ["VT_V2", "WS_ECAPA"]
    assert "No fusion (F1, F2): data/voxsrc20_val/trials/voxsrc20_val" in table and "--fusion-tune" in table
    assert not (recipe / "exp" / "fusion" / "F1").exists()

    # the user names a list to tune the fusion on: F1 and F2 appear
    p = sh(recipe, *base, "--stage", "6", "--systems", '"VT_V2 WS_ECAPA"', "--fusion-tune", "vox1/vox1_O")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    table = (recipe / "exp" / "RESULTS.md").read_text()
    assert [r for r in table_rows(table) if "(paper)" not in r] == ["VT_V2", "WS_ECAPA", "F1", "F2"]
    assert "best EER fusion on vox1_O" in table
    figures = [float(c) for r in table.splitlines() if r.startswith("| VT_V2 ") for c in r.split("|")[6:-1]]
    assert len(figures) == 6 and np.isfinite(figures).all()

    # a back-end that learns from the training set says so by name
    conf = recipe / "exp" / "WS_ECAPA" / "config.conf"
    shutil.copytree(recipe / "exp" / "WS_ECAPA", recipe / "exp" / "WS_MS")
    (recipe / "exp" / "WS_MS" / "config.conf").write_text(conf.read_text().replace("--mean-subtract=false",
                                                                                     "--mean-subtract=true"))
    shutil.rmtree(recipe / "exp" / "WS_MS" / "embeddings")
    p = sh(recipe, *base, "--stage", "4", "--stop-stage", "4", "--systems", "WS_MS")
    assert p.returncode == 1
    log = "".join(f.read_text() for f in (recipe / "exp" / "log").glob("stage4_exp_WS_MS*"))
    assert "mean-subtracted" in log and "data/vox2_dev (--cohort-data) is not there" in log


@pytest.mark.slow
def test_imported_systems_scored_with_the_voxsrc2020_list_alone(recipe, tmp_path):
    """The VoxSRC 2020 validation list with a folder holding all its audio (its voxceleb1/ side
    and voxceleb1_cd/), no VoxCeleb1 copy: Val is the one column, and fusion is tuned on it."""
    for name in ("data", "exp", "corpus"):
        shutil.rmtree(recipe / name, ignore_errors=True)
    audio = tmp_path / "voxsrc"
    enrol = [f"voxceleb1/{s}/aaaaaaaaaaa/00001.wav" for s in ("id10001", "id10002", "id10003")]
    test = [f"voxceleb1_cd/{s}/00000{n}.wav" for s in ("id10001", "id10002", "id10003") for n in (1, 2)]
    for i, path in enumerate(enrol + test):
        write_voice(audio / path, 1.2, f0=100.0 + 60 * int(path.split("/")[1][-1]), seed=i)
    lines = [f"{int(e.split('/')[1] == t.split('/')[1])} {e} {t}" for e in enrol for t in test]
    (tmp_path / "VoxSRC2020_val.txt").write_text("\n".join(lines) + "\n")
    import_two_systems(recipe)
    base = ["./run.sh", "--corpus", "voxceleb", "--nj", "1"]
    p = sh(recipe, *base, "--stage", "1", "--stop-stage", "1", "--skip-download", "true",
           "--voxsrc20-list", str(tmp_path / "VoxSRC2020_val.txt"), "--voxsrc20-audio", str(audio))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    p = sh(recipe, *base, "--stage", "2", "--stop-stage", "6", "--systems", '"VT_V2 WS_ECAPA"')
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert p.stdout.count("skipped vox1 (") == 1
    table = (recipe / "exp" / "RESULTS.md").read_text()
    assert [c for c in results_columns(table) if c.endswith("EER")] == ["VoxSRC 2020 Val EER"]
    assert [r for r in table_rows(table) if "(paper)" not in r] == ["VT_V2", "WS_ECAPA", "F1", "F2"]
