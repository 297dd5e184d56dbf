
import numpy as np
import pytest
import soundfile as sf
import torch

import spkid.dataset as dataset
from spkid.datadir import DataDir
from spkid.dataset import (AugmentSource, WindowBank, build_train_data, crop_samples, read_crop,
                           wrap_crop)
from spkid.errors import SpkidError
from spkid.options import TrainOptions
from spkid.synthetic import make_aug_dirs, make_train_dir

torch.set_num_threads(1)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return make_train_dir(root, num_speakers=8, utts_per_speaker=4, seconds=(1.0, 3.0)), make_aug_dirs(root)


def opts(**kw):
    args = dict(batch_size=8, train_frames=50, num_workers=0, seed=5, augment=False)
    args.update(kw)
    return TrainOptions(**args)


def test_crop_samples():
    assert crop_samples(200) == 32240
    assert crop_samples(400) == 64240


def test_wrap_crop_is_circular():
    x = np.arange(5, dtype=np.float32)
    assert wrap_crop(x, 0, 12).tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    assert wrap_crop(x, 3, 4).tolist() == [3, 4, 0, 1]
    assert wrap_crop(x, 1, 3).tolist() == [1, 2, 3]


def test_read_crop_seeks_and_wraps(tmp_path, monkeypatch):
    x = (np.arange(16000) % 1000 / 1000 - 0.5).astype(np.float32)
    p = tmp_path / "a.wav"
    sf.write(p, x, 16000, subtype="FLOAT")
    calls = []
    real = dataset.read_audio

    def spy(entry, start=0, frames=-1, **kw):
        calls.append((start, frames))
        return real(entry, start, frames, **kw)

    monkeypatch.setattr(dataset, "read_audio", spy)
    np.testing.assert_array_equal(read_crop(str(p), 300, offset=1000, seg_len=16000), x[1000:1300])
    assert calls == [(1000, 300)]  # only the crop is decoded
    calls.clear()
    np.testing.assert_array_equal(read_crop(str(p), 200, offset=50, seg_start=15900, seg_len=100),
                                  np.concatenate([x[15950:], x[15900:], x[15900:15950]]))
    # a length that overstates the file (rounded utt2dur) falls back to the real samples
    np.testing.assert_array_equal(read_crop(str(p), 300, offset=15800, seg_len=16100),
                                  np.concatenate([x[15800:], x[:100]]))


def test_window_bank_reads_segments(corpus):
    _, aug = corpus
    bank = WindowBank.load(aug / "musan_speech")
    assert len(bank) >= 7
    assert bank.lengths.max() == 5 * 16000
    seg = (aug / "musan_speech" / "segments").read_text().splitlines()[1].split()
    assert bank.names[1] == seg[0]
    full = sf.read(bank.entries[1], dtype="float32")[0]
    s0 = int(round(float(seg[2]) * 16000))
    np.testing.assert_allclose(bank.read(1, 10, 100), full[s0 + 10:s0 + 110])


def test_batches_labels_and_shapes(corpus):
    train, _ = corpus
    td = build_train_data(train, None, opts(), m=2, rank=0, world_size=1, device=CPU)
    assert td.num_speakers == 8 and td.spk2idx["id00000"] == 0
    assert td.device_augment is None
    batches = list(td.loader)
    assert len(batches) == td.batches_per_epoch == 4
    for b in batches:
        assert b["wave"].shape == (8, crop_samples(50)) and b["wave"].dtype == torch.float32
        spk = [train.utt2spk[u] for u in b["utts"]]
        assert [td.spk2idx[s] for s in spk] == b["label"].tolist()
        assert all(spk[k] == spk[k + 1] for k in range(0, 8, 2))
        for utt, w in zip(b["utts"], b["wave"].numpy()):
            full = sf.read(train.wav_scp[utt], dtype="float32")[0]
            candidates = np.flatnonzero(full[:len(full) - len(w) + 1] == w[0])
            assert any(np.array_equal(full[i:i + len(w)], w) for i in candidates), utt


def test_short_utterances_are_wrap_padded(tmp_path):
    root = tmp_path
    train = make_train_dir(root, num_speakers=4, utts_per_speaker=2, seconds=(0.2, 0.3))
    td = build_train_data(train, None, opts(batch_size=4, train_frames=100), m=1, rank=0, world_size=1, device=CPU)
    b = next(iter(td.loader))
    for utt, w in zip(b["utts"], b["wave"].numpy()):
        full = sf.read(train.wav_scp[utt], dtype="float32")[0]
        np.testing.assert_array_equal(w, np.resize(full, len(w)))


@pytest.mark.parametrize("batched", [False, True])
def test_fixed_seed_same_batches_any_workers(corpus, batched):
    train, aug = corpus
    o = opts(augment=True, batched_augment=batched)
    runs = []
    for workers in (0, 2):
        o.num_workers = workers
        td = build_train_data(train, aug, o, m=2, rank=0, world_size=1, device=CPU)
        td.set_epoch(1)
        runs.append([(b["utts"], b["wave"], b.get("clips")) for b in td.loader])
    for (u0, w0, c0), (u1, w1, c1) in zip(*runs):
        assert u0 == u1
        torch.testing.assert_close(w0, w1, rtol=0, atol=0)
        if batched:
            torch.testing.assert_close(c0, c1, rtol=0, atol=0)


def test_batched_and_worker_augmentation_agree(corpus):
    train, aug = corpus
    out = {}
    for batched in (False, True):
        td = build_train_data(train, aug, opts(augment=True, batched_augment=batched), m=2, rank=0,
                              world_size=1, device=CPU)
        waves, kinds = [], []
        for b in td.loader:
            w = b["wave"]
            if td.device_augment is not None:
                w = td.device_augment(w, b)
            waves.append(w)
            kinds.append(b["aug_kind"])
        out[batched] = torch.cat(waves), torch.cat(kinds)
    assert torch.equal(out[False][1], out[True][1])
    assert len(set(out[True][1].tolist())) >= 3
    torch.testing.assert_close(out[True][0], out[False][0], rtol=1e-4, atol=1e-5)


def test_ranks_split_the_global_batch(corpus):
    train, _ = corpus
    per_rank = [list(build_train_data(train, None, opts(), m=2, rank=r, world_size=2, device=CPU).loader)
                for r in range(2)]
    whole = list(build_train_data(train, None, opts(), m=2, rank=0, world_size=1, device=CPU).loader)
    for b0, b1, b in zip(*per_rank, whole):
        assert b0["utts"] + b1["utts"] == b["utts"]
        torch.testing.assert_close(torch.cat([b0["wave"], b1["wave"]]), b["wave"])


def test_missing_aug_dirs_named(corpus, tmp_path):
    train, _ = corpus
    with pytest.raises(SpkidError, match="musan_noise"):
        AugmentSource.load(tmp_path)
    with pytest.raises(SpkidError, match="--aug-data"):
        build_train_data(train, None, opts(augment=True), m=2, rank=0, world_size=1, device=CPU)


def test_lengths_from_headers_without_utt2dur(tmp_path):
    train = make_train_dir(tmp_path, num_speakers=4, utts_per_speaker=2, seconds=(0.5, 1.0))
    (train.path / "utt2dur").unlink()
    loaded = DataDir.load(train.path)
    td = build_train_data(loaded, None, opts(batch_size=4), m=1, rank=0, world_size=1, device=CPU)
    expected = [sf.info(train.wav_scp[u]).frames for u in td.dataset.utts]
    assert td.dataset.lengths.tolist() == expected
