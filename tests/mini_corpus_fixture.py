"""One tiny mini corpus per test session, shared by the corpus, preparation and baseline tests."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from spkid.corpora.mini.corpus import MiniCorpusOptions, generate

TINY = dict(train_speakers=6, test_speakers=4, val_speakers=4, utts_per_speaker=4, sessions=2,
            noise_clips=3, music_clips=2, speech_clips=2, rooms=2, rirs_per_room=2, quiet=True)


def tiny_options(out: Path, nj: int = 2, seed: int = 3) -> MiniCorpusOptions:
    return MiniCorpusOptions(out=str(out), nj=nj, seed=seed, **TINY)


@functools.lru_cache(maxsize=None)
def tiny_corpus(nj: int = 2, seed: int = 3) -> Path:
    root = Path(tempfile.mkdtemp(prefix="spkid-mini-test-"))
    atexit.register(shutil.rmtree, root, True)
    generate(tiny_options(root / "corpus", nj, seed))
    return root / "corpus"
