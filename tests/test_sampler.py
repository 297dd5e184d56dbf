import collections

import numpy as np
import pytest

from spkid.data.sampler import SamplerError, SpeakerBatchSampler, pack_tuples


def make_spk_utts(counts):
    out, i = [], 0
    for c in counts:
        out.append(list(range(i, i + c)))
        i += c
    return out


COUNTS = [3, 7, 12, 5, 9, 2, 1, 20, 8, 6, 4, 11, 10, 13, 5, 7]
UTT2SPK = {u: s for s, utts in enumerate(make_spk_utts(COUNTS)) for u in utts}


def sampler(**kw):
    args = dict(batch_size=8, m=2, max_seg_per_spk=6, seed=3)
    args.update(kw)
    return SpeakerBatchSampler(make_spk_utts(COUNTS), **args)


def test_batches_are_speaker_groups_with_distinct_speakers():
    s = sampler()
    batches = list(s)
    assert len(batches) == len(s) > 0
    for b in batches:
        assert len(b) == 8
        spk = [UTT2SPK[i] for i, _ in b]
        groups = [spk[k:k + 2] for k in range(0, 8, 2)]
        assert all(g[0] == g[1] for g in groups)
        assert len({g[0] for g in groups}) == 4
        assert len({i for i, _ in b}) == 8


def test_epoch_caps_utterances_per_speaker_and_uses_each_once():
    s = sampler()
    used = [i for b in s for i, _ in b]
    assert len(used) == len(set(used))
    per_spk = collections.Counter(UTT2SPK[i] for i in used)
    assert max(per_spk.values()) <= 6
    assert 6 not in per_spk  # speaker 6 has 1 utterance < M: never sampled
    # everything fits into full batches except at most one batch's worth (and clashes of the biggest speakers)
    available = sum(min(c, 6) // 2 * 2 for c in COUNTS)
    assert available - len(used) < 2 * 8


def test_ranks_take_disjoint_slices_of_the_global_batch():
    ranks = [list(sampler(rank=r, world_size=2)) for r in range(2)]
    glob = sampler().global_batches()
    assert len(ranks[0]) == len(ranks[1]) == len(glob)
    for b0, b1, g in zip(ranks[0], ranks[1], glob):
        assert b0 + b1 == g
        assert len(b0) == 4
        assert {UTT2SPK[i] for i, _ in b0}.isdisjoint({UTT2SPK[i] for i, _ in b1})


def test_reshuffled_per_epoch_and_reproducible():
    a, b = sampler(), sampler()
    e0 = list(a)
    assert e0 == list(b)
    a.set_epoch(1)
    b.set_epoch(1)
    e1 = list(a)
    assert e1 == list(b) and e1 != e0
    a.set_epoch(0)
    assert list(a) == e0
    assert list(sampler(seed=4)) != e0



def test_an_epoch_resumed_at_a_batch_gives_the_rest_of_its_batches():
    """A run stopped mid-epoch resumes at batch ``start``: the same batches (items and seeds) the
    whole epoch gives from there, on every rank."""
    for rank in (0, 1):
        whole, resumed = sampler(rank=rank, world_size=2), sampler(rank=rank, world_size=2)
        whole.set_epoch(3)
        resumed.set_epoch(3, start=2)
        assert list(resumed) == list(whole)[2:] and len(list(whole)) > 2
        resumed.set_epoch(4)
        whole.set_epoch(4)
        assert list(resumed) == list(whole)


def test_item_seeds_are_distinct():
    seeds = [seed for b in sampler() for _, seed in b]
    assert len(set(seeds)) == len(seeds)


def test_m1_and_single_speaker_batches():
    s = sampler(m=1, batch_size=5, max_seg_per_spk=500)
    used = [i for b in s for i, _ in b]
    assert all(len({UTT2SPK[i] for i, _ in b}) == 5 for b in s)
    assert len(used) == len(set(used))
    assert len(used) > sum(COUNTS) - 3 * 20  # the big speaker clashes at the end, little else is lost


def test_batch_size_must_divide_by_world_times_m():
    with pytest.raises(SamplerError, match="--batch-size=8"):
        sampler(batch_size=10, world_size=2)
    # A run resumed on another number of GPUs cannot change its global batch: the world sizes
    # that divide it are named too.
    with pytest.raises(SamplerError, match=r"--batch-size=6, or, to resume .* a world size of 1, 2, 4: GPUs x nodes"):
        sampler(batch_size=8, world_size=3)
    # a batch that is not a multiple of M fits no world size: say so instead of naming an empty list
    with pytest.raises(SamplerError) as e:
        sampler(batch_size=3, m=2)
    assert "no world size fits 3, which is not a multiple of M=2" in str(e.value)
    assert "world size of :" not in str(e.value) and "--batch-size=2" in str(e.value)
    with pytest.raises(SamplerError, match="distinct speakers"):
        sampler(batch_size=40)


def test_short_speakers_warned(caplog):
    sampler()
    assert "fewer than M=2" in caplog.text


def test_pack_tuples_defers_clashes():
    spk = np.array([0, 0, 1, 1, 2, 2])
    full = pack_tuples(spk, np.arange(6), 3)
    assert sorted(sorted(spk[b].tolist()) for b in full) == [[0, 1, 2], [0, 1, 2]]


def test_capped_speakers_rotate_through_all_their_utterances():
    """With --max-seg-per-spk below a speaker's count, each epoch takes a fresh random subset:
    over a few epochs every utterance of speaker 7 (20 utterances, cap 6) is trained on."""
    s = sampler()
    seen = set()
    for epoch in range(12):
        s.set_epoch(epoch)
        seen |= {i for b in s for i, _ in b if UTT2SPK[i] == 7}
    assert seen == set(make_spk_utts(COUNTS)[7])


def test_batch_composition_changes_between_epochs():
    """Which speakers share a batch is reshuffled each epoch (not fixed by speaker order)."""
    s = sampler()
    pairs = []
    for epoch in range(2):
        s.set_epoch(epoch)
        pairs.append({frozenset({UTT2SPK[b[k][0]], UTT2SPK[b[j][0]]})
                      for b in s for k in range(0, 8, 2) for j in range(k + 2, 8, 2)})
    assert pairs[0] != pairs[1]
