import soundfile as sf

from fake_voxceleb import m4a_bytes
from spkid.corpora.convert import convert_tree, describe_failures, find_files


def test_convert_tree_parallel_resumable_and_names_failures(tmp_path):
    src, dst = tmp_path / "aac", tmp_path / "wav"
    good = m4a_bytes(tmp_path, 440, seconds=0.6)
    rels = ["id00001/a/00001.m4a", "id00001/a/00002.m4a", "id00002/b/00001.m4a"]
    for rel in rels:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(good)
    (src / "id00002/b/00002.m4a").write_bytes(b"\x00" * 300)  # corrupt
    failures = tmp_path / "failures.txt"

    res = convert_tree(src, dst, nj=2, progress=False, failures_file=failures)
    assert (res.converted, res.skipped) == (3, 0)
    assert [rel for rel, _ in res.failed] == ["id00002/b/00002.m4a"]
    assert find_files(dst, ".wav") == [r.replace(".m4a", ".wav") for r in rels]
    assert not list(dst.rglob(".*.tmp"))
    info = sf.info(str(dst / "id00001/a/00001.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert abs(info.duration - 0.6) < 0.05
    text = describe_failures(res, src, failures)
    assert str(src / "id00002/b/00002.m4a") in text and "1 file(s) failed" in text and str(failures) in text
    assert failures.read_text().startswith(str(src / "id00002/b/00002.m4a") + "\t")

    res2 = convert_tree(src, dst, nj=2, progress=False, failures_file=failures)  # resumes: only the bad one again
    assert (res2.converted, res2.skipped, len(res2.failed)) == (0, 3, 1)
    (src / "id00002/b/00002.m4a").write_bytes(good)  # fixed by the user
    res3 = convert_tree(src, dst, nj=1, progress=False, failures_file=failures)
    assert (res3.converted, res3.skipped, res3.failed) == (1, 3, [])
    assert not failures.exists()


def test_conversion_as_slurm_jobs_writes_the_local_wavs(tmp_path, slurm_cluster, monkeypatch):
    """--cmd slurm.py: the files to do split into --nj lists, one Slurm job each (local/convert_m4a.py),
    the wav files byte for byte those converted here, the failed file reported alike."""
    import sys
    from pathlib import Path

    from spkid.corpora.convert import ConvertJobs

    src = tmp_path / "aac"
    rels = [f"id0000{s}/v/0000{n}.m4a" for s in (1, 2) for n in (1, 2)]
    for i, rel in enumerate(rels):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(m4a_bytes(tmp_path, 300 + 100 * i, seconds=0.3) if i != 2 else b"\0" * 300)
    here = convert_tree(src, tmp_path / "here", nj=2, progress=False)
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    job = [sys.executable, str(Path(__file__).resolve().parents[1] / "local" / "convert_m4a.py")]
    jobs = ConvertJobs("slurm.py --time=5", job, tmp_path / "work")
    there = convert_tree(src, tmp_path / "there", nj=2, progress=False, jobs=jobs)
    assert (there.converted, [r for r, _ in there.failed]) == (here.converted, [r for r, _ in here.failed]) == (3, [rels[2]])
    assert there.failed == here.failed
    wavs = find_files(tmp_path / "here", ".wav")
    assert wavs == find_files(tmp_path / "there", ".wav") and len(wavs) == 3
    for rel in wavs:
        assert (tmp_path / "here" / rel).read_bytes() == (tmp_path / "there" / rel).read_bytes()
    for k in (1, 2):
        assert "convert_m4a.py: 2 files of" in (tmp_path / "work" / "log" / f"convert.{k}.log").read_text()
    again = convert_tree(src, tmp_path / "there", nj=2, progress=False, jobs=jobs)  # only the failed file again
    assert (again.converted, again.skipped, len(again.failed)) == (0, 3, 1)
    assert "1 files of" in (tmp_path / "work" / "log" / "convert.1.log").read_text()
