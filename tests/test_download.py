import hashlib
import subprocess
from pathlib import Path

import pytest

from fake_voxceleb import FakeServer, ServerState, md5, split, tgz_bytes, zip_bytes
from spkid.corpora.voxceleb import CorpusObtainer, ObtainOptions
from spkid.errors import SpkidError
from spkid.corpora.archives import concatenate, extract, regex_selector
from spkid.corpora.download import DownloadError, Secrets, Source, fetch, fill_template, read_md5_list

DATA = bytes(range(256)) * 1000  # 256 kB
SECRET = "s3cr3t-K3y"


def src(server: FakeServer, name: str, key: str = "") -> Source:
    url, display = fill_template(server.url + "/vox?key={key}&file={file}", name, key)
    return Source(url, display)


def get(source: Source, dest: Path, want: str | None, **kw) -> Path:
    kw.setdefault("retries", 0)
    return fetch(source, dest, want, secrets=Secrets(SECRET), backoff=0.0, progress=False, log=lambda m: None, **kw)


def test_resume_after_interrupted_transfer(tmp_path):
    state = ServerState(files={"big.bin": DATA}, key=SECRET, cut_once={"big.bin": 100_000})
    dest = tmp_path / "big.bin"
    with FakeServer(state) as srv:
        with pytest.raises(DownloadError, match=r"big\.bin.*run the same command again to resume") as e:
            get(src(srv, "big.bin", SECRET), dest, md5(DATA))
        part = tmp_path / "big.bin.part"
        assert part.stat().st_size == 100_000 and not dest.exists()
        assert SECRET not in str(e.value)
        get(src(srv, "big.bin", SECRET), dest, md5(DATA))  # the second run resumes
        assert srv.range_requests("big.bin") == ["bytes=100000-"]
    assert hashlib.md5(dest.read_bytes()).hexdigest() == md5(DATA)
    assert not part.exists() and (tmp_path / "big.bin.md5").read_text().split()[0] == md5(DATA)


def test_retry_resumes_within_one_run_and_verified_file_is_not_fetched_again(tmp_path):
    state = ServerState(files={"big.bin": DATA}, cut_once={"big.bin": 5000})
    with FakeServer(state) as srv:
        get(src(srv, "big.bin"), tmp_path / "big.bin", md5(DATA), retries=2)
        assert srv.range_requests("big.bin") == ["bytes=5000-"]
        n = len(state.requests)
        get(src(srv, "big.bin"), tmp_path / "big.bin", md5(DATA))
        assert len(state.requests) == n
    assert (tmp_path / "big.bin").read_bytes() == DATA


def test_server_ignoring_range_restarts_from_zero(tmp_path):
    state = ServerState(files={"big.bin": DATA}, ignore_range=True)
    (tmp_path / "big.bin.part").write_bytes(b"stale bytes")
    with FakeServer(state) as srv:
        get(src(srv, "big.bin"), tmp_path / "big.bin", md5(DATA))
    assert (tmp_path / "big.bin").read_bytes() == DATA


def test_md5_mismatch_names_file_and_moves_it_aside(tmp_path):
    state = ServerState(files={"vox1_test_wav.zip": DATA})
    with FakeServer(state) as srv:
        with pytest.raises(DownloadError) as e:
            get(src(srv, "vox1_test_wav.zip"), tmp_path / "vox1_test_wav.zip", "0" * 32)
    msg = str(e.value)
    assert "md5 mismatch for vox1_test_wav.zip" in msg and "0" * 32 in msg and md5(DATA) in msg
    bad = tmp_path / "vox1_test_wav.zip.bad"
    assert str(bad) in msg and bad.read_bytes() == DATA
    assert not (tmp_path / "vox1_test_wav.zip").exists() and not (tmp_path / "vox1_test_wav.zip.part").exists()


