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


def test_fingerprints_are_sha256_and_a_stat_stands_for_the_content_only_when_not_racy(tmp_path, monkeypatch):
    import hashlib
    import time

    from spkid import expdir

    f = tmp_path / "embeddings.ark"
    f.write_bytes(bytes(range(256)) * 40000)  # 10 MB: more than one read chunk
    entry = expdir.fingerprint(f, tmp_path)
    assert entry["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()  # what sha256sum prints
    assert entry["path"] == "embeddings.ark"
    assert entry["stat"] is None  # written just now: a later write may keep its timestamps
    f.write_bytes(bytes(reversed(range(256))) * 40000)  # same size, other content
    assert "changed (sha256 " in expdir.fingerprint_problem(entry, tmp_path)

    monkeypatch.setattr(expdir, "RACY_NS", 0)  # as if the file had been written long ago
    entry = expdir.fingerprint(f, tmp_path)
    assert entry["stat"] is not None
    hashed = []
    monkeypatch.setattr(expdir, "file_digest", lambda p: hashed.append(p) or "0" * 64)
    assert expdir.fingerprint_problem(entry, tmp_path) is None and not hashed  # a stat, not 10 MB read
    time.sleep(0.05)
    with open(f, "r+b") as out:  # one byte in place: size kept, mtime and ctime move
        out.seek(5)
        out.write(b"\0")
    assert "changed" in expdir.fingerprint_problem(entry, tmp_path) and hashed == [f]
    f.unlink()
    assert expdir.fingerprint_problem(entry, tmp_path) == f"{f} is missing"


def test_check_current_names_the_stale_file_and_the_stage_to_rerun(tmp_path):
    import pytest

    from spkid.errors import SpkidError
    from spkid.expdir import Record, check_current

    sets = tmp_path / "embeddings" / "vox1"
    sets.mkdir(parents=True)
    (tmp_path / "final.pt").write_bytes(b"weights")
    (sets / "embeddings.ark").write_bytes(b"ark")
    with pytest.raises(SpkidError, match="has no readable provenance.json .* re-run stage 4 for it: EXTRACT"):
        check_current(sets, 4, "EXTRACT")
    Record.made_from(sets, 4, "EXTRACT", {"final.pt": tmp_path / "final.pt"}).write([sets / "embeddings.ark"])
    assert check_current(sets, 4, "EXTRACT", ["embeddings.ark"]).inputs["final.pt"]["path"] == "../../final.pt"
    with pytest.raises(SpkidError, match="embeddings.scp was not made by that stage since stage 4"):
        check_current(sets, 4, "EXTRACT", ["embeddings.scp"])
    (tmp_path / "final.pt").write_bytes(b"retrained")
    with pytest.raises(SpkidError, match=rf"{tmp_path}/final.pt changed \(sha256 [0-9a-f]{{8}} recorded, "
                                         rf"[0-9a-f]{{8}} now\) since stage 4 made {sets}: re-run stage 4 for it: EXTRACT"):
        check_current(sets, 4, "EXTRACT", ["embeddings.ark"])


def test_a_record_is_data_malformed_or_naming_a_device_is_not_trusted(tmp_path):
    import json

    from spkid.expdir import RECORD, Record

    (tmp_path / "x").write_bytes(b"x")
    Record.made_from(tmp_path, 5, "redo", {"x": tmp_path / "x"}).write([])
    body = json.loads((tmp_path / RECORD).read_text())
    body["inputs"]["x"]["path"] = "/dev/zero"  # hashing it would never end
    (tmp_path / RECORD).write_text(json.dumps(body))
    assert Record.load(tmp_path).problems() == ["/dev/zero is not a regular file"]
    body["inputs"]["x"] = "not an entry"
    (tmp_path / RECORD).write_text(json.dumps(body))
    assert Record.load(tmp_path) is None
    (tmp_path / RECORD).write_bytes(b"\xff\xfe junk")
    assert Record.load(tmp_path) is None


def test_a_record_checks_its_options_against_config_conf_without_importing_torch(tmp_path):
    # run.sh asks utils/check_provenance.py before skipping each finished stage output: reading
    # config.conf through the registries imported torch, about 2 s a call
    import subprocess
    import sys

    from spkid.config import read_resolved, read_values, to_conf_lines, write_resolved
    from spkid.expdir import Record
    from spkid.options import SYSTEM_OPTIONS, EvalOptions, ModelOptions

    config = tmp_path / "config.conf"
    write_resolved(config, ModelOptions(trunk="ECAPA", pool_std_floor=1e-10), EvalOptions(num_eval_crops=5))
    assert read_values(config, SYSTEM_OPTIONS) == dict(
        line.split("=", 1) for line in to_conf_lines(*read_resolved(config, SYSTEM_OPTIONS)))
    out = tmp_path / "scores"
    out.mkdir()
    (out / "a.score").write_text("x y 0.5\n")
    Record.made_from(out, 5, "SCORE", {}, config, {"--num-eval-crops": "5", "--trunk": "ECAPA"}).write([out / "a.score"])
    check = ("import sys; from spkid.expdir import Record; "
             "print(Record.load(sys.argv[1]).problems(), 'torch' in sys.modules)")
    run = lambda: subprocess.run([sys.executable, "-c", check, str(out)], capture_output=True, text=True, check=True).stdout
    assert run() == "[] False\n"
    config.write_text(config.read_text().replace("--num-eval-crops=5", "--num-eval-crops=10"))
    assert run() == f"['{config} now sets --num-eval-crops=10 (made with 5)'] False\n"
