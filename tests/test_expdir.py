"""spkid.expdir: the layout of exp/<SYS>, as run.sh, the README and users' scripts spell it."""

from pathlib import Path

from spkid.expdir import COHORT, SystemDir, fusion_dir


def test_the_layout_users_rely_on(tmp_path):
    sys_dir = SystemDir(tmp_path / "exp" / "EA4")
    root = tmp_path / "exp" / "EA4"
    assert (sys_dir.config, sys_dir.final, sys_dir.checkpoints, sys_dir.log) == (
        root / "config.conf", root / "final.pt", root / "checkpoints", root / "log")
    assert sys_dir.embeddings("vox1") == root / "embeddings" / "vox1"
    assert sys_dir.embeddings(COHORT) == root / "embeddings" / "cohort"
    assert sys_dir.score_file("vox1", "vox1_O") == root / "scores" / "vox1" / "vox1_O.score"
    assert fusion_dir(tmp_path / "exp", "F2").score_file("vox1", "vox1_H") == (
        tmp_path / "exp" / "fusion" / "F2" / "scores" / "vox1" / "vox1_H.score")


def test_derived_and_initialised_records_round_trip(tmp_path):
    base, derived = SystemDir(tmp_path / "exp" / "EA4"), SystemDir(tmp_path / "exp" / "EA4_ms")
    assert derived.derived_from() is None and derived.initialised_from() is None
    derived.record_derived_from(base)
    # relative, so that a moved exp/ still finds its base
    assert (derived.root / "derived_from").read_text() == "../EA4\n"
    assert derived.derived_from() == base
    derived.record_derived_from(None)
    assert derived.derived_from() is None
    derived.record_initialised_from(tmp_path / "exp" / "EA4")
    assert derived.initialised_from() == str((tmp_path / "exp" / "EA4").resolve())
    assert Path(derived.initialised_from()).name == "EA4"
