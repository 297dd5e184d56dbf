"""What is published where: the archives of VoxCeleb, MUSAN and RIRS_NOISES, their md5 sums,
the trial lists and the mirrors that serve them. Tables only; :mod:`spkid.corpora.voxceleb` fetches.
"""

from __future__ import annotations

from dataclasses import dataclass

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
# Where the VoxCeleb1 trial lists are served, tried in this order. The dataset's meta files moved
# from the Oxford VGG site to KAIST's mirror, where clovaai/voxceleb_trainer (the paper's code)
# now points for its test lists; the Oxford address is kept as a fallback.
LISTS_MIRRORS = ("https://mm.kaist.ac.kr/datasets/voxceleb/meta/{file}",
                 "https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta/{file}")
NEEDED_FOR = {  # what each component is for, said when it is skipped
    "lists": "the VoxCeleb1 trial lists: Vox1-O/E/H scoring", "vox1": "VoxCeleb1: Vox1-O/E/H scoring",
    "vox2": "VoxCeleb2 dev: training and the back-end's cohort", "musan": "MUSAN: training augmentation",
    "rirs": "RIRS_NOISES: training augmentation", "voxsrc19": "VoxSRC 2019 test scoring",
    "voxsrc20": "VoxSRC 2020 validation scoring and fusion tuning"}
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
