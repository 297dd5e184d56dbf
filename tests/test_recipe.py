"""run.sh end to end on the tiny mini corpus: stages 2-6, skipping finished stages, refusing a
stage whose inputs are missing, and failing clearly on a bad option.

The recipe is copied into a temporary directory (run.sh writes data/ and exp/ beside itself),
with conf/mini.conf replaced by settings that train in seconds."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mini_corpus_fixture import tiny_corpus
from recipe_copy import copy_recipe, run_in

ROOT = Path(__file__).resolve().parent.parent
TINY_MINI_CONF = """# the tiny test corpus: 6 training speakers
--epochs=2
--batch-size=4
--train-frames=50
--num-workers=0
--amp=none
--eval-frames=100
--num-eval-crops=3
"""


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    r = copy_recipe(tmp_path_factory.mktemp("recipe"))
    (r / "conf" / "mini.conf").write_text(TINY_MINI_CONF)
    for trunk, channels in (("Q_SAP", "4,8,8,8"), ("ECAPA", "16,48")):
        (r / "conf" / f"mini_{trunk}.conf").write_text(f"--channels={channels}\n--n-mels=24\n--embed-dim=16\n")
    return r


def run(recipe: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_in(recipe, "./run.sh", *args, env=env)


@pytest.mark.slow
def test_stages_2_to_6_then_skip_and_refuse(recipe):
    corpus = recipe / "corpus" / "mini"
    shutil.copytree(tiny_corpus(), corpus)
    (corpus / ".done").touch()  # stage 1 ran: the fixture generated it
    opts = ["--systems", "QA4 EA4", "--nj", "1"]

    first = run(recipe, "--stage", "2", *opts)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    table = (recipe / "exp" / "RESULTS.md").read_text()
    rows = [r.split("|")[1].strip() for r in table.splitlines() if r.startswith("| ") and "Config" not in r]
    assert rows == ["MFCC mean+std baseline", "QA4", "EA4", "F1", "F2"]  # the mini table starts at the floor
    for lst in ("vox1_O", "vox1_E", "vox1_H", "voxsrc20_val"):
        assert (recipe / "exp" / "results_det" / f"{lst}.png").is_file()
        assert (recipe / "exp" / "EA4" / "scores" / ("voxsrc20_val" if lst == "voxsrc20_val" else "vox1")
                / f"{lst}.score").is_file()
    assert "--trunk=ECAPA" in (recipe / "exp" / "EA4" / "config.conf").read_text()
    assert_readable_logs(recipe / "exp", first)
    # stage 2 packed MUSAN, so training held it on the device (the CPU here)
    assert "augmentation: batched on cpu, MUSAN bank and RIRs held there" in \
        (recipe / "exp" / "EA4" / "log" / "train.log").read_text()
    assert (recipe / "exp" / "log").is_dir()

    again = run(recipe, "--stage", "3", *opts)
    assert again.returncode == 0
    assert "stage 3: exp/QA4/.done.train exists, skipping" in again.stdout
    assert "stage 4: exp/EA4/embeddings/vox1/.done exists, skipping" in again.stdout

    # the results table belongs to a set of systems: another set redoes stage 6
    one = run(recipe, "--stage", "6", "--systems", "EA4")
    assert one.returncode == 0, one.stderr[-2000:]
    table = (recipe / "exp" / "RESULTS.md").read_text()
    assert "| EA4 |" in table and "| QA4 |" not in table
    # ... and retires the first set's marker, so asking for that set again rewrites the table
    assert not (recipe / "exp" / ".done.results.QA4_EA4").exists()
    both = run(recipe, "--stage", "6", "--systems", "QA4 EA4")
    assert both.returncode == 0 and "stage 6: exp/.done.results" not in both.stdout
    assert "stage 6: steps/fuse_and_report.sh" in both.stdout
    assert "| QA4 |" in (recipe / "exp" / "RESULTS.md").read_text()

    # the stale fusion: a fusion of other systems, then one system's score file gone;
    # stage 6 refused (it reported the old fusion's figures under the new weights, rc 0), stage 5
    # redone although its marker is there, then stage 6 recomputes
    assert run(recipe, "--stage", "6", "--systems", "EA4").returncode == 0
    gone = recipe / "exp" / "QA4" / "scores" / "vox1" / "vox1_H.score"
    gone.rename(recipe / "vox1_H.score")
    stale = run(recipe, "--stage", "6", *opts)
    assert stale.returncode == 1 and "exp/QA4/scores/vox1/vox1_H.score is missing" in stale.stderr, stale.stderr
    assert "score QA4 on data/vox1 again first (./run.sh --stage 5 --stop-stage 5" in stale.stderr
    rescored = run(recipe, "--stage", "5", "--stop-stage", "5", *opts)
    assert rescored.returncode == 0, rescored.stderr[-2000:]
    assert "stage 5: exp/QA4/scores/vox1 no longer matches what made it (above): scoring it again" in rescored.stdout
    assert gone.is_file() and run(recipe, "--stage", "6", *opts).returncode == 0
    assert "| QA4 |" in (recipe / "exp" / "RESULTS.md").read_text()

    # --force true redoes finished stages; a forced training keeps the old run aside
    forced = run(recipe, "--stage", "3", "--stop-stage", "4", "--systems", "QA4", "--force", "true")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert "moved exp/QA4 to exp/QA4.old-" in forced.stdout and "nothing to do" not in forced.stdout
    assert len(list((recipe / "exp").glob("QA4.old-*/final.pt"))) == 1
    assert (recipe / "exp" / "QA4" / "final.pt").is_file()
    assert (recipe / "exp" / "QA4" / "embeddings" / "vox1" / ".done").is_file()

    missing = run(recipe, "--stage", "4", "--systems", "H2")
    assert missing.returncode == 1
    assert "exp/H2/.done.train is missing: train H2 first (./run.sh --stage 3 --stop-stage 3" in missing.stderr


def assert_readable_logs(exp: Path, run_sh: subprocess.CompletedProcess) -> None:
    """A redirected run.sh: no carriage return in its output or in any text file under exp/ (bars
    only on a terminal), a plain progress line where bars would be, and a log per step."""
    assert "\r" not in run_sh.stdout and "\r" not in run_sh.stderr
    texts = [f for f in exp.rglob("*") if f.is_file() and b"\0" not in f.read_bytes()]
    assert [str(f) for f in texts if b"\r" in f.read_bytes()] == []
    assert any(f.name.startswith("stage4_") for f in texts)
    stage4 = (exp / "log" / "stage4_exp_EA4_embeddings_vox1.log").read_text()
    assert re.search(r"^extract data/vox1: 100% \(\d+/\d+ utt\), \d\d:\d\d, [\d.]+ utt/s$", stage4, re.M)
    for step in ("extract.vox1", "extract.voxsrc20_val", "score.vox1", "score.voxsrc20_val"):
        log = (exp / "EA4" / "log" / f"{step}.log").read_text().splitlines()
        assert log[0].startswith("# 20") and re.fullmatch(r"# done in [\d.]+ s", log[-1]), (step, log)
    assert "vox1_O: EER" in (exp / "EA4" / "log" / "score.vox1.log").read_text()


def test_bad_stages_and_unknown_systems_are_refused_up_front(recipe):
    for args, msg in ((["--stage", "x"], "--stage must be a stage number, 1 to 6, not 'x'"),
                      (["--stage", "5", "--stop-stage", "3"], "--stage 5 comes after --stop-stage 3"),
                      (["--stage", "3", "--systems", "QA4 NOPE"], "conf/NOPE.conf not found")):
        r = run(recipe, *args)
        assert r.returncode == 1 and msg in r.stderr, (args, r.stderr[-500:])
        assert "stage 3:" not in r.stdout  # nothing ran


def test_bad_options_are_refused(recipe):
    bad = run(recipe, "--stagee", "2")
    assert bad.returncode == 1 and "unknown option --stagee" in bad.stderr
    bad = run(recipe, "--corpus", "librispeech")
    assert bad.returncode == 1 and "--corpus must be mini or voxceleb" in bad.stderr
    bad = run(recipe, "--force", "maybe")
    assert bad.returncode == 1 and "takes true or false" in bad.stderr
    # checked up front, even when the stages that use them are finished and skipped
    bad = run(recipe, "--gpus", "abc")
    assert bad.returncode == 1 and "run.sh: --gpus takes a whole number, not 'abc'" in bad.stderr
    bad = run(recipe, "--nj", "0")
    assert bad.returncode == 1 and "run.sh: --nj and --nnodes must be at least 1" in bad.stderr
    bad = run(recipe, "--backend", "some")
    assert bad.returncode == 1 and "--backend must be none or full, not 'some'" in bad.stderr
    bad = run(recipe, "--stage", "3", "--backend", "full", "--backend-base", "NOPE")
    assert bad.returncode == 1 and "conf/NOPE.conf not found" in bad.stderr and "stage 3:" not in bad.stdout


def test_stage_needing_an_earlier_one_names_it(tmp_path, recipe):
    fresh = tmp_path / "r"
    shutil.copytree(recipe, fresh, symlinks=True, ignore=shutil.ignore_patterns("corpus", "data", "exp"))
    out = run(fresh, "--stage", "2", "--stop-stage", "2")
    assert out.returncode == 1
    assert "corpus/mini/.done is missing: obtain the mini corpus first (./run.sh --stage 1 --stop-stage 1" in out.stderr


def stage_1_copying(recipe: Path, corpus: Path, without: str = "") -> None:
    """local/make_mini_corpus.py replaced by a copy of ``corpus`` (less its folder ``without``)."""
    stub = recipe / "local" / "make_mini_corpus.py"
    stub.write_text("#!/usr/bin/env python3\nimport shutil, sys\n"
                    "out = sys.argv[sys.argv.index('--out') + 1]\n"
                    f"shutil.copytree({str(corpus)!r}, out, ignore=shutil.ignore_patterns({without or 'none'!r}))\n")
    stub.chmod(0o755)


def test_a_fresh_run_obtains_the_corpus_before_it_checks_the_training_data(tmp_path, recipe):
    # a newcomer's ./run.sh: nothing on disk yet, so what stage 1 obtains is checked after it
    # (it was checked before stage 1 and refused, naming data/vox2_dev as not there)
    fresh = tmp_path / "r"
    shutil.copytree(recipe, fresh, symlinks=True, ignore=shutil.ignore_patterns("corpus", "data", "exp"))
    stage_1_copying(fresh, tiny_corpus())
    out = run(fresh, "--systems", "QA4", "--stop-stage", "3", "--nj", "1")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert (fresh / "exp" / "QA4" / ".done.train").is_file()
    # a corpus without the training speakers: stages 1-2 run, then stage 3 is refused, naming them
    shutil.rmtree(fresh / "corpus"), shutil.rmtree(fresh / "data"), shutil.rmtree(fresh / "exp")
    stage_1_copying(fresh, tiny_corpus(), without="voxceleb2")
    out = run(fresh, "--systems", "QA4", "--stop-stage", "3", "--nj", "1")
    assert out.returncode == 1 and (fresh / "data" / ".done").is_file() and not (fresh / "exp" / "QA4").exists()
    assert "run.sh: QA4 needs training, on data that is not there:\n  data/vox2_dev (VoxCeleb2 dev" in out.stderr


def test_a_stage_made_from_another_corpus_is_refused_not_skipped(tmp_path, recipe):
    # after the mini pipeline, data/ and exp/ hold the mini corpus's dirs and systems: stages
    # for VoxCeleb must not skip them as finished
    fresh = tmp_path / "r"
    shutil.copytree(recipe, fresh, symlinks=True, ignore=shutil.ignore_patterns("corpus", "data", "exp"))
    shutil.copytree(tiny_corpus(), fresh / "corpus" / "mini")
    (fresh / "corpus" / "mini" / ".done").touch()
    (fresh / "corpus" / "voxceleb").mkdir()
    (fresh / "corpus" / "voxceleb" / ".done").touch()
    mini = run(fresh, "--stage", "2", "--stop-stage", "2")
    assert mini.returncode == 0, mini.stderr[-2000:]
    assert "skipping" in run(fresh, "--stage", "2", "--stop-stage", "2").stdout
    made = "data/.done was made from the mini corpus, not the voxceleb corpus: redo stage 2"
    for stage in ("2", "3"):
        vox = run(fresh, "--corpus", "voxceleb", "--stage", stage, "--stop-stage", stage, "--systems", "EA4")
        assert vox.returncode == 1 and made in vox.stderr, vox.stderr[-1000:]
        assert "--stage 2 --stop-stage 2 --force true" in vox.stderr and "skipping" not in vox.stdout
    # the same corpus elsewhere (a moved checkout, another node's mount point) is still the same
    moved = tmp_path / "moved"
    fresh.rename(moved)
    assert "skipping" in run(moved, "--stage", "2", "--stop-stage", "2").stdout


def test_only_documented_options_are_accepted(recipe):
    # any shell variable used to be an option: --PATH=/nowhere broke the run, --mini-systems
    # changed a helper of the script
    for opt in ("--PATH=/nowhere", "--mini-systems=X", "--help-message=x", "--known-options=PATH"):
        bad = run(recipe, opt)
        assert bad.returncode == 1 and f"command line: unknown option {opt.split('=')[0]}" in bad.stderr, bad.stderr


def test_config_is_read_as_data_not_run_as_shell(recipe, tmp_path):
    # a conf in the --option=value format was sourced: "command not found", after running any $(...)
    conf = tmp_path / "run.conf"
    conf.write_bytes("\ufeff# stages\n--stage=5  # scoring\n--stop-stage=3\n".encode())
    r = run(recipe, "--config", str(conf))
    assert r.returncode == 1 and "--stage 5 comes after --stop-stage 3" in r.stderr, r.stderr
    assert "command not found" not in r.stderr
    # the command line wins over the conf, wherever it stands
    r = run(recipe, "--stop-stage", "6", "--config", str(conf), "--stage", "x")
    assert r.returncode == 1 and "--stage must be a stage number, 1 to 6, not 'x'" in r.stderr, r.stderr
    pwned = tmp_path / "pwned"
    conf.write_text(f"--stage=$(touch {pwned})\n")
    r = run(recipe, "--config", str(conf))
    assert r.returncode == 1 and f"not '$(touch {pwned})'" in r.stderr and not pwned.exists()
    for text, msg in ((f"stage=2; touch {pwned}\n", "run.conf:1: expected '--option=value', got 'stage=2; touch"),
                      ("--stage=2\n--PATH=/nowhere\n", "run.conf:2: unknown option --PATH"),
                      ("--force=maybe\n", "run.conf:1: option --force takes true or false, not 'maybe'")):
        conf.write_text(text)
        r = run(recipe, f"--config={conf}")
        assert r.returncode == 1 and msg in r.stderr and not pwned.exists(), r.stderr


STAGE = """#!/usr/bin/env python3
import pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
signal.signal(signal.SIGTERM, signal.default_int_handler)
(out / "started").touch()
try:
    time.sleep(20)
