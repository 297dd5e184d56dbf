import collections

import numpy as np
import pytest
import torch

from spkid.data.augment import (BABBLE, CLEAN, KINDS, MUSIC, NOISE, REVERB, AugDraw, augment_batch,
                                augment_utterance, draw_augmentation, fft_convolve, power_db, snr_gain)

torch.set_num_threads(1)
T = 3000
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
LENGTHS = {"noise": np.array([5000, 2000, 80000]), "music": np.array([80000, 40000]),
           "speech": np.arange(7, 17) * 1000}


# Paper section 3.3 (written out here, not read from spkid.data.augment, so a wrong table there fails)
PAPER_SNR_DB = {NOISE: (0.0, 15.0), MUSIC: (5.0, 15.0), BABBLE: (13.0, 20.0)}


def loud(rng, n, scale=0.3):
    return (scale * rng.standard_normal(n)).astype(np.float32)


def measured_snr(clean, mixed):
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((mixed - clean).astype(np.float64) ** 2))


def test_power_and_gain_by_hand():
    x = np.array([0.1, -0.1, 0.1, -0.1])
    assert power_db(x) == pytest.approx(10 * np.log10(0.01 + 1e-4))
    # clean at 0 dB (power 1), clip at -10 dB: 10 dB SNR asks for gain 1
    assert snr_gain(0.0, -10.0, 10.0) == pytest.approx(1.0)
    assert snr_gain(0.0, 0.0, 20.0) == pytest.approx(0.1)


def test_draws_follow_the_scheme():
    rng = np.random.default_rng(0)
    draws = [draw_augmentation(rng, 9, LENGTHS, T) for _ in range(5000)]
    kinds = collections.Counter(d.kind for d in draws)
    assert set(kinds) == set(range(len(KINDS)))
    assert all(abs(c / 5000 - 0.2) < 0.03 for c in kinds.values())
    for d in draws:
        if d.kind == CLEAN:
            assert d.rir == -1 and not d.windows
        elif d.kind == REVERB:
            assert 0 <= d.rir < 9 and not d.windows
        else:
            lo, hi = PAPER_SNR_DB[d.kind]
            assert all(lo <= s <= hi for s in d.snrs)
            n = len(d.windows)
            assert (3 <= n <= 7 and len(set(d.windows)) == n) if d.kind == BABBLE else n == 1
            assert len(set(d.snrs)) == n  # each babble clip draws its own SNR
            lengths = LENGTHS[d.category]
            for w, o in zip(d.windows, d.offsets):
                assert 0 <= o <= max(0, lengths[w] - T)
    babble = [len(d.windows) for d in draws if d.kind == BABBLE]
    assert set(babble) == {3, 4, 5, 6, 7}
    for kind, (lo, hi) in PAPER_SNR_DB.items():  # the whole range is used, not a part of it
        snrs = [s for d in draws if d.kind == kind for s in d.snrs]
        assert min(snrs) < lo + 0.5 and max(snrs) > hi - 0.5, KINDS[kind]


def test_same_seed_same_draw():
    a = [draw_augmentation(np.random.default_rng(7), 9, LENGTHS, T) for _ in range(2)]
    assert a[0] == a[1]


@pytest.mark.parametrize("snr", [0.0, 5.0, 13.7, 20.0])
def test_measured_snr_equals_drawn(snr):
    rng = np.random.default_rng(1)
    clean = loud(rng, T)
    # loud enough that the 1e-4 floor of P_dB (paper's code) moves the SNR by < 0.1 dB
    clip = loud(rng, T, scale=0.2)
    mixed = augment_utterance(clean, clip[None], [snr])
    assert abs(measured_snr(clean, mixed) - snr) < 0.1
    for dev in DEVICES:
        out = augment_batch(torch.from_numpy(clean)[None].to(dev), torch.from_numpy(clip)[None].to(dev),
                            torch.zeros(1, dtype=torch.long, device=dev), torch.tensor([snr], device=dev),
                            torch.zeros(0, 1, device=dev), torch.zeros(0, dtype=torch.long, device=dev))
        assert abs(measured_snr(clean, out[0].cpu().numpy()) - snr) < 0.1


