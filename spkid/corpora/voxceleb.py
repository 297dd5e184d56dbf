"""Stage 1 for ``--corpus voxceleb``: fetch VoxCeleb1/2, MUSAN, RIRS_NOISES and the trial lists
into the corpus layout that stage 2 reads (see docs/voxceleb.md)::

    <corpus-dir>/voxceleb1/wav/<spk>/<sess>/<n>.wav     VoxCeleb1 dev + test
    <corpus-dir>/voxceleb2/aac/<spk>/<sess>/<n>.m4a     VoxCeleb2 dev as published
    <corpus-dir>/voxceleb2/wav/<spk>/<sess>/<n>.wav     converted: 16 kHz mono 16-bit
    <corpus-dir>/musan/{noise,music,speech}/...
    <corpus-dir>/RIRS_NOISES/simulated_rirs/{smallroom,mediumroom}/...
    <corpus-dir>/lists/{train_list,veri_test2,list_test_all2,list_test_hard2}.txt
    <corpus-dir>/lists/{voxsrc2019_test,voxsrc2020_val}.txt + voxsrc2019/wav, voxsrc2020_val/wav (optional)
    <corpus-dir>/downloads/         parts and archives (resumable .part files, .md5 sidecars)
    <corpus-dir>/.stage1/           one marker per finished step, so a re-run skips it

A component already in place is found and not downloaded. Copies elsewhere on disk are linked
in first (``--vox1-dir``, ``--vox2-dir``, ``--musan-dir``, ``--rirs-dir``: :mod:`spkid.corpora.on_disk`);
with ``--skip-download true`` nothing is downloaded and a missing component is an error.
What is published where (archives, md5 sums, mirrors) is :mod:`spkid.corpora.sources`.
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from spkid.config import option
from spkid.corpora import on_disk, voxsrc
from spkid.corpora.archives import concatenate, extract, regex_selector
from spkid.corpora.convert import ConvertJobs, convert_tree, describe_failures, find_files
from spkid.corpora.credentials import ENV_KEY, ENV_PASSWORD, ENV_USER, Credentials
from spkid.corpora.download import (DownloadError, Secrets, Source, fetch, fetch_first, fetch_text, fill_template,
                                    is_url, read_md5_list, verify_existing)
from spkid.corpora.sources import (ARCHIVES, COMPONENTS, DEFAULT_COMPONENTS, KNOWN_COUNTS, LISTS_MIRRORS, NEEDED_FOR,
                                   PUBLISHED_MD5, TRIAL_LISTS, Archive)
from spkid.errors import SpkidError
from spkid.fileio import atomic_write

VOXSRC = {  # component -> (list name in lists/, audio root under the corpus dir)
    "voxsrc19": ("voxsrc2019_test.txt", "voxsrc2019/wav"),
    "voxsrc20": ("voxsrc2020_val.txt", "voxsrc2020_val/wav"),
}


@dataclass
class ObtainOptions:
    corpus_dir: str = option("", "where the corpora go (or already are)")
    download_dir: str = option("", "parts and archives (default <corpus-dir>/downloads)")
    nj: int = option(4, "parallel ffmpeg processes for m4a->wav (or jobs of --cmd)", min=1)
    cmd: str = option("run.py", "job runner for m4a->wav, Kaldi's --cmd (cmd.sh's cpu_cmd): run.py converts here, "
                      "e.g. 'slurm.py --cpus-per-task=4' in --nj Slurm jobs (docs/cluster.md)")
    components: str = option(DEFAULT_COMPONENTS, "comma-separated subset of " + ",".join(COMPONENTS) + " (voxsrc ones only when their sources are given)")
    skip_download: bool = option(False, "never download: use the corpora already under --corpus-dir or given by the --*-dir options (a missing one is an error)")
    vox1_dir: str = option("", "VoxCeleb1 already on disk, linked in: vox1_dev_wav and vox1_test_wav as extracted (<dir>/wav/<spk>/...), space-separated, or one merged wav folder")
    vox2_dir: str = option("", "VoxCeleb2 dev already on disk, linked in: dev/aac/<spk>/<video>/<n>.m4a as extracted (converted here; wav files beside them are used as they are) or a wav tree")
    musan_dir: str = option("", "MUSAN already on disk (the musan folder with noise/, music/, speech/), linked in")
    rirs_dir: str = option("", "RIRS_NOISES already on disk (with simulated_rirs/), linked in")
    lists_dir: str = option("", "a folder with trial lists as published (" + ", ".join(TRIAL_LISTS) + "), copied into lists/")
    vox_url: str = option("https://cn01.mmai.io/download/voxceleb?key={key}&file={file}", f"VoxCeleb URL template: {{file}} = the part or archive name, {{key}} = the access key (${ENV_KEY})")
    vox_credentials_file: str = option("", f"file of {ENV_KEY}=... (or {ENV_USER}=... and {ENV_PASSWORD}=...) lines, readable by you alone (chmod 600), for what the environment does not set")
    lists_url: str = option(" ".join(LISTS_MIRRORS), "URL templates of the VoxCeleb1 trial lists, space-separated, tried in order ({file} = the list's name)")
    musan_url: str = option("https://www.openslr.org/resources/17/{file}", "MUSAN URL template")
    rirs_url: str = option("https://www.openslr.org/resources/28/{file}", "RIRS_NOISES URL template")
    md5_list: str = option("", "file or URL of '<file> <md5>' lines that add to or override the built-in md5 table")
    voxsrc19_list: str = option("", "VoxSRC 2019 test trial list (URL or file)")
    voxsrc19_audio: str = option("", "its audio: zip/tar (URL or file) or a directory")
    voxsrc20_list: str = option("", "VoxSRC 2020 validation trial list as published ('0 voxceleb1/<spk>/<video>/<n>.wav voxceleb1_cd/<spk>/<n>.wav'; URL or file)")
    voxsrc20_audio: str = option("", "its own audio, voxceleb1_cd.zip (URL or file) or that folder; the voxceleb1/ files come from VoxCeleb1")
    retries: int = option(5, "retries (resuming) per file after a failed transfer")
    timeout: float = option(60.0, "seconds without data before a transfer is retried")
    keep_parts: bool = option(False, "keep the parts once their concatenation is verified")
    keep_archives: bool = option(True, "keep archives after extraction (to re-extract offline)")
    keep_m4a: bool = option(True, "keep the m4a files extracted here after conversion (a --vox2-dir is never touched)")
    max_convert_failures: int = option(0, "m4a files allowed to fail conversion (named at the end either way) before stage 1 fails")
    quiet: bool = option(False, "no progress bars")


class CorpusObtainer:
    """One run of stage 1 over the chosen components."""

    def __init__(self, opts: ObtainOptions, log: Callable[[str], None] = print,
                 credentials: Credentials = Credentials(), convert_command: Sequence[str] = ()) -> None:
        if not opts.corpus_dir:
            raise SpkidError("--corpus-dir is required")
        self.o = opts
        self.log = log
        self.convert_command = list(convert_command)  # one conversion job (local/convert_m4a.py)
        self.corpus = Path(opts.corpus_dir)
        self.downloads = Path(opts.download_dir) if opts.download_dir else self.corpus / "downloads"
        self.state = self.corpus / ".stage1"
        self.cred = credentials
        self.secrets = Secrets(credentials.user, credentials.password, credentials.key)
        self.progress = not opts.quiet
        self.m4a_dir = self.corpus / "voxceleb2" / "aac"
        self.components = [c.strip() for c in opts.components.split(",") if c.strip()]
        for c in self.components:
            if c not in COMPONENTS:
                raise SpkidError(f"--components: unknown component '{c}'; choose from {','.join(COMPONENTS)}")
        self.lists_templates = opts.lists_url.split()
        if not self.lists_templates:
            raise SpkidError("--lists-url is empty: give at least one URL template with {file}")
        self._md5: dict[str, str] | None = None

    # ------------------------------------------------------------------ sources

    def _template(self, origin: str) -> str:
        return {"vox": self.o.vox_url, "musan": self.o.musan_url, "rirs": self.o.rirs_url}[origin]

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

    def _fetch_args(self, binary: bool) -> dict:
        return dict(secrets=self.secrets, retries=self.o.retries, timeout=self.o.timeout, expect_binary=binary,
                    progress=self.progress, auth_hint=self.auth_hint, log=self.log)

    def fetch(self, src: Source, dest: Path, binary: bool = True) -> Path:
        return fetch(src, dest, self.md5.get(dest.name), **self._fetch_args(binary))

    def fetch_list(self, name: str) -> Path:
        """A VoxCeleb1 trial list from the first of the --lists-url mirrors that serves it (the one
        that served the last list is asked first)."""
        dest = self.corpus / "lists" / name
        by_hand = (f"Download {name} yourself (its md5 is {self.md5.get(name, 'not published')}) and put it at {dest}: "
                   f"stage 1 then uses it as it is; or give a working mirror with --lists-url '<template with {{file}}>'")
        sources = [self.source(t, name) for t in self.lists_templates]
        _, src = fetch_first(sources, dest, self.md5.get(name), by_hand=by_hand, **self._fetch_args(False))
        good = self.lists_templates[sources.index(src)]
        self.lists_templates.remove(good)
        self.lists_templates.insert(0, good)
        return dest

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
            return on_disk.has_file(c / "voxceleb1" / "wav", ".wav")
        if comp == "vox2":
            return on_disk.has_file(c / "voxceleb2" / "wav", ".wav") or on_disk.has_file(self.m4a_dir, ".m4a")
        if comp == "musan":
            return all(on_disk.has_file(c / "musan" / k, ".wav") for k in ("noise", "music", "speech"))
        if comp == "rirs":
            return all(on_disk.has_file(c / "RIRS_NOISES" / "simulated_rirs" / k, ".wav") for k in ("smallroom", "mediumroom"))
        list_name, audio = VOXSRC[comp]
        return (c / "lists" / list_name).is_file() and on_disk.has_file(c / audio, ".wav")

    def wanted(self, comp: str) -> bool:
        if comp in VOXSRC:
            given = getattr(self.o, f"{comp}_list")
            return bool(given) or self.present(comp)
        return True

    def needs_network(self, comp: str) -> bool:
        """False for a VoxSRC component whose list and audio are given as local files or folders."""
        if comp in VOXSRC:
            return any(is_url(getattr(self.o, f"{comp}_{part}")) for part in ("list", "audio"))
        return True

    # ------------------------------------------------------------------ run

    def link_on_disk(self) -> None:
        """Link the copies given by --vox1-dir, --vox2-dir, --musan-dir, --rirs-dir into the corpus dir."""
        c = self.corpus
        if self.o.vox1_dir:
            n = on_disk.link_vox1([Path(d) for d in self.o.vox1_dir.split()], c)
            self.log(f"vox1: {n} speakers linked from {self.o.vox1_dir} into {c / 'voxceleb1' / 'wav'}")
        if self.o.vox2_dir:
            plan = on_disk.link_vox2(Path(self.o.vox2_dir), c)
            self.log(f"vox2: {plan.linked} speakers' wav files linked from {self.o.vox2_dir} into {c / 'voxceleb2' / 'wav'}"
                     + (f", {plan.to_convert} speakers' m4a files to convert" if plan.to_convert else ""))
        if self.o.musan_dir:
            on_disk.link_musan(Path(self.o.musan_dir), c)
            self.log(f"musan: linked {c / 'musan'} -> {self.o.musan_dir}")
        if self.o.rirs_dir:
            on_disk.link_rirs(Path(self.o.rirs_dir), c)
            self.log(f"rirs: linked {c / 'RIRS_NOISES'} -> {self.o.rirs_dir}")
        if self.o.lists_dir:
            names = on_disk.copy_lists(Path(self.o.lists_dir), c, TRIAL_LISTS)
            self.log(f"lists: {', '.join(names)} copied from {self.o.lists_dir} into {c / 'lists'}")

    def run(self) -> None:
        self.link_on_disk()
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
            elif self.o.skip_download and self.needs_network(comp):
                missing.append(comp)
                continue
            else:
                self._touch(f"{comp}.inprogress")
                self.obtain(comp)
            self.finish(comp)
            self._touch(f"{comp}.done")
            busy.unlink(missing_ok=True)
        if missing:
            self.report_missing(missing)
        self.log(f"stage 1 done: corpora in {self.corpus}")

    def report_missing(self, missing: list[str]) -> None:
        """With --skip-download, what is not on disk is skipped, one line each (stage 2 prepares
        what is there; a stage that needs a missing set names it); nothing to evaluate is an error."""
        lists = [n for n in TRIAL_LISTS if (self.corpus / "lists" / n).is_file()]
        for comp in missing:
            where = (", ".join(str(self.corpus / "lists" / n) for n in TRIAL_LISTS if n not in lists)
                     if comp == "lists" else f"{comp} under {self.corpus}")
            self.log(f"{comp}: {where} not there and --skip-download true: skipped ({NEEDED_FOR[comp]})")
        if not (self.present("vox1") and lists) and not any(self.present(c) for c in VOXSRC):
            raise SpkidError(
                f"--skip-download true, but {self.corpus} holds nothing to evaluate on: neither VoxCeleb1 with a "
                f"trial list nor a VoxSRC list with its audio (missing: {', '.join(missing)}). Point --vox1-dir (and "
                f"--lists-dir) at your copies, or put them in the layout of docs/voxceleb.md (e.g. "
                f"voxceleb1/wav/<spk>/<sess>/<n>.wav, lists/veri_test2.txt), or drop --skip-download to download them")

    def obtain(self, comp: str) -> None:
        if comp == "lists":
            for name in TRIAL_LISTS:
                self.fetch_list(name)
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
        """The challenge's list, its own audio (an archive or a folder) and links to the corpora
        its paths name (voxceleb1/...); every listed file must then be there."""
        list_name, audio_rel = VOXSRC[comp]
        given_list, given_audio = getattr(self.o, f"{comp}_list"), getattr(self.o, f"{comp}_audio")
        target = self.corpus / "lists" / list_name
        got = self._local_or_fetched(given_list, self.downloads / list_name, binary=False)
        if got != target:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(got, target)
        files = list(voxsrc.read_listed_files(target).values())
        audio_root = self.corpus / audio_rel
        if audio_root.is_symlink():  # an earlier layout linked the whole root to the given folder
            audio_root.unlink()
        voxsrc.link_corpus_folders(files, self.corpus, audio_root)
        own = [f for f in files if f.corpus_folder is None]
        local = None if not given_audio or is_url(given_audio) else Path(given_audio)
        if local is not None and local.is_dir():  # a folder may hold the list's corpus side too
            own += [f for f in files if f.corpus_folder and not (self.corpus / voxsrc.CORPUS_FOLDERS[f.corpus_folder]).is_dir()
                    and (local / f.path).is_file()]
        if own and not given_audio:
            raise SpkidError(f"--{comp}-list is given but not --{comp}-audio: {len(own)} of its files (e.g. "
                             f"{own[0].path}) come with the challenge's audio; give it (an archive URL or file, or "
                             f"a directory)")
        if local is not None and local.is_dir():
            for folder in voxsrc.audio_folders(own, local):
                on_disk.link(folder.source, audio_root / folder.name, f"--{comp}-audio")
        elif own:
            name = os.path.basename(urllib.parse.urlsplit(given_audio).path) or f"{comp}_audio"
            archive = self._local_or_fetched(given_audio, self.downloads / name, binary=True)
            written, _ = extract(archive, audio_root, voxsrc.archive_selector(own), self.progress)
            self.log(f"{comp}: extracted {written} files into {audio_root}")
        absent = voxsrc.absent_files(files, audio_root)
        if absent:
            raise SpkidError(voxsrc.describe_absent(absent, len(files), target, audio_root, self.corpus,
                                                    f"--{comp}-audio"))

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
                self.log(f"lists: {name} has {on_disk.count_lines(c / 'lists' / name)} trials")

    def _report(self, what: str, n: int) -> None:
        full = KNOWN_COUNTS.get(what)
        note = "" if full is None or n == full else f" (the full corpus has {full}: a partial copy?)"
        self.log(f"{what}: {n} files{note}")

    def convert_vox2(self) -> None:
        c = self.corpus
        wav_root = c / "voxceleb2" / "wav"
        if self.m4a_dir.is_dir():
            failures_file = c / "voxceleb2" / "convert_failures.txt"
            jobs = ConvertJobs(self.o.cmd, self.convert_command, c / "voxceleb2")
            result = convert_tree(self.m4a_dir, wav_root, nj=self.o.nj, progress=self.progress,
                                  failures_file=failures_file, jobs=jobs)
            self.log(f"voxceleb2 m4a->wav: {result.summary()}")
            if result.failed:
                text = describe_failures(result, self.m4a_dir, failures_file)
                if len(result.failed) > self.o.max_convert_failures:
                    raise SpkidError(
                        f"{text}\nThe other files are converted. Re-extract the failed ones (delete "
                        f"{self._marker('vox2_dev_aac.zip.extracted')} and run again), or accept them with "
                        f"--max-convert-failures {len(result.failed)} (they are then left out of training)")
                self.log(text)
            elif not self.o.keep_m4a and not any(p.is_symlink() for p in self.m4a_dir.iterdir()):
                shutil.rmtree(self.m4a_dir)  # never a user's own copy (linked in by --vox2-dir)
        utts = find_files(wav_root, ".wav")
        self._report("voxceleb2", len(utts))
        with atomic_write(c / "lists" / "train_list.txt") as f:
            for rel in utts:
                f.write(f"{rel.split(os.sep, 1)[0]} {rel}\n")