def test_bad_key_html_page_and_not_found_are_clear_and_redacted(tmp_path):
    state = ServerState(files={"a": DATA}, key=SECRET)
    with FakeServer(state) as srv:
        with pytest.raises(DownloadError, match=r"refused access \(HTTP 403\)") as e:
            get(src(srv, "a", "wrong-key"), tmp_path / "a", None)
        with pytest.raises(DownloadError, match=r"not found \(HTTP 404\)") as e2:
            get(src(srv, "missing", SECRET), tmp_path / "missing", None)
        state.html_instead = True
        with pytest.raises(DownloadError, match="HTML page instead of a") as e3:
            get(src(srv, "a", SECRET), tmp_path / "a", None)
    for err in (e2, e3):
        assert SECRET not in str(err.value) and "key=***" in str(err.value)
    assert "wrong-key" not in str(e.value)


def test_basic_auth_only_with_credentials(tmp_path):
    state = ServerState(files={"a": DATA}, user=("joe", SECRET))
    with FakeServer(state) as srv:
        url = srv.url + "/a"
        with pytest.raises(DownloadError, match=r"refused access \(HTTP 401\)"):
            get(Source(url, url), tmp_path / "a", None)
        get(Source(url, url, Source.basic_auth("joe", SECRET)), tmp_path / "a", md5(DATA))
    assert (tmp_path / "a").read_bytes() == DATA


def opts_for(srv: FakeServer, corpus: Path, **kw) -> ObtainOptions:
    base = dict(corpus_dir=str(corpus), vox_url=srv.url + "/vox?key={key}&file={file}",
                lists_url=srv.url + "/{file}", musan_url=srv.url + "/{file}", rirs_url=srv.url + "/{file}",
                retries=0, quiet=True)
    base.update(kw)
    return ObtainOptions(**base)


def test_missing_key_is_a_clear_error_before_any_download(tmp_path):
    state = ServerState(files={}, key=SECRET)
    with FakeServer(state) as srv:
        stage = CorpusObtainer(opts_for(srv, tmp_path / "c", components="vox1"), log=lambda m: None)
        with pytest.raises(DownloadError, match=r"no VoxCeleb access key.*SPKID_VOX_KEY.*--skip-download true"):
            stage.run()
    assert state.requests == []


def test_skip_download_skips_what_is_missing_one_line_each(tmp_path):
    (tmp_path / "c" / "voxceleb1" / "wav" / "id1" / "s").mkdir(parents=True)
    (tmp_path / "c" / "voxceleb1" / "wav" / "id1" / "s" / "00001.wav").write_bytes(b"x")
    (tmp_path / "c" / "lists").mkdir()
    (tmp_path / "c" / "lists" / "veri_test2.txt").write_text("1 id1/s/00001.wav id1/s/00001.wav\n")
    opts = ObtainOptions(corpus_dir=str(tmp_path / "c"), skip_download=True, components="lists,vox1,musan,rirs",
                         quiet=True)
    logs = []
    CorpusObtainer(opts, log=logs.append).run()  # VoxCeleb1 with a list: enough to evaluate on
    assert any("vox1: found in" in m for m in logs)
    skipped = [m for m in logs if "--skip-download true: skipped" in m]
    assert [m.split(":")[0] for m in skipped] == ["lists", "musan", "rirs"]
    assert "list_test_all2.txt" in skipped[0] and "veri_test2.txt" not in skipped[0]
    assert "training augmentation" in skipped[1]


def test_skip_download_with_nothing_to_evaluate_is_an_error(tmp_path):
    (tmp_path / "c" / "voxceleb1" / "wav" / "id1" / "s").mkdir(parents=True)
    (tmp_path / "c" / "voxceleb1" / "wav" / "id1" / "s" / "00001.wav").write_bytes(b"x")
    opts = ObtainOptions(corpus_dir=str(tmp_path / "c"), skip_download=True, components="lists,vox1,musan,rirs",
                         quiet=True)
    with pytest.raises(Exception, match=r"holds nothing to evaluate on.*missing: lists, musan, rirs.*--lists-dir"):
        CorpusObtainer(opts, log=lambda m: None).run()