except KeyboardInterrupt:
    time.sleep(1)  # cleaning up, as training removes the checkpoint it was writing
    (out / "stopped").touch()
    sys.exit(1)
"""


def default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_run_sh_reaches_the_stage_and_is_waited_for(tmp_path, sig):
    # SIGTERM to run.sh used to leave the stage running under init (and SIGINT sent to run.sh
    # alone did not reach it): a restarted run.sh then met the orphan in exp/<SYS>
    (tmp_path / "stage.py").write_text(STAGE)
    (tmp_path / "stage.py").chmod(0o755)
    script = f"set -euo pipefail; . {ROOT}/utils/stage_lib.sh; run_stage 3 exp/S/.done.train ./stage.py ."
    # as from a terminal: a shell started with SIGINT ignored (a background job of a script, as
    # CI may start the tests) can never trap it, so the child starts with the default disposition
    p = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True, preexec_fn=default_sigint)
    deadline = time.monotonic() + 30
    while not (tmp_path / "started").exists():
        assert p.poll() is None and time.monotonic() < deadline, p.communicate()
        time.sleep(0.05)
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    assert (tmp_path / "stopped").exists(), "run.sh did not wait for the stage to stop"
    assert p.returncode == 128 + sig, (p.returncode, err)
    assert f"run.sh: stage 3 stopped by {sig.name} (see exp/log/stage3_exp_S.log)" in err
    assert not (tmp_path / "exp" / "S" / ".done.train").exists()


def test_force_does_not_move_an_experiment_another_run_is_writing(tmp_path):
    from test_fileio import hold_lock

    exp = tmp_path / "exp" / "S"
    holder = hold_lock(exp)
    try:
        r = subprocess.run(["bash", "-c", f"set -euo pipefail; . {ROOT}/utils/stage_lib.sh; set_aside exp/S"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=30)
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 1 and f"exp/S is in use by PID {holder.pid} on" in r.stderr, r.stderr
    assert exp.is_dir() and not list(tmp_path.glob("exp/S.old-*"))
    r = subprocess.run(["bash", "-c", f". {ROOT}/utils/stage_lib.sh; set_aside exp/S"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and len(list(tmp_path.glob("exp/S.old-*"))) == 1


def test_a_second_run_sh_on_a_running_stage_leaves_its_log_alone(tmp_path):
    # the second run.sh truncated the first one's exp/log/stage<N>_<dir>.log before its stage refused
    (tmp_path / "stage.py").write_text(STAGE)
    (tmp_path / "stage.py").chmod(0o755)
    script = f"set -euo pipefail; . {ROOT}/utils/stage_lib.sh; run_stage 3 exp/S/.done.train ./stage.py ."
    first = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "started").exists():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        log = tmp_path / "exp" / "log" / "stage3_exp_S.log"
        log.write_text("the first run's lines\n")  # (what its stage printed so far)
        second = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=30)
        assert second.returncode == 1, second.stderr
        assert "another run.sh is running stage 3 into exp/S (it holds exp/log/stage3_exp_S.log)" in second.stderr
        assert log.read_text() == "the first run's lines\n"
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 143


def scored_recipe(tmp_path: Path, recipe: Path) -> Path:
    """A recipe copy at stage 5: two systems (T, U) whose embeddings of data/set stage 4 made."""
    from test_extract import tiny_data, tiny_system

    fresh = tmp_path / "r"
    shutil.copytree(recipe, fresh, symlinks=True, ignore=shutil.ignore_patterns("corpus", "data", "exp"))
    exp, _ = tiny_system(fresh)
    data = tiny_data(fresh, n=6)
    utts = sorted(data.wav_scp)
    (data.path / "trials").mkdir()
    (data.path / "trials" / "l").write_text(f"{utts[0]} {utts[2]} target\n{utts[0]} {utts[1]} nontarget\n"
                                            f"{utts[3]} {utts[5]} target\n{utts[3]} {utts[4]} nontarget\n")
    stamp = "the mini corpus\n"
    (fresh / "data" / ".done").write_text(stamp)
    p = subprocess.run(["steps/extract.sh", "exp/T", "data/set"], cwd=fresh, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    (exp / "embeddings" / "set" / ".done").write_text(stamp)
    shutil.copytree(exp, fresh / "exp" / "U")
    return fresh


@pytest.mark.slow
def test_stage_5_jobs_on_slurm_score_as_the_local_run(tmp_path, recipe, slurm_cluster):
    """Stage 5 as one job per system through score_cmd: on the Slurm test cluster the same scores
    and metrics as the local run; a system whose job fails stops the stage naming its log, and
    the re-run scores that system alone."""
    fresh = scored_recipe(tmp_path, recipe)
    opts = ["--stage", "5", "--stop-stage", "5", "--systems", "T U"]
    local = run(fresh, *opts)
    assert local.returncode == 0, local.stdout[-2000:] + local.stderr[-2000:]
    outputs = [f"exp/{s}/scores/set/l.{kind}" for s in "TU" for kind in ("score", "metrics.json")]
    want = {f: (fresh / f).read_bytes() for f in outputs}
    for s in "TU":
        shutil.rmtree(fresh / "exp" / s / "scores")
    cmd_sh = fresh / "cmd.sh"
    cmd_sh.write_text(cmd_sh.read_text() + 'score_cmd="slurm.py --time=5"\n')
    on_slurm = run(fresh, *opts, env=slurm_cluster.env)
    assert on_slurm.returncode == 0, on_slurm.stdout[-2000:] + on_slurm.stderr[-2000:]
    assert "stage 5: slurm.py --time=5 JOB=1:2 exp/log/score.JOB.log" in on_slurm.stdout
    assert {f: (fresh / f).read_bytes() for f in outputs} == want
    for job, s in ((1, "T"), (2, "U")):
        log = (fresh / "exp" / "log" / f"score.{job}.log").read_text()
        assert f"steps/score.sh exp/{s} data/set" in log and "# Ended (code 0)" in log

    shutil.rmtree(fresh / "exp" / "U" / "scores")
    # U's job fails as it runs (a file where its scores folder goes): the provenance check before
    # the jobs finds nothing wrong with its embeddings
    (fresh / "exp" / "U" / "scores").write_text("in the way\n")
    failed = run(fresh, *opts, env=slurm_cluster.env)
    assert failed.returncode == 1
    assert "stage 5: slurm.py --time=5 JOB=1:1 exp/log/score.JOB.log" in failed.stdout  # T's scores are done
    assert "1 / 1 job(s) failed:\n  job 1 (exit 1), log exp/log/score.1.log" in failed.stdout
    assert "run.sh: stage 5 failed" in failed.stderr
    assert "exp/U/scores" in (fresh / "exp" / "log" / "score.1.log").read_text()
    (fresh / "exp" / "U" / "scores").unlink()
    fixed = run(fresh, *opts, env=slurm_cluster.env)
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert "JOB=1:1" in fixed.stdout and "--systems U " in fixed.stdout
    assert {f: (fresh / f).read_bytes() for f in outputs} == want


def test_a_finished_stage_whose_record_no_longer_agrees_is_redone(tmp_path):
    """run_stage skips a stage on its marker only while the provenance record of the marker's
    folder agrees with the disk (utils/check_provenance.py); require stops naming the stage."""
    from spkid.expdir import Record

    out = tmp_path / "exp" / "S" / "scores" / "set"
    out.mkdir(parents=True)
    (tmp_path / "list").write_text("a b target\n")
    (out / "l.score").write_text("a b 0.5\n")
    Record.made_from(out, 5, "steps/score.sh", {"trials/l": tmp_path / "list"}).write([out / "l.score"])
    (out / ".done").write_text("\n")
    (tmp_path / "stage.sh").write_text("#!/bin/sh\necho ran >> ran\n")
    (tmp_path / "stage.sh").chmod(0o755)
    lib = f"set -euo pipefail; . {ROOT}/utils/stage_lib.sh;"

    def bash(line):
        return subprocess.run(["bash", "-c", lib + line], cwd=tmp_path, capture_output=True, text=True, timeout=60)

    r = bash("run_stage 5 exp/S/scores/set/.done ./stage.sh")
    assert r.returncode == 0 and "exists, skipping" in r.stdout and not (tmp_path / "ran").exists(), r.stderr
    (tmp_path / "list").write_text("a b nontarget\n")  # the trial list changed after stage 5
    r = bash("require exp/S/scores/set/.done 5 'score S'")
    assert r.returncode == 1 and "exp/S/scores/set: list changed (sha256 " in r.stderr, r.stderr
    assert "no longer matches what made it (above): score S again first (./run.sh --stage 5 --stop-stage 5" in r.stderr
    r = bash("run_stage 5 exp/S/scores/set/.done ./stage.sh")
    assert r.returncode == 0 and "no longer matches what made it (above): redoing it" in r.stdout, r.stderr
    assert (tmp_path / "ran").read_text() == "ran\n"
