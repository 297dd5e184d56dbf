#!/usr/bin/env python3
"""Embed a collection of recordings with a trained system, as evaluation embeds test utterances.

    steps/embed.py --out=emb exp/HA4 recordings/          # every audio file under the folder
    steps/embed.py --out=emb --format=npy exp/HA4 data/x/wav.scp
    steps/embed.py --out=emb exp/HA4 speech.flac          # one recording, key 'speech'

Keys: a folder's files by relative path without extension (``spk1/rec01``); a wav.scp's
utterance ids. --kind=mean (default) writes one vector per recording: the mean of its
L2-normalised crop embeddings, the representation scoring uses (the dot product of two is the
system's cosine score). --kind=crops writes the raw crops x dim matrices stage 4 writes.
--format=ark: OUT/embeddings.{ark,scp} (kaldiio); --format=npy: OUT/embeddings.npy (N x D, or
N x crops x D) and OUT/keys.txt (row order). Unusable files are reported at the end (exit
status 1) after the rest are embedded.
"""

from __future__ import annotations

from typing import Sequence

from spkid.cli import run_main
from spkid.config import parse_options
from spkid.eval.embed import EmbedOptions, embed


def main(argv: Sequence[str]) -> int:
    args = parse_options([EmbedOptions], argv, positional=["exp_dir", "input"], prog="steps/embed.py",
                         description=__doc__)
    return embed(args[EmbedOptions], args.positionals["exp_dir"], args.positionals["input"])


if __name__ == "__main__":
    run_main(main)