def test_concatenate_checks_the_whole_archive(tmp_path):
    whole = zip_bytes({"wav/id1/s/00001.wav": DATA})
    parts = []
    for i, chunk in enumerate(split(whole, 4)):
        parts.append(tmp_path / f"p{i}")
        parts[-1].write_bytes(chunk)
    (tmp_path / ".whole.zip.4242.tmp").write_bytes(b"left by a killed concatenation")
    out = concatenate(parts, tmp_path / "whole.zip", md5(whole), progress=False)
    assert out.read_bytes() == whole
    with pytest.raises(DownloadError, match=r"md5 mismatch for bad\.zip \(concatenated from p0 \.\. p3\)"):
        concatenate(parts, tmp_path / "bad.zip", "f" * 32, progress=False)
    assert (tmp_path / "bad.zip.bad").is_file() and all(p.is_file() for p in parts)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_extract_selects_strips_and_resumes(tmp_path):
    members = {"dev/aac/id00001/v1/00001.m4a": b"a" * 10, "dev/aac/id00001/v1/00002.m4a": b"b" * 10,
               "dev/README": b"skip me"}
    arc = tmp_path / "a.zip"
    arc.write_bytes(zip_bytes(members))
    sel = regex_selector(r"(?:^|/)(id\d+/[^/]+/\d+\.m4a)$")
    assert extract(arc, tmp_path / "out", sel, progress=False) == (2, 0)
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.m4a")) == [
        "id00001/v1/00001.m4a", "id00001/v1/00002.m4a"]
    (tmp_path / "out" / "id00001" / "v1" / "00002.m4a").write_bytes(b"trunc")  # an interrupted member
    assert extract(arc, tmp_path / "out", sel, progress=False) == (1, 1)
    assert (tmp_path / "out" / "id00001" / "v1" / "00002.m4a").read_bytes() == b"b" * 10

    tgz = tmp_path / "m.tar.gz"
    tgz.write_bytes(tgz_bytes({"musan/noise/x/n1.wav": b"n", "musan/README": b"r"}))
    assert extract(tgz, tmp_path / "m", regex_selector(r"^(musan/noise/.+\.wav)$"), progress=False) == (1, 0)
    assert (tmp_path / "m" / "musan" / "noise" / "x" / "n1.wav").read_bytes() == b"n"

    evil = tmp_path / "evil.zip"
    evil.write_bytes(zip_bytes({"../escape.wav": b"x"}))
    with pytest.raises(DownloadError, match="outside the target directory"):
        extract(evil, tmp_path / "e", regex_selector(r"(.+\.wav)$"), progress=False)
    with pytest.raises(DownloadError, match="none of the expected files"):
        extract(arc, tmp_path / "n", regex_selector(r"(nothing)$"), progress=False)
    garbage = tmp_path / "g.zip"
    garbage.write_bytes(b"not an archive")
    with pytest.raises(DownloadError, match="neither a zip nor a tar"):
        extract(garbage, tmp_path / "g", sel, progress=False)


def test_read_md5_list_both_formats(tmp_path):
    p = tmp_path / "m.txt"
    p.write_text("# comment\nvox1_dev_wav_partaa e395d020928bc15670b570a21695ed96\n"
                 "185FDC63C3C739954633D50379A3D102  some/dir/vox1_test_wav.zip\n")
    assert read_md5_list(p) == {"vox1_dev_wav_partaa": "e395d020928bc15670b570a21695ed96",
                                "vox1_test_wav.zip": "185fdc63c3c739954633d50379a3d102"}
    p.write_text("vox1_dev_wav_partaa nothex\n")
    with pytest.raises(DownloadError, match=r"m\.txt:1"):
        read_md5_list(p)


def test_secrets_and_display_url():
    s = Secrets("a b/c", "")
    assert s.redact("x a b/c y a%20b%2Fc z a+b%2Fc") == "x *** y *** z ***"
    url, display = fill_template("https://u:pw@host/dl?key={key}&file={file}", "vox2_dev_aac_partaa", "K/1")
    assert url == "https://u:pw@host/dl?key=K%2F1&file=vox2_dev_aac_partaa"
    assert display == "https://host/dl?key=***&file=vox2_dev_aac_partaa"


def test_published_md5_table_is_well_formed():
    from spkid.corpora.sources import ARCHIVES, PUBLISHED_MD5, TRIAL_LISTS
    names = {a.name for arcs in ARCHIVES.values() for a in arcs} | {p for arcs in ARCHIVES.values()
                                                                    for a in arcs for p in a.parts}
    assert names | set(TRIAL_LISTS) == set(PUBLISHED_MD5)
    assert all(len(v) == 32 and int(v, 16) >= 0 for v in PUBLISHED_MD5.values())