def test_babble_clips_each_at_their_snr():
    rng = np.random.default_rng(2)
    clean = loud(rng, T)
    clips = np.stack([loud(rng, T, scale=s) for s in (0.1, 0.2, 0.5)])
    snrs = [13.0, 16.5, 20.0]
    mixed = augment_utterance(clean, clips, snrs)
    parts = [augment_utterance(clean, c[None], [s]) - clean for c, s in zip(clips, snrs)]
    np.testing.assert_allclose(mixed - clean, sum(parts), atol=1e-6)
    for p, s in zip(parts, snrs):
        assert abs(measured_snr(clean, clean + p) - s) < 0.1


def test_reverb_keeps_length_and_is_full_convolution_truncated():
    rng = np.random.default_rng(3)
    x = loud(rng, T)
    h = rng.standard_normal(700)
    h = (h / np.sqrt(np.sum(h ** 2))).astype(np.float32)
    y = augment_utterance(x, rir=h)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, np.convolve(x.astype(np.float64), h.astype(np.float64))[:T], atol=1e-5)
    delta = np.zeros(50, dtype=np.float32)
    delta[0] = 1
    np.testing.assert_allclose(augment_utterance(x, rir=delta), x, atol=1e-6)
    for n in (1, 700):
        got = fft_convolve(torch.from_numpy(x)[None], torch.from_numpy(h[:n])[None], T)[0].numpy()
        np.testing.assert_allclose(got, np.convolve(x, h[:n])[:T], atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_batched_equals_per_utterance_for_the_same_draws(device):
    rng = np.random.default_rng(4)
    rirs = [rng.standard_normal(n).astype(np.float32) for n in (300, 1200, 50)]
    rirs = [h / np.linalg.norm(h) for h in rirs]
    B = 24
    wave = np.stack([loud(rng, T, scale=s) for s in rng.uniform(0.01, 0.5, size=B)])
    batch = {"clips": [], "clip_owner": [], "clip_snr": [], "rir": [], "rir_owner": []}
    expected = []
    for i in range(B):
        d = draw_augmentation(rng, len(rirs), LENGTHS, T)
        clips = np.stack([loud(rng, T, scale=0.1) for _ in d.windows]) if d.windows else None
        rir = rirs[d.rir] if d.rir >= 0 else None
        expected.append(augment_utterance(wave[i], clips, d.snrs, rir))
        if clips is not None:
            batch["clips"] += list(clips)
            batch["clip_owner"] += [i] * len(clips)
            batch["clip_snr"] += d.snrs
        if rir is not None:
            batch["rir"].append(np.pad(rir, (0, 1200 - len(rir))))
            batch["rir_owner"].append(i)
    assert batch["rir_owner"] and len(set(batch["clip_owner"])) > 3
    t = {"clips": torch.from_numpy(np.stack(batch["clips"])),
         "clip_owner": torch.tensor(batch["clip_owner"]),
         "clip_snr": torch.tensor(batch["clip_snr"], dtype=torch.float32),
         "rir": torch.from_numpy(np.stack(batch["rir"])),
         "rir_owner": torch.tensor(batch["rir_owner"])}
    got = augment_batch(torch.from_numpy(wave).to(device), *(t[k].to(device) for k in t))
    assert got.device.type == device and got.shape == (B, T)
    np.testing.assert_allclose(got.cpu().numpy(), np.stack(expected), rtol=1e-4, atol=1e-5)
    untouched = [i for i in range(B) if i not in batch["rir_owner"] and i not in batch["clip_owner"]]
    assert untouched
    np.testing.assert_array_equal(got[untouched].cpu().numpy(), wave[untouched])


def test_draw_is_a_plain_record():
    d = AugDraw(MUSIC, windows=[1], offsets=[0], snrs=[7.0])
    assert d.category == "music" and AugDraw(CLEAN).category is None
