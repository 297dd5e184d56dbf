"""Stage 1 and 2 for --corpus voxceleb end to end, against a fake VoxCeleb served on 127.0.0.1:
download (with a broken transfer resumed by the second run), md5 checks, extraction, m4a->wav
with a corrupt file, the corpus layout, and local/prepare_data.py on top of it."""

import os
import subprocess
from pathlib import Path

from fake_voxceleb import FakeServer, ServerState, make_fake_corpus, wav_bytes
from spkid.data.datadir import DataDir
from spkid.data.validate import validate_data_dir

ROOT = Path(__file__).resolve().parents[1]
SECRET = "Zq9-secret-key"


def run(args, env_key=SECRET):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPKID_VOX_")}
    if env_key:
        env["SPKID_VOX_KEY"] = env_key
    return subprocess.run([str(ROOT / "local" / "download_voxceleb.sh"), *args], capture_output=True,
                          text=True, env=env, timeout=120)


def all_text_under(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file() and p.suffix in ("", ".txt", ".md5", ".part", ".bad"))


def test_download_convert_prepare(tmp_path):
    fake = make_fake_corpus(tmp_path / "src")
    state = ServerState(files=fake.files, key=SECRET, cut_once={"vox2_dev_aac_partac": 700})
    corpus = tmp_path / "corpus"
    with FakeServer(state) as srv:
        args = ["--corpus-dir", str(corpus), "--nj", "2", "--quiet", "true", "--retries", "0",
                "--vox-url", srv.url + "/vox?key={key}&file={file}", "--lists-url", srv.url + "/{file}",
                "--musan-url", srv.url + "/{file}", "--rirs-url", srv.url + "/{file}",
                "--md5-list", srv.url + "/md5.txt",
                "--voxsrc20-list", srv.url + "/voxsrc2020_val.txt",
                "--voxsrc20-audio", srv.url + "/voxceleb1_cd.zip"]

        p = run(args, env_key="")
        assert p.returncode == 1 and "no VoxCeleb access key" in p.stderr and "SPKID_VOX_KEY" in p.stderr

        p = run(args)  # the transfer of part ac breaks
        assert p.returncode == 1, p.stderr
        assert "vox2_dev_aac_partac" in p.stderr and "run the same command again to resume" in p.stderr

        p = run(args)  # resumes; the corrupt m4a fails the stage, named, the rest converted
        assert p.returncode == 1, p.stderr
        corrupt = str(corpus / "voxceleb2" / "aac" / f"{fake.corrupt_m4a}.m4a")
        assert "1 file(s) failed to convert" in p.stderr and corrupt in p.stderr
        assert "--max-convert-failures 1" in p.stderr
        assert srv.range_requests("vox2_dev_aac_partac") == ["bytes=700-"]

        p = run(args + ["--max-convert-failures", "1"])
        assert p.returncode == 0, p.stderr
        assert corrupt in p.stdout and "stage 1 done" in p.stdout
        outputs = p.stdout + p.stderr

        n = len(state.requests)
        p = run(args + ["--max-convert-failures", "1"])  # everything done: no request at all
        assert p.returncode == 0 and len(state.requests) == n
        assert p.stdout.count("done earlier") == 6

    # the corpus layout docs/voxceleb.md shows
    wavs = lambda d: sorted(str(q.relative_to(d).with_suffix("")) for q in d.rglob("*.wav"))  # noqa: E731
    assert wavs(corpus / "voxceleb1" / "wav") == sorted(fake.vox1_utts)
    vox2_ok = sorted(u for u in fake.vox2_utts if u != fake.corrupt_m4a)
    assert wavs(corpus / "voxceleb2" / "wav") == vox2_ok
    train_list = (corpus / "lists" / "train_list.txt").read_text().splitlines()
    assert train_list == [f"{u.split('/')[0]} {u}.wav" for u in vox2_ok]
    for name in ("veri_test2.txt", "list_test_all2.txt", "list_test_hard2.txt", "voxsrc2020_val.txt"):
        assert (corpus / "lists" / name).read_text().splitlines() == fake.trials[name]
    assert len(list((corpus / "musan").rglob("*.wav"))) == 6
    assert {q.parent.parent.name for q in (corpus / "RIRS_NOISES").rglob("*.wav")} == {"smallroom", "mediumroom"}
    assert (corpus / "voxsrc2020_val" / "wav" / "voxceleb1_cd" / "id10001" / "000912.wav").is_file()
    assert (corpus / "voxsrc2020_val" / "wav" / "voxceleb1").resolve() == (corpus / "voxceleb1" / "wav").resolve()
    assert not list((corpus / "downloads").glob("*_parta?"))  # parts removed once concatenated
    assert SECRET not in outputs and SECRET.encode() not in all_text_under(corpus)

    data = tmp_path / "data"
    p = subprocess.run([str(ROOT / "local" / "prepare_data.py"), "--corpus-dir", str(corpus), "--data", str(data)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert sorted(DataDir.load(data / "vox2_dev").wav_scp) == vox2_ok
    assert sorted(DataDir.load(data / "vox1").wav_scp) == sorted(fake.vox1_utts)
    for d in ("vox2_dev", "vox1", "vox1_test", "voxsrc20_val", "musan_noise", "musan_music", "musan_speech", "rirs"):
        assert validate_data_dir(data / d, augmentation=d == "rirs") == [], d
    for name in ("vox1_O", "vox1_E", "vox1_H"):
        assert (data / "vox1" / "trials" / name).is_file()
    assert (data / "voxsrc20_val" / "trials" / "voxsrc20_val").is_file()
    # the official list's speakers are the idNNNNN parts, its voxceleb1/ side has VoxCeleb1's ids
    assert DataDir.load(data / "voxsrc20_val").utt2spk == {
        "id10001/sess1a/00001": "id10001", "id10001/sess1a/00002": "id10001",
        "id10001/voxceleb1_cd/000912": "id10001", "id10002/voxceleb1_cd/000007": "id10002"}


def unpack(data: bytes, dest: Path) -> None:
    import io
    import tarfile
    import zipfile
    dest.mkdir(parents=True, exist_ok=True)
    if data[:2] == b"PK":
        zipfile.ZipFile(io.BytesIO(data)).extractall(dest)
    else:
        tarfile.open(fileobj=io.BytesIO(data)).extractall(dest, filter="data")


def test_corpora_already_on_disk_through_stages_1_and_2(tmp_path):
    """VoxCeleb1 as two extracted archives, VoxCeleb2 as the m4a tree (one speaker converted in
    place, as other recipes do), MUSAN and RIRS_NOISES as extracted, the lists put in by hand,
    the official VoxSRC 2020 list: no network, stage 1 links and converts, stage 2 prepares."""
    fake = make_fake_corpus(tmp_path / "src")
    mine = tmp_path / "mine"
    unpack(b"".join(fake.files[f"vox1_dev_wav_parta{c}"] for c in "abcd"), mine / "vox1_dev_wav")
    unpack(fake.files["vox1_test_wav.zip"], mine / "vox1_test_wav")
    unpack(fake.files["vox2_dev_aac.zip"], mine / "vox2")
    unpack(fake.files["musan.tar.gz"], mine)
    unpack(fake.files["rirs_noises.zip"], mine)
    unpack(fake.files["voxceleb1_cd.zip"], mine / "voxsrc")
    in_place = sorted((mine / "vox2/dev/aac/id00001").rglob("*.m4a"))
    for m in in_place:  # converted beside the m4a by another recipe: used as it is
        m.with_suffix(".wav").write_bytes(wav_bytes(300))
    corpus = tmp_path / "corpus"
    (corpus / "lists").mkdir(parents=True)
    for name in ("veri_test2.txt", "list_test_all2.txt", "list_test_hard2.txt", "voxsrc2020_val.txt"):
        (corpus / "lists" / name).write_bytes(fake.files[name])
    conf = tmp_path / "download.conf"
    conf.write_text(f"--vox1-dir={mine / 'vox1_dev_wav'} {mine / 'vox1_test_wav'}\n--musan-dir={mine / 'musan'}\n")

    def stage1(*extra):
        cmd = [str(ROOT / "local" / "download_corpora.py"), "--config", str(conf), "--corpus-dir", str(corpus),
               "--skip-download", "true", "--quiet", "true", "--nj", "2", *extra]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    p = stage1("--vox2-dir", str(mine), "--rirs-dir", str(mine / "musan"))
    assert p.returncode == 1 and f"--vox2-dir {mine}: no speaker folders (idNNNNN) in {mine / 'dev/aac'}" in p.stderr
    p = stage1("--vox2-dir", str(mine / "vox2"), "--rirs-dir", str(mine / "musan"))
    assert p.returncode == 1 and (f"--rirs-dir {mine / 'musan'}: expected RIRS_NOISES as extracted, with "
                                  f"simulated_rirs/smallroom, simulated_rirs/mediumroom in it") in p.stderr
    args = ("--vox2-dir", str(mine / "vox2"), "--rirs-dir", str(mine / "RIRS_NOISES"), "--max-convert-failures", "1",
            "--voxsrc20-list", str(corpus / "lists" / "voxsrc2020_val.txt"), "--voxsrc20-audio", str(mine / "voxsrc"))
    p = stage1(*args)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "vox1: 4 speakers linked" in p.stdout and "vox2: 1 speakers' wav files linked" in p.stdout
    assert "2 speakers' m4a files to convert" in p.stdout
    assert (corpus / "voxceleb1/wav/id10001").resolve() == (mine / "vox1_dev_wav/wav/id10001").resolve()
    assert (corpus / "voxceleb1/wav/id10270").resolve() == (mine / "vox1_test_wav/wav/id10270").resolve()
    assert (corpus / "voxceleb2/wav/id00001").resolve() == (mine / "vox2/dev/aac/id00001").resolve()
    assert not list((mine / "vox2/dev/aac/id00002").rglob("*.wav"))  # the user's copy is never written to
    vox2_ok = sorted(u for u in fake.vox2_utts if u != fake.corrupt_m4a)
    assert sorted(line.split()[1][:-4] for line in (corpus / "lists/train_list.txt").read_text().splitlines()) == vox2_ok
    assert stage1(*args).returncode == 0  # re-run: nothing to do

    data = tmp_path / "data"
    p = subprocess.run([str(ROOT / "local" / "prepare_data.py"), "--corpus-dir", str(corpus), "--data", str(data)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert sorted(DataDir.load(data / "vox1").wav_scp) == sorted(fake.vox1_utts)
    assert sorted(DataDir.load(data / "vox2_dev").wav_scp) == vox2_ok
    for d in ("vox2_dev", "vox1", "vox1_test", "voxsrc20_val", "musan_noise", "musan_music", "musan_speech", "rirs"):
        assert validate_data_dir(data / d, augmentation=d == "rirs") == [], d
    assert set(DataDir.load(data / "voxsrc20_val").utt2spk.values()) == {"id10001", "id10002"}