def test_voxsrc_from_local_list_and_audio_directory(tmp_path):
    audio = tmp_path / "mine" / "voxsrc19"
    (audio / "a").mkdir(parents=True)
    (audio / "a" / "x.wav").write_bytes(b"RIFF")
    (audio / "a" / "y.wav").write_bytes(b"RIFF")
    lst = tmp_path / "v19.txt"
    lst.write_text("1 a/x.wav a/y.wav\n")
    opts = ObtainOptions(corpus_dir=str(tmp_path / "c"), components="voxsrc19,voxsrc20", voxsrc19_list=str(lst),
                         voxsrc19_audio=str(audio), quiet=True)
    logs = []
    CorpusObtainer(opts, log=logs.append).run()
    assert (tmp_path / "c" / "lists" / "voxsrc2019_test.txt").read_text() == lst.read_text()
    assert (tmp_path / "c" / "voxsrc2019" / "wav" / "a" / "y.wav").is_file()
    assert any(m.startswith("voxsrc20: no source given") for m in logs)

    lst.write_text("1 a/x.wav a/missing.wav\n")
    opts.corpus_dir = str(tmp_path / "d")
    with pytest.raises(Exception, match=r"1 of the 2 files of .*voxsrc2019_test.txt have no audio under .*\n"
                                        r"  1 come from the challenge's audio \(e.g. a/missing.wav"):
        CorpusObtainer(opts, log=logs.append).run()


def test_cli_refuses_credentials_in_a_conf_file(tmp_path):
    conf = tmp_path / "download.conf"
    conf.write_text("--nj=2\n--vox-key=abc\n")
    root = Path(__file__).resolve().parents[1]
    p = subprocess.run([str(root / "local" / "download_corpora.py"), "--config", str(conf), "--corpus-dir",
                        str(tmp_path / "c")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and f"{conf}:2: --vox-key must not be in a conf file" in p.stderr
    assert "abc" not in p.stderr


def test_full_disk_is_named_not_blamed_on_the_archive_or_network(tmp_path, monkeypatch):
    """ENOSPC while extracting keeps the (md5-checked) archive and says to free space."""
    import errno
    import zipfile

    from spkid.corpora import archives

    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("wav/id1/v/00001.wav", b"x" * 100)

    def full(src, dst, length):
        dst.write(src.read(10))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archives.shutil, "copyfileobj", full)
    with pytest.raises(DownloadError, match=r"No space left on device; free space .* the archive is kept"):
        archives.extract(archive, tmp_path / "out", lambda name: name)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]  # no partial member, no temporary file


def vox1_in_place(corpus: Path, utts: list[str]) -> None:
    for u in utts:
        p = corpus / "voxceleb1" / "wav" / f"{u}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"RIFF" + u.encode())


OFFICIAL_2020 = ["0 voxceleb1/id10955/fM25hh5Dd-E/00003.wav voxceleb1_cd/id10545/000912.wav",
                 "1 voxceleb1/id10545/aaaaaaaaaaa/00001.wav voxceleb1_cd/id10545/000912.wav"]


