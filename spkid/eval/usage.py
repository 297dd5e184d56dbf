"""Embedding users' recordings with a trained system, exactly as evaluation embeds test utterances.

Recordings come in through ``spkid.data.inputs`` (any rate, channels, format; bad files refused by
name); each is cropped and embedded by the extraction code (``spkid.eval.extract``: the same crops,
wrap-padding and network call as stage 4) into a crops x dim matrix of raw crop embeddings, and
scored with ``spkid.eval.scoring`` (the mean normalised crop vector; their dot product is the paper's
mean crop-by-crop cosine).
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from spkid.console import progress
from spkid.eval.extract import LoadedSystem, check_crop_memory, crop_samples, embed_waveform
from spkid.data.inputs import Failures, load_inputs
from spkid.eval.scoring import Embeddings


def embed_recordings(system: LoadedSystem, items: Iterable[tuple[str, str]], failures: Failures,
                     notes: list[str], allow_pipes: bool = False, quiet: bool = False
                     ) -> Iterator[tuple[str, np.ndarray]]:
    """``(key, crops x dim raw embeddings)`` for each ``(key, file)`` that loads; bad files go to
    ``failures`` and the rest go on."""
    items = list(items)
    device = next(system.model.parameters()).device
    check_crop_memory(system.model, crop_samples(system.eval_opts.eval_frames), system.eval_opts.num_eval_crops, device)
    loaded = load_inputs(items, failures, notes, allow_pipes=allow_pipes)
    for key, rec in progress(loaded, total=len(items), desc="embedding", unit="file", quiet=quiet, leave=False):
        yield key, embed_waveform(system.model, rec.wave, system.eval_opts, device)


def normalised_means(crops: dict[str, np.ndarray]) -> Embeddings:
    """The scoring representation of each recording (see ``spkid.eval.scoring.Embeddings``)."""
    return Embeddings.from_raw(crops.items())
