"""Stage 1 for ``--corpus voxceleb``: fetch VoxCeleb1/2, MUSAN, RIRS_NOISES and the trial lists
into the corpus layout that stage 2 reads (see the README's "Running on VoxCeleb")::

    <corpus-dir>/voxceleb1/wav/<spk>/<sess>/<n>.wav     VoxCeleb1 dev + test
    <corpus-dir>/voxceleb2/aac/<spk>/<sess>/<n>.m4a     VoxCeleb2 dev as published
    <corpus-dir>/voxceleb2/wav/<spk>/<sess>/<n>.wav     converted: 16 kHz mono 16-bit
    <corpus-dir>/musan/{noise,music,speech}/...
    <corpus-dir>/RIRS_NOISES/simulated_rirs/{smallroom,mediumroom}/...
    <corpus-dir>/lists/{train_list,veri_test2,list_test_all2,list_test_hard2}.txt
    <corpus-dir>/lists/{voxsrc2019_test,voxsrc2020_val}.txt + voxsrc2019/wav, voxsrc2020_val/wav (optional)
    <corpus-dir>/downloads/         parts and archives (resumable .part files, .md5 sidecars)
    <corpus-dir>/.stage1/           one marker per finished step, so a re-run skips it

A component already in place (a user's own copy of the corpora) is found and not downloaded;
with ``--skip-download true`` nothing is downloaded and a missing component is an error.
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from spkid.config import option
from spkid.corpora.convert import convert_tree, describe_failures, find_files
from spkid.corpora.credentials import ENV_KEY, ENV_PASSWORD, ENV_USER, Credentials
from spkid.corpora.download import (DownloadError, Secrets, Source, extract, fetch, fetch_text, fill_template,
                            is_url, read_md5_list, regex_selector, verify_existing, concatenate)
from spkid.errors import SpkidError
from spkid.fileio import atomic_write

# Published md5 sums, one place for all. VoxCeleb's as listed by the dataset owners and copied
# identically in clovaai/voxceleb_trainer (lists/fileparts.txt, lists/files.txt), PaddleSpeech and
# wespeaker; the trial lists' as in PaddleSpeech's and other VoxCeleb recipes; MUSAN (OpenSLR 17)
# and RIRS_NOISES (OpenSLR 28) as on OpenSLR. --md5-list adds to or overrides this table (a mirror
# that repackages the files publishes its own list).
PUBLISHED_MD5 = {
    "vox1_dev_wav_partaa": "e395d020928bc15670b570a21695ed96",
    "vox1_dev_wav_partab": "bbfaaccefab65d82b21903e81a8a8020",
    "vox1_dev_wav_partac": "017d579a2a96a077f40042ec33e51512",
    "vox1_dev_wav_partad": "7bb1e9f70fddc7a678fa998ea8b3ba19",
    "vox1_dev_wav.zip": "ae63e55b951748cc486645f532ba230b",
    "vox1_test_wav.zip": "185fdc63c3c739954633d50379a3d102",
    "vox2_dev_aac_partaa": "da070494c573e5c0564b1d11c3b20577",
    "vox2_dev_aac_partab": "17fe6dab2b32b48abaf1676429cdd06f",
    "vox2_dev_aac_partac": "1de58e086c5edf63625af1cb6d831528",
    "vox2_dev_aac_partad": "5a043eb03e15c5a918ee6a52aad477f9",
    "vox2_dev_aac_partae": "cea401b624983e2d0b2a87fb5d59aa60",
    "vox2_dev_aac_partaf": "fc886d9ba90ab88e7880ee98effd6ae9",
    "vox2_dev_aac_partag": "d160ecc3f6ee3eed54d55349531cb42e",
    "vox2_dev_aac_partah": "6b84a81b9af72a9d9eecbb3b1f602e65",
    "vox2_dev_aac.zip": "bbc063c46078a602ca71605645c2a402",
    "musan.tar.gz": "0c472d4fc0c5141eca47ad1ffeb2a7df",
    "rirs_noises.zip": "e6f48e257286e05de56413b4779d8ffb",
    "veri_test2.txt": "b73110731c9223c1461fe49cb48dddfc",
    "list_test_all2.txt": "a53e059deb562ffcfc092bf5d90d9f3a",
    "list_test_hard2.txt": "857790e09d579a68eb2e339a090343c8",
}

# Sizes of the full corpora, printed next to what was found (a short count means a partial copy).
KNOWN_COUNTS = {"voxceleb1": 153_516, "voxceleb2": 1_092_009, "musan": 2_016}

VOX_WAV = r"(?:^|/)(id\d+/[^/]+/\d+\.wav)$"
VOX_M4A = r"(?:^|/)(id\d+/[^/]+/\d+\.m4a)$"
MUSAN_WAV = r"(?:^|/)(musan/(?:noise|music|speech)/.+\.wav)$"
RIRS_WAV = r"(?:^|/)(RIRS_NOISES/simulated_rirs/(?:smallroom|mediumroom)/.+\.wav)$"

TRIAL_LISTS = ("veri_test2.txt", "list_test_all2.txt", "list_test_hard2.txt")
COMPONENTS = ("lists", "vox1", "vox2", "musan", "rirs", "voxsrc19", "voxsrc20")
DEFAULT_COMPONENTS = "lists,vox1,vox2,musan,rirs,voxsrc19,voxsrc20"


@dataclass(frozen=True)
class Archive:
    name: str               # the archive as extracted (the concatenation when it comes in parts)
    parts: tuple[str, ...]  # the files downloaded to build it; () = the archive itself
    origin: str             # which URL option it comes from: vox | musan | rirs
    dest: str               # extraction root, relative to the corpus dir
    select: str             # regex on member names; group 1 = path under dest


ARCHIVES = {
    "vox1": (Archive("vox1_dev_wav.zip", tuple(f"vox1_dev_wav_parta{c}" for c in "abcd"), "vox",
                     "voxceleb1/wav", VOX_WAV),
             Archive("vox1_test_wav.zip", (), "vox", "voxceleb1/wav", VOX_WAV)),
    "vox2": (Archive("vox2_dev_aac.zip", tuple(f"vox2_dev_aac_parta{c}" for c in "abcdefgh"), "vox",
                     "voxceleb2/aac", VOX_M4A),),
    "musan": (Archive("musan.tar.gz", (), "musan", ".", MUSAN_WAV),),
    "rirs": (Archive("rirs_noises.zip", (), "rirs", ".", RIRS_WAV),),
}

VOXSRC = {  # component -> (list name in lists/, audio root under the corpus dir)
    "voxsrc19": ("voxsrc2019_test.txt", "voxsrc2019/wav"),
    "voxsrc20": ("voxsrc2020_val.txt", "voxsrc2020_val/wav"),
}

@dataclass
class ObtainOptions:
    corpus_dir: str = option("", "where the corpora go (or already are)")
    download_dir: str = option("", "parts and archives (default <corpus-dir>/downloads)")
    nj: int = option(4, "parallel ffmpeg processes for m4a->wav", min=1)
    components: str = option(DEFAULT_COMPONENTS, "comma-separated subset of " + ",".join(COMPONENTS) + " (voxsrc ones only when their sources are given)")
    skip_download: bool = option(False, "never download: use the corpora already under --corpus-dir (a missing one is an error)")
    vox_url: str = option("https://cn01.mmai.io/download/voxceleb?key={key}&file={file}", f"VoxCeleb URL template: {{file}} = the part or archive name, {{key}} = the access key (${ENV_KEY})")
    vox_credentials_file: str = option("", f"file of {ENV_KEY}=... (or {ENV_USER}=... and {ENV_PASSWORD}=...) lines, readable by you alone (chmod 600), for what the environment does not set")
    lists_url: str = option("https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta/{file}", "URL template of the VoxCeleb1 trial lists")
    musan_url: str = option("https://www.openslr.org/resources/17/{file}", "MUSAN URL template")
    rirs_url: str = option("https://www.openslr.org/resources/28/{file}", "RIRS_NOISES URL template")
    md5_list: str = option("", "file or URL of '<file> <md5>' lines that add to or override the built-in md5 table")
    voxsrc19_list: str = option("", "VoxSRC 2019 test trial list (URL or file)")
    voxsrc19_audio: str = option("", "its audio: zip/tar (URL or file) or a directory")
    voxsrc20_list: str = option("", "VoxSRC 2020 validation trial list (URL or file)")
    voxsrc20_audio: str = option("", "its audio: zip/tar (URL or file) or a directory")
    vox2_m4a_dir: str = option("", "VoxCeleb2 m4a tree <spk>/<sess>/<n>.m4a to convert (default <corpus-dir>/voxceleb2/aac)")
    retries: int = option(5, "retries (resuming) per file after a failed transfer")
    timeout: float = option(60.0, "seconds without data before a transfer is retried")
    keep_parts: bool = option(False, "keep the parts once their concatenation is verified")
    keep_archives: bool = option(True, "keep archives after extraction (to re-extract offline)")
    keep_m4a: bool = option(True, "keep the m4a files extracted here after conversion (a --vox2-m4a-dir is never removed)")
    max_convert_failures: int = option(0, "m4a files allowed to fail conversion (named at the end either way) before stage 1 fails")
    quiet: bool = option(False, "no progress bars")


def _has_file(root: Path, suffix: str) -> bool:
    for _dirpath, _dirs, files in os.walk(root, followlinks=True):
        if any(f.endswith(suffix) for f in files):
            return True
    return False


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


class Stage1:
    """One run of stage 1 over the chosen components."""

    def __init__(self, opts: ObtainOptions, log: Callable[[str], None] = print,
                 credentials: Credentials = Credentials()) -> None:
        if not opts.corpus_dir:
            raise SpkidError("--corpus-dir is required")
        self.o = opts
        self.log = log
        self.corpus = Path(opts.corpus_dir)
        self.downloads = Path(opts.download_dir) if opts.download_dir else self.corpus / "downloads"
        self.state = self.corpus / ".stage1"
        self.cred = credentials
        self.secrets = Secrets(credentials.user, credentials.password, credentials.key)
        self.progress = not opts.quiet
        self.m4a_dir = Path(opts.vox2_m4a_dir) if opts.vox2_m4a_dir else self.corpus / "voxceleb2" / "aac"
        self.components = [c.strip() for c in opts.components.split(",") if c.strip()]
        for c in self.components:
            if c not in COMPONENTS:
                raise SpkidError(f"--components: unknown component '{c}'; choose from {','.join(COMPONENTS)}")
        self._md5: dict[str, str] | None = None

    # ------------------------------------------------------------------ sources

    def _template(self, origin: str) -> str:
        return {"vox": self.o.vox_url, "lists": self.o.lists_url, "musan": self.o.musan_url,
                "rirs": self.o.rirs_url}[origin]

    def source(self, url_or_template: str, file: str) -> Source:
        if "{key}" in url_or_template and not self.cred.key:
            raise DownloadError(
                f"no VoxCeleb access key for {file}: the URL template {url_or_template} needs one. Export "
                f"{ENV_KEY}=<key> (the key is in the download e-mail from the dataset owners) or put it "
                f"in a --vox-credentials-file; or, with the corpora already on disk, point --corpus-dir at them and use "
                f"--skip-download true"
                + (f". A user name and password (which you gave) go with a --vox-url that has no {{key}}, "
                   f"e.g. in conf/download.conf" if self.cred.user else ""))
        url, display = fill_template(url_or_template, file, self.cred.key)
        auth = None
        if self.cred.user and urllib.parse.urlsplit(url).netloc == urllib.parse.urlsplit(self.o.vox_url).netloc:
            auth = Source.basic_auth(self.cred.user, self.cred.password)
        return Source(url, display, auth)

    @property
    def auth_hint(self) -> str:
        return (f"check the access key ({ENV_KEY}) or user and password ({ENV_USER}, {ENV_PASSWORD}), "
                f"in the environment or --vox-credentials-file, and --vox-url")

    @property
    def md5(self) -> dict[str, str]:
        if self._md5 is None:
            table = dict(PUBLISHED_MD5)
            if self.o.md5_list:
                if is_url(self.o.md5_list):
                    tmp = self.state / "md5_list.txt"
                    with atomic_write(tmp) as f:
                        f.write(fetch_text(self.source(self.o.md5_list, ""), secrets=self.secrets,
                                           timeout=self.o.timeout))
                    table.update(read_md5_list(tmp))
                else:
                    table.update(read_md5_list(self.o.md5_list))
            self._md5 = table
        return self._md5

    def fetch(self, src: Source, dest: Path, binary: bool = True) -> Path:
        return fetch(src, dest, self.md5.get(dest.name), secrets=self.secrets, retries=self.o.retries,
                     timeout=self.o.timeout, expect_binary=binary, progress=self.progress,
                     auth_hint=self.auth_hint, log=self.log)

    # ------------------------------------------------------------------ markers

    def _marker(self, name: str) -> Path:
        return self.state / name

    def _touch(self, name: str) -> None:
        with atomic_write(self._marker(name)) as f:
            f.write("")

    # ------------------------------------------------------------------ presence

    def present(self, comp: str) -> bool:
        """Is the component's content in place (from an earlier run or the user's own copy)?"""
        c = self.corpus
        if comp == "lists":
            return all((c / "lists" / n).is_file() for n in TRIAL_LISTS)
        if comp == "vox1":
            return _has_file(c / "voxceleb1" / "wav", ".wav")
        if comp == "vox2":
            return _has_file(c / "voxceleb2" / "wav", ".wav") or _has_file(self.m4a_dir, ".m4a")
        if comp == "musan":
            return all(_has_file(c / "musan" / k, ".wav") for k in ("noise", "music", "speech"))
        if comp == "rirs":
            return all(_has_file(c / "RIRS_NOISES" / "simulated_rirs" / k, ".wav") for k in ("smallroom", "mediumroom"))
        list_name, audio = VOXSRC[comp]
        return (c / "lists" / list_name).is_file() and _has_file(c / audio, ".wav")

    def wanted(self, comp: str) -> bool:
        if comp in VOXSRC:
            given = getattr(self.o, f"{comp}_list")
            return bool(given) or self.present(comp)
        return True

    # ------------------------------------------------------------------ run

    def run(self) -> None:
        missing = []
        for comp in self.components:
            if not self.wanted(comp):
                self.log(f"{comp}: no source given (--{comp}-list/--{comp}-audio), skipped")
                continue
            done, busy = self._marker(f"{comp}.done"), self._marker(f"{comp}.inprogress")
            if done.is_file():
                self.log(f"{comp}: done earlier ({done})")
                continue
            if self.present(comp) and not busy.is_file():
                self.log(f"{comp}: found in {self.corpus}, not downloading")
            elif self.o.skip_download:
                missing.append(comp)
                continue
            else:
                self._touch(f"{comp}.inprogress")
                self.obtain(comp)
            self.finish(comp)
            self._touch(f"{comp}.done")
            busy.unlink(missing_ok=True)
        if missing:
            raise SpkidError(
                f"--skip-download true, but these are not under {self.corpus}: {', '.join(missing)}. Put them in "
                f"the layout of the README's 'Running on VoxCeleb' (e.g. voxceleb1/wav/<spk>/<sess>/<n>.wav, "
                f"lists/veri_test2.txt) or drop --skip-download to download them")
        self.log(f"stage 1 done: corpora in {self.corpus}")

    def obtain(self, comp: str) -> None:
        if comp == "lists":
            for name in TRIAL_LISTS:
                self.fetch(self.source(self.o.lists_url, name), self.corpus / "lists" / name, binary=False)
        elif comp in VOXSRC:
            self.obtain_voxsrc(comp)
        else:
            for archive in ARCHIVES[comp]:
                self.obtain_archive(archive)

    def obtain_archive(self, a: Archive) -> None:
        marker = f"{a.name}.extracted"
        if self._marker(marker).is_file():
            return
        path = self.downloads / a.name
        template = self._template(a.origin)
        if not verify_existing(path, self.md5.get(a.name), self.progress):
            if a.parts:
                parts = [self.fetch(self.source(template, p), self.downloads / p) for p in a.parts]
                concatenate(parts, path, self.md5.get(a.name), self.progress)
                if not self.o.keep_parts:
                    for p in parts:
                        p.unlink()
                        p.with_name(p.name + ".md5").unlink(missing_ok=True)
            else:
                self.fetch(self.source(template, a.name), path)
        written, skipped = extract(path, self.corpus / a.dest, regex_selector(a.select), self.progress)
        self.log(f"{a.name}: extracted {written} files into {self.corpus / a.dest}"
                 + (f" ({skipped} were already there)" if skipped else ""))
        self._touch(marker)
        if not self.o.keep_archives:
            path.unlink()
            path.with_name(path.name + ".md5").unlink(missing_ok=True)

    def _local_or_fetched(self, given: str, dest: Path, binary: bool) -> Path:
        if is_url(given):
            return self.fetch(self.source(given, ""), dest, binary=binary)
        path = Path(given)
        if not path.exists():
            raise SpkidError(f"{given} not found (give a URL, a file or, for audio, a directory)")
        return path

    def obtain_voxsrc(self, comp: str) -> None:
        list_name, audio_rel = VOXSRC[comp]
        given_list, given_audio = getattr(self.o, f"{comp}_list"), getattr(self.o, f"{comp}_audio")
        if not given_audio:
            raise SpkidError(f"--{comp}-list is given but not --{comp}-audio: give its audio too "
                             f"(an archive URL or file, or a directory)")
        target = self.corpus / "lists" / list_name
        got = self._local_or_fetched(given_list, self.downloads / list_name, binary=False)
        if got != target:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(got, target)
        wanted = set()
        with open(target, encoding="utf-8") as f:
            for line in f:
                wanted.update(line.split()[1:3])
        audio_root = self.corpus / audio_rel
        local = None if is_url(given_audio) else Path(given_audio)
        if local is not None and local.is_dir():
            audio_root.parent.mkdir(parents=True, exist_ok=True)
            if not audio_root.exists():
                audio_root.symlink_to(local.resolve(), target_is_directory=True)
        else:
            name = os.path.basename(urllib.parse.urlsplit(given_audio).path) or f"{comp}_audio"
            archive = self._local_or_fetched(given_audio, self.downloads / name, binary=True)

            def select(member: str) -> str | None:
                # The list's paths may sit below a top folder of the archive: keep their tail.
                for path in _tails(member):
                    if path in wanted:
                        return path
                return None

            written, skipped = extract(archive, audio_root, select, self.progress)
            self.log(f"{comp}: extracted {written} files into {audio_root}")
        absent = sorted(p for p in wanted if not (audio_root / p).is_file())
        if absent:
            raise SpkidError(f"{len(absent)} of the {len(wanted)} files of {target} are not under {audio_root} "
                             f"(e.g. {absent[0]}): the audio does not match the list; check --{comp}-audio")

    # ------------------------------------------------------------------ after obtaining

    def finish(self, comp: str) -> None:
        """Conversion, lists and counts for a component now in place."""
        c = self.corpus
        if comp == "vox1":
            self._report("voxceleb1", len(find_files(c / "voxceleb1" / "wav", ".wav")))
        elif comp == "vox2":
            self.convert_vox2()
        elif comp == "musan":
            self._report("musan", len(find_files(c / "musan", ".wav")))
        elif comp == "rirs":
            root = c / "RIRS_NOISES" / "simulated_rirs"
            for k in ("smallroom", "mediumroom"):
                self.log(f"rirs: {len(find_files(root / k, '.wav'))} {k} impulse responses")
        elif comp == "lists":
            for name in TRIAL_LISTS:
                self.log(f"lists: {name} has {_count_lines(c / 'lists' / name)} trials")

    def _report(self, what: str, n: int) -> None:
        full = KNOWN_COUNTS.get(what)
        note = "" if full is None or n == full else f" (the full corpus has {full}: a partial copy?)"
        self.log(f"{what}: {n} files{note}")

    def convert_vox2(self) -> None:
        c = self.corpus
        wav_root = c / "voxceleb2" / "wav"
        if self.m4a_dir.is_dir():
            failures_file = c / "voxceleb2" / "convert_failures.txt"
            result = convert_tree(self.m4a_dir, wav_root, nj=self.o.nj, progress=self.progress,
                                  failures_file=failures_file)
            self.log(f"voxceleb2 m4a->wav: {result.summary()}")
            if result.failed:
                text = describe_failures(result, self.m4a_dir, failures_file)
                if len(result.failed) > self.o.max_convert_failures:
                    raise SpkidError(
                        f"{text}\nThe other files are converted. Re-extract the failed ones (delete "
                        f"{self._marker('vox2_dev_aac.zip.extracted')} and run again), or accept them with "
                        f"--max-convert-failures {len(result.failed)} (they are then left out of training)")
                self.log(text)
            elif not self.o.keep_m4a and not self.o.vox2_m4a_dir:  # never a user's own copy
                shutil.rmtree(self.m4a_dir)
        utts = find_files(wav_root, ".wav")
        self._report("voxceleb2", len(utts))
        with atomic_write(c / "lists" / "train_list.txt") as f:
            for rel in utts:
                f.write(f"{rel.split(os.sep, 1)[0]} {rel}\n")


def _tails(member: str) -> list[str]:
    """``a/b/c.wav`` -> ``["a/b/c.wav", "b/c.wav", "c.wav"]``."""
    parts = member.strip("/").split("/")
    return ["/".join(parts[i:]) for i in range(len(parts))]
