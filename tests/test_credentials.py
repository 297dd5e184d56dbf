"""VoxCeleb credentials come from the environment or a file only its owner can read, never from
the command line (visible to every user in ``ps``)."""

import subprocess
import sys
from pathlib import Path

import pytest

from spkid.corpora.credentials import Credentials, read_credentials
from spkid.corpora.voxceleb import ObtainOptions, CorpusObtainer
from spkid.errors import SpkidError

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cr3t-Key"


def download_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **(env or {})}
    return subprocess.run([sys.executable, ROOT / "local" / "download_corpora.py", *args], capture_output=True,
                          text=True, env=env, timeout=60)


@pytest.mark.parametrize("args", [[f"--vox-key={SECRET}"], ["--vox-password", SECRET], [f"--vox-user={SECRET}"]])
def test_credentials_on_the_command_line_are_refused(tmp_path, args):
    p = download_cli("--corpus-dir", str(tmp_path / "c"), *args)
    name = args[0].split("=")[0]
    assert p.returncode == 1 and f"{name}: credentials on the command line can be read by every user" in p.stderr
    assert "SPKID_VOX_KEY" in p.stderr and "--vox-credentials-file" in p.stderr
    assert SECRET not in p.stderr + p.stdout and "Traceback" not in p.stderr
    assert not (tmp_path / "c").exists()


def write_creds(tmp_path: Path, text: str, mode: int) -> Path:
    f = tmp_path / "vox.cred"
    f.write_text(text)
    f.chmod(mode)
    return f


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_credentials_file_others_can_open_is_refused(tmp_path, mode):
    f = write_creds(tmp_path, f"SPKID_VOX_KEY={SECRET}\n", mode)
    with pytest.raises(SpkidError, match=rf"is open to other users \(mode {mode:o}\).*chmod 600") as e:
        read_credentials(str(f), environ={})
    assert SECRET not in str(e.value)
    p = download_cli("--corpus-dir", str(tmp_path / "c"), f"--vox-credentials-file={f}")
    assert p.returncode == 1 and "is open to other users" in p.stderr and SECRET not in p.stderr


def test_credentials_file_and_environment(tmp_path):
    f = write_creds(tmp_path, f"# from the owners' e-mail\nexport SPKID_VOX_KEY='{SECRET}'\n\nSPKID_VOX_USER=joe\n", 0o600)
    assert read_credentials(str(f), environ={}) == Credentials(user="joe", key=SECRET)
    # the environment wins; the file completes it
    assert read_credentials(str(f), environ={"SPKID_VOX_KEY": "env", "SPKID_VOX_PASSWORD": "pw"}) == \
        Credentials(user="joe", password="pw", key="env")
    assert read_credentials("", environ={"SPKID_VOX_KEY": "env"}) == Credentials(key="env")
    f = write_creds(tmp_path, f"SPKID_VOX_KEY={SECRET}\nVOX_KEY={SECRET}\n", 0o600)
    with pytest.raises(SpkidError, match=r"vox.cred:2: expected SPKID_VOX_KEY=...") as e:
        read_credentials(str(f), environ={})
    assert SECRET not in str(e.value)
    with pytest.raises(SpkidError, match="--vox-credentials-file=.*missing.cred: No such file"):
        read_credentials(str(tmp_path / "missing.cred"), environ={})


def test_stage1_puts_the_files_key_in_the_url_and_hides_it(tmp_path):
    f = write_creds(tmp_path, f"SPKID_VOX_KEY={SECRET}\n", 0o600)
    opts = ObtainOptions(corpus_dir=str(tmp_path / "c"), vox_url="https://h/v?key={key}&file={file}",
                         vox_credentials_file=str(f))
    stage = CorpusObtainer(opts, log=lambda m: None, credentials=read_credentials(opts.vox_credentials_file, environ={}))
    src = stage.source(opts.vox_url, "vox1_dev_wav_partaa")
    assert src.url == f"https://h/v?key={SECRET}&file=vox1_dev_wav_partaa" and SECRET not in src.display
    assert stage.secrets.redact(src.url) == "https://h/v?key=***&file=vox1_dev_wav_partaa"
