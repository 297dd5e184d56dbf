"""Trial lists for the mini corpus, shaped like VoxCeleb's evaluation lists.

Each list pairs every enrolment utterance with a few target trials (same speaker, another
session, as VoxCeleb pairs different videos) and as many non-target trials, so labels
are balanced like Vox1-O. The non-targets of the H-like list share gender and language, as
Vox1-H's share nationality and gender.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Utt:
    path: str       # <spk>/<session>/<NNNNN>.wav, relative to its wav root
    spk: str
    session: str
    group: tuple[str, str]   # (gender, language) of the speaker


def draw_trials(rng: np.random.Generator, enroll: list[Utt], test: list[Utt], per_side: int,
                same_group_nontargets: bool = False) -> list[tuple[int, str, str]]:
    """For each enrolment utterance draw up to ``per_side`` targets and ``per_side`` non-targets
    from ``test`` (never the utterance itself, no pair twice in either order).

    Targets are from another session of the speaker; with ``same_group_nontargets`` non-targets
    are other speakers of the same (gender, language) group."""
    test = sorted(test, key=lambda u: u.path)
    by_spk: dict[str, list[Utt]] = {}
    by_group: dict[tuple[str, str], list[Utt]] = {}
    for u in test:
        by_spk.setdefault(u.spk, []).append(u)
        by_group.setdefault(u.group, []).append(u)
    seen: set[tuple[str, str]] = set()
    out: list[tuple[int, str, str]] = []
    for e in sorted(enroll, key=lambda u: u.path):
        targets = [u for u in by_spk.get(e.spk, []) if u.session != e.session]
        pool_nt = by_group.get(e.group, []) if same_group_nontargets else test
        nontargets = [u for u in pool_nt if u.spk != e.spk]
        rows = []
        for label, pool in ((1, targets), (0, nontargets)):
            if not pool:
                continue
            picks = rng.permutation(len(pool))
            taken = 0
            for j in picks:
                if taken == per_side:
                    break
                pair = tuple(sorted((e.path, pool[j].path)))
                if pair in seen:
                    continue
                seen.add(pair)
                rows.append((label, e.path, pool[j].path))
                taken += 1
        out += [rows[i] for i in rng.permutation(len(rows))]
    return out


def format_voxceleb(rows: list[tuple[int, str, str]]) -> str:
    """VoxCeleb's trial format: ``1|0 enroll.wav test.wav`` per line."""
    return "".join(f"{lab} {a} {b}\n" for lab, a, b in rows)