@pytest.mark.parametrize("members", ["voxceleb1_cd/{p}", "release/voxceleb1_cd/{p}", "{p}"])
def test_voxsrc2020_official_list_with_voxceleb1_in_place(tmp_path, members):
    """The issue's command as a user types it: the published list, voxceleb1_cd.zip, VoxCeleb1 there."""
    corpus = tmp_path / "C"
    vox1_in_place(corpus, ["id10955/fM25hh5Dd-E/00003", "id10545/aaaaaaaaaaa/00001"])
    (tmp_path / "trials.txt").write_text("\n".join(OFFICIAL_2020) + "\n")
    (tmp_path / "voxceleb1_cd.zip").write_bytes(zip_bytes({members.format(p="id10545/000912.wav"): b"RIFFcd",
                                                           members.format(p="id10999/000001.wav"): b"RIFFnot"}))
    root = Path(__file__).resolve().parents[1]
    cmd = [str(root / "local" / "download_corpora.py"), "--corpus-dir", str(corpus), "--components=voxsrc20",
           "--voxsrc20-list=trials.txt", "--voxsrc20-audio=voxceleb1_cd.zip", "--quiet", "true"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    audio = corpus / "voxsrc2020_val" / "wav"
    for line in OFFICIAL_2020:
        for path in line.split()[1:]:
            assert (audio / path).is_file(), path
    assert (audio / "voxceleb1_cd" / "id10545" / "000912.wav").read_bytes() == b"RIFFcd"
    assert not (audio / "voxceleb1_cd" / "id10999").exists()  # only what the list names

    from spkid.corpora.voxsrc import voxsrc_trials
    trials, wav_scp, utt2spk = voxsrc_trials(corpus / "lists" / "voxsrc2020_val.txt", audio)
    assert trials.enroll == ["id10955/fM25hh5Dd-E/00003", "id10545/aaaaaaaaaaa/00001"]
    assert trials.test == ["id10545/voxceleb1_cd/000912"] * 2 and list(trials.labels) == [0, 1]
    assert utt2spk == {"id10955/fM25hh5Dd-E/00003": "id10955", "id10545/aaaaaaaaaaa/00001": "id10545",
                       "id10545/voxceleb1_cd/000912": "id10545"}
    assert all(Path(w).is_file() for w in wav_scp.values())


def test_voxsrc2020_without_voxceleb1_names_what_is_missing_where(tmp_path):
    lst = tmp_path / "trials.txt"
    lst.write_text("\n".join(OFFICIAL_2020) + "\n")
    cd = tmp_path / "voxceleb1_cd" / "id10545"
    cd.mkdir(parents=True)
    (cd / "000912.wav").write_bytes(b"RIFF")
    opts = ObtainOptions(corpus_dir=str(tmp_path / "C"), components="voxsrc20", voxsrc20_list=str(lst),
                         voxsrc20_audio=str(tmp_path / "voxceleb1_cd"), quiet=True)  # the folder itself
    with pytest.raises(SpkidError) as e:
        CorpusObtainer(opts, log=lambda m: None).run()
    msg = str(e.value)
    assert "2 of the 3 files of" in msg and "2 are voxceleb1 files (e.g. voxceleb1/id10955/fM25hh5Dd-E/00003.wav)" in msg
    assert f"read from {tmp_path / 'C' / 'voxceleb1' / 'wav'}" in msg and "--vox1-dir" in msg
    vox1_in_place(tmp_path / "C", ["id10955/fM25hh5Dd-E/00003", "id10545/aaaaaaaaaaa/00001"])
    CorpusObtainer(opts, log=lambda m: None).run()  # the same command once VoxCeleb1 is there
    assert (tmp_path / "C" / "voxsrc2020_val" / "wav" / "voxceleb1_cd" / "id10545" / "000912.wav").is_file()


def test_listed_file_shapes():
    from spkid.corpora.voxsrc import listed_file

    def ids(path):
        f = listed_file(path)
        return f.utt, f.spk

    assert ids("voxceleb1/id10955/fM25hh5Dd-E/00003.wav") == ("id10955/fM25hh5Dd-E/00003", "id10955")
    assert ids("voxceleb1_cd/id10545/000912.wav") == ("id10545/voxceleb1_cd/000912", "id10545")
    assert ids("id10270/x6uYqmx31kE/00001.wav") == ("id10270/x6uYqmx31kE/00001", "id10270")
    assert ids("test/00042.wav") == ("test/00042", "test/00042")  # no speaker part: its own


LIST_FILES = {name: f"1 id1/a/00001.wav id1/b/00002.wav\n# {name}\n".encode() for name in
              ("veri_test2.txt", "list_test_all2.txt", "list_test_hard2.txt")}


def test_lists_from_the_first_mirror_that_serves_them(tmp_path):
    files = {f"good/{n}": d for n, d in LIST_FILES.items()}
    files.update({f"wrong/{n}": b"<html>moved</html>" for n in LIST_FILES})
    md5s = tmp_path / "md5.txt"
    md5s.write_text("".join(f"{n} {md5(d)}\n" for n, d in LIST_FILES.items()))
    state = ServerState(files=files)
    with FakeServer(state) as srv:
        templates = f"{srv.url}/gone/{{file}} {srv.url}/wrong/{{file}} {srv.url}/good/{{file}}"
        opts = opts_for(srv, tmp_path / "c", components="lists", lists_url=templates, md5_list=str(md5s))
        CorpusObtainer(opts, log=lambda m: None).run()
        for n, d in LIST_FILES.items():
            assert (tmp_path / "c" / "lists" / n).read_bytes() == d
        asked = [name.split("/")[0] for name, _ in state.requests]
        assert asked == ["gone", "wrong", "good", "good", "good"]  # the mirror that worked is asked first
    assert (tmp_path / "c" / "lists" / "veri_test2.txt.bad").read_bytes() == b"<html>moved</html>"


def test_lists_when_every_mirror_fails_name_each_url_and_the_way_by_hand(tmp_path):
    with FakeServer(ServerState(files={})) as srv:
        templates = f"{srv.url}/a/{{file}} {srv.url}/b/{{file}}"
        opts = opts_for(srv, tmp_path / "c", components="lists", lists_url=templates)
        with pytest.raises(DownloadError) as e:
            CorpusObtainer(opts, log=lambda m: None).run()
    msg = str(e.value)
    assert msg.startswith("no URL delivered veri_test2.txt; tried, in order:\n")
    assert f"  {srv.url}/a/veri_test2.txt: " in msg and f"  {srv.url}/b/veri_test2.txt: " in msg
    assert msg.index(f"{srv.url}/a/") < msg.index(f"{srv.url}/b/") and "HTTP 404" in msg
    assert (f"Download veri_test2.txt yourself (its md5 is b73110731c9223c1461fe49cb48dddfc) and put it at "
            f"{tmp_path / 'c' / 'lists' / 'veri_test2.txt'}: stage 1 then uses it as it is") in msg


def test_default_lists_mirrors_current_first():
    from spkid.corpora.sources import LISTS_MIRRORS
    assert ObtainOptions().lists_url.split() == list(LISTS_MIRRORS)
    assert LISTS_MIRRORS[0].startswith("https://mm.kaist.ac.kr/datasets/voxceleb/meta/")


def test_on_disk_dirs_that_do_not_hold_what_they_should(tmp_path):
    from spkid.corpora.on_disk import OnDiskError
    m4a = tmp_path / "vox2" / "dev" / "aac" / "id00001" / "v1"
    m4a.mkdir(parents=True)
    (m4a / "00001.m4a").write_bytes(b"x")
    empty = tmp_path / "empty"
    empty.mkdir()

    def run(**kw):
        opts = ObtainOptions(corpus_dir=str(tmp_path / "c"), components="vox1", skip_download=True, quiet=True, **kw)
        CorpusObtainer(opts, log=lambda m: None).run()

    with pytest.raises(OnDiskError, match=rf"--vox1-dir {empty}: no speaker folders \(idNNNNN\) in {empty}/wav, "
                                          rf"{empty}; expected VoxCeleb1 as extracted: <dir>/wav/idNNNNN/"):
        run(vox1_dir=str(empty))
    with pytest.raises(OnDiskError, match=rf"--vox1-dir .*: .*id00001 holds no .wav file \(.*00001.m4a is m4a\)"):
        run(vox1_dir=str(tmp_path / "vox2" / "dev" / "aac"))
    with pytest.raises(OnDiskError, match=rf"--musan-dir {empty}: expected musan as extracted, with noise, music, "
                                          rf"speech in it; {empty}/noise, {empty}/music, {empty}/speech not found"):
        run(musan_dir=str(empty))
    wav = tmp_path / "v1" / "wav" / "id10001" / "s"
    wav.mkdir(parents=True)
    (wav / "00001.wav").write_bytes(b"RIFF")
    (tmp_path / "c" / "voxceleb1" / "wav" / "id10001").mkdir(parents=True)  # someone's own files: never replaced
    with pytest.raises(OnDiskError, match=r"voxceleb1/wav/id10001 already exists and is not .*v1/wav/id10001"):
        run(vox1_dir=str(tmp_path / "v1"))
