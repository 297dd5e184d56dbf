"""Test helpers: a VoxCeleb-shaped fake corpus (zipped parts, md5 list, trial lists, MUSAN and
RIR archives) and an HTTP server on 127.0.0.1 that serves it with range requests, an access
key or basic auth, and a transfer that breaks midway on demand."""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import tarfile
import threading
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


@dataclass
class ServerState:
    files: dict[str, bytes] = field(default_factory=dict)   # name -> content
    key: str | None = None                                   # required ?key= value
    user: tuple[str, str] | None = None                      # required basic auth
    cut_once: dict[str, int] = field(default_factory=dict)   # name -> bytes sent before breaking (once)
    ignore_range: bool = False
    html_instead: bool = False
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


class FakeServer:
    """``with FakeServer(state) as srv: srv.url`` serves ``state.files`` at ``/<name>`` and at
    ``/vox?key=K&file=<name>`` from a thread; shut down on exit."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        handler = type("Handler", (_Handler,), {"state": state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "FakeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()

    def range_requests(self, name: str) -> list[str]:
        return [h["Range"] for path, h in self.state.requests if path == name and "Range" in h]


class _Handler(BaseHTTPRequestHandler):
    state: ServerState
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _fail(self, code: int, body: bytes = b"") -> None:
        self.send_response(code)
        if code == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="vox"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        st = self.state
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query)
        name = query["file"][0] if "file" in query else urllib.parse.unquote(parts.path.lstrip("/"))
        st.requests.append((name, dict(self.headers.items())))
        if st.key is not None and parts.path == "/vox" and query.get("key", [""])[0] != st.key:
            return self._fail(403)
        if st.user is not None:
            want = "Basic " + base64.b64encode(f"{st.user[0]}:{st.user[1]}".encode()).decode()
            if self.headers.get("Authorization") != want:
                return self._fail(401)
        if st.html_instead:
            body = b"<html>your key has expired</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if name not in st.files:
            return self._fail(404)
        data = st.files[name]
        start = 0
        rng = self.headers.get("Range")
        if rng and not st.ignore_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                return self._fail(416)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = st.cut_once.pop(name, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


# --------------------------------------------------------------------------- corpus


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def wav_bytes(freq: float, seconds: float = 0.5, seed: int = 0) -> bytes:
    t = np.arange(int(SR * seconds)) / SR
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def m4a_bytes(tmp: Path, freq: float, seconds: float = 0.5) -> bytes:
    out = tmp / f"sine{freq}.m4a"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency={freq}:sample_rate=44100:duration={seconds}", "-ac", "2",
                    "-c:a", "aac", "-b:a", "32k", str(out)], check=True)
    return out.read_bytes()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tgz_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def split(data: bytes, n: int) -> list[bytes]:
    step = -(-len(data) // n)
    return [data[i * step:(i + 1) * step] for i in range(n)]


@dataclass
class FakeCorpus:
    files: dict[str, bytes]          # what the server offers
    vox1_utts: list[str]             # utterance ids (spk/sess/n) of VoxCeleb1 dev + test
    vox2_utts: list[str]             # VoxCeleb2 dev, all
    corrupt_m4a: str                 # relative path of the one m4a that does not decode
    trials: dict[str, list[str]]     # list name -> lines


def make_fake_corpus(tmp: Path) -> FakeCorpus:
    """A few speakers in VoxCeleb's shapes: VoxCeleb1 dev in 4 parts, VoxCeleb1 test zip,
    VoxCeleb2 dev (m4a) in 8 parts with one corrupt file, MUSAN tar.gz, RIRS_NOISES zip, the
    three cleaned VoxCeleb1 lists, the VoxSRC 2020 validation list in its published shape with its
    voxceleb1_cd.zip, and an md5 list."""
    tmp.mkdir(parents=True, exist_ok=True)
    vox1_dev = {f"id1000{s}/sess{s}{'ab'[k]}/0000{n}": 200 + 40 * s + 7 * k + n for s in (1, 2) for k in (0, 1) for n in (1, 2)}
    vox1_test = {f"id1027{s}/test{s}/0000{n}": 500 + 30 * s + n for s in (0, 1) for n in (1, 2)}
    files: dict[str, bytes] = {}
    dev_zip = zip_bytes({f"wav/{u}.wav": wav_bytes(f, seed=f) for u, f in vox1_dev.items()})
    for c, part in zip("abcd", split(dev_zip, 4)):
        files[f"vox1_dev_wav_parta{c}"] = part
    files["vox1_dev_wav.zip"] = dev_zip  # only for its md5 below; the server is never asked for it
    files["vox1_test_wav.zip"] = zip_bytes({f"wav/{u}.wav": wav_bytes(f, seed=f) for u, f in vox1_test.items()})

    good = [m4a_bytes(tmp, f) for f in (300, 450)]
    vox2 = [f"id0000{s}/v{s}{k}/0000{n}" for s in (1, 2, 3) for k in "xy" for n in (1, 2)]
    corrupt = vox2[5]
    m4as = {f"dev/aac/{u}.m4a": good[i % 2] for i, u in enumerate(vox2)}
    m4as[f"dev/aac/{corrupt}.m4a"] = b"\x00\x00\x00\x18ftypM4A not really aac" * 20
    vox2_zip = zip_bytes(m4as)
    for c, part in zip("abcdefgh", split(vox2_zip, 8)):
        files[f"vox2_dev_aac_parta{c}"] = part
    files["vox2_dev_aac.zip"] = vox2_zip

    musan = {"musan/README": b"fake musan"}
    for kind, sub in (("noise", "free-sound"), ("music", "fma"), ("speech", "librivox")):
        for i in range(2):
            musan[f"musan/{kind}/{sub}/{kind}-{sub}-000{i}.wav"] = wav_bytes(100 + 50 * i, seconds=6.5, seed=i)
        musan[f"musan/{kind}/{sub}/ANNOTATIONS"] = b"x"
    files["musan.tar.gz"] = tgz_bytes(musan)

    rirs = {}
    for room in ("smallroom", "mediumroom", "largeroom"):
        for r in (1, 2):
            rirs[f"RIRS_NOISES/simulated_rirs/{room}/Room00{r}/Room00{r}-0000{r}.wav"] = wav_bytes(1000, 0.1, seed=r)
    rirs["RIRS_NOISES/real_rirs_isotropic_noises/RVB2014_type1_rir_largeroom1_far_angla.wav"] = wav_bytes(9, 0.1)
    files["rirs_noises.zip"] = zip_bytes(rirs)

    test_utts, all_utts = sorted(vox1_test), sorted(vox1_dev) + sorted(vox1_test)

    def pairs(utts: list[str]) -> list[str]:
        out = []
        for i, a in enumerate(utts):
            for b in utts[i + 1:]:
                out.append(f"{int(a.split('/')[0] == b.split('/')[0])} {a}.wav {b}.wav")
        return out

    trials = {"veri_test2.txt": pairs(test_utts), "list_test_all2.txt": pairs(all_utts),
              "list_test_hard2.txt": pairs(all_utts)[::2]}
    for name, lines in trials.items():
        files[name] = ("\n".join(lines) + "\n").encode()
    # VoxSRC 2020 validation as the challenge publishes it: a VoxCeleb1 file against one of
    # voxceleb1_cd.zip ('<spk>/<n>.wav', no video level), speakers of VoxCeleb1
    cd = ["voxceleb1_cd/id10001/000912.wav", "voxceleb1_cd/id10002/000007.wav"]
    enrol = [f"voxceleb1/{u}.wav" for u in sorted(vox1_dev)[:2]]   # id10001's
    trials["voxsrc2020_val.txt"] = [f"1 {enrol[0]} {cd[0]}", f"0 {enrol[0]} {cd[1]}", f"0 {enrol[1]} {cd[1]}",
                                    f"1 {enrol[1]} {cd[0]}"]
    files["voxsrc2020_val.txt"] = ("\n".join(trials["voxsrc2020_val.txt"]) + "\n").encode()
    files["voxceleb1_cd.zip"] = zip_bytes({p: wav_bytes(700 + i, seed=i) for i, p in enumerate(cd)})
    files["md5.txt"] = "".join(f"{name} {md5(data)}\n" for name, data in sorted(files.items())).encode()
    return FakeCorpus(files, all_utts, vox2, corrupt, trials)
