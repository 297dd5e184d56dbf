#!/usr/bin/env python3
"""A floor for the mini corpus: scores every data/<set>/trials/<list> with the cosine of
per-utterance MFCC mean and std, and prints EER and MinDCF (P_target = 0.05) per list.

  local/mfcc_baseline.py --data data
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from spkid.eval.baseline import standardize, utterance_vectors  # noqa: E402
from spkid.cli import run_main  # noqa: E402
from spkid.config import option, parse_options  # noqa: E402
from spkid.data.datadir import DataDir, read_trials  # noqa: E402
from spkid.errors import SpkidError  # noqa: E402
from spkid.eval.metrics import compute_metrics  # noqa: E402
from spkid.eval.scoring import Embeddings, score_trials  # noqa: E402


@dataclass
class BaselineOptions:
    data: str = option("data", "directory of data dirs (stage 2 output)")
    p_target: float = option(0.05, "MinDCF target prior (the paper's 0.05)")
    quiet: bool = option(False, "no progress bars")


def main(argv: list[str]) -> int:
    opts, _ = parse_options([BaselineOptions], argv, prog="mfcc_baseline.py", description=__doc__)
    torch.set_num_threads(1)
    sets = sorted(p.parent for p in Path(opts.data).glob("*/trials") if p.is_dir())
    if not sets:
        raise SpkidError(f"no data/<set>/trials/ under {opts.data}: run stage 2 first (./run.sh --stage 2 --stop-stage 2)")
    print(f"{'set':<14}{'list':<16}{'trials':>8}{'EER%':>8}  MinDCF(p={opts.p_target:g})")
    for set_dir in sets:
        d = DataDir.load(set_dir)
        lists = {name: read_trials(p) for name, p in d.trial_lists().items()}
        utts = sorted(set().union(*(t.utterances for t in lists.values())))
        vectors = standardize(utterance_vectors(d.wav_scp, utts, quiet=opts.quiet))
        emb = Embeddings.from_raw(vectors.items(), keep_crops=False)
        for name, t in lists.items():
            m = compute_metrics(score_trials(emb, t), t.labels, opts.p_target)
            print(f"{set_dir.name:<14}{name:<16}{len(t):>8}{100 * m.eer:>8.2f}  {m.min_dcf:.3f}")
    return 0


if __name__ == "__main__":
    run_main(main)
