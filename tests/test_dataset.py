
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch

import spkid.data.audio as audio
from spkid.data.audio import crop_samples, pcm16_to_float, read_crop, wrap_crop
from spkid.data.augment import (AUG_DEVICE, AUG_WORKER, AugmentSource, DeviceAugmentBank, RirBank, WindowBank,
                                bank_budget_gib, choose_augmentation, device_bank_refusal, pack_audio)
from spkid.data.datadir import DataDir
from spkid.data.dataset import TrainCropDataset, build_train_data, device_wave
from spkid.errors import SpkidError
from spkid.options import TrainOptions
from spkid.data.synthetic import make_aug_dirs, make_train_dir

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
    real = audio.read_audio

    def spy(entry, start=0, frames=-1, **kw):
        calls.append((start, frames))
        return real(entry, start, frames, **kw)

    monkeypatch.setattr(audio, "read_audio", spy)
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
        # 16-bit audio travels as int16 and becomes exactly the float32 read on the device
        assert b["wave"].shape == (8, crop_samples(50)) and b["wave"].dtype == torch.int16
        spk = [train.utt2spk[u] for u in b["utts"]]
        assert [td.spk2idx[s] for s in spk] == b["label"].tolist()
        assert all(spk[k] == spk[k + 1] for k in range(0, 8, 2))
        for utt, w in zip(b["utts"], device_wave(b, CPU).numpy()):
            full = sf.read(train.wav_scp[utt], dtype="float32")[0]
            candidates = np.flatnonzero(full[:len(full) - len(w) + 1] == w[0])
            assert any(np.array_equal(full[i:i + len(w)], w) for i in candidates), utt


def test_short_utterances_are_wrap_padded(tmp_path):
    root = tmp_path
    train = make_train_dir(root, num_speakers=4, utts_per_speaker=2, seconds=(0.5, 0.6))
    td = build_train_data(train, None, opts(batch_size=4, train_frames=100), m=1, rank=0, world_size=1, device=CPU)
    b = next(iter(td.loader))
    for utt, w in zip(b["utts"], device_wave(b, CPU).numpy()):
        full = sf.read(train.wav_scp[utt], dtype="float32")[0]
        np.testing.assert_array_equal(w, np.resize(full, len(w)))


def test_utterances_too_short_to_embed_are_refused(tmp_path):
    # stage 4 refuses an utterance under 0.5 s; training took it silently, each crop the clip repeated
    train = make_train_dir(tmp_path, num_speakers=4, utts_per_speaker=2, seconds=(0.5, 0.6))
    short = sorted(train.wav_scp)[5]
    (train.path / "utt2dur").write_text("".join(f"{u} {0.3 if u == short else 0.55}\n" for u in sorted(train.wav_scp)))
    with pytest.raises(SpkidError, match=rf"1 training utterance\(s\) are shorter than the 0.5 s stage 4 embeds, e.g. "
                                         rf"'{short}': only 0.30 s of audio; .*remove them from the data dir"):
        build_train_data(DataDir.load(train.path), None, opts(batch_size=4), m=1, rank=0, world_size=1, device=CPU)


def test_crop_starts_are_uniform_over_the_utterance(tmp_path):
    """The start of a training crop is drawn over the whole utterance (every sample index is its
    own 16-bit value here, so a crop's first sample is its start)."""
    n, frames = 40000, crop_samples(50)
    path = tmp_path / "ramp.wav"
    sf.write(path, (np.arange(n) - n // 2).astype(np.int16), 16000, subtype="PCM_16")
    ds = TrainCropDataset(["u"], [str(path)], [n], [0], frames)
    starts = []
    for seed in range(300):
        w = ds[(0, seed)]["wave"].astype(np.int64) + n // 2
        assert np.array_equal(w, np.arange(w[0], w[0] + frames))  # contiguous, never wrapped
        starts.append(int(w[0]))
    span = n - frames
    assert min(starts) < 0.05 * span and max(starts) > 0.95 * span
    assert abs(np.mean(starts) - span / 2) < 0.1 * span
    assert ds[(0, 7)]["wave"].tolist() == ds[(0, 7)]["wave"].tolist()  # the item's seed fixes it


# The two placements of augmentation: per utterance in the workers; batched on the device with
# the packed bank held there (auto on a CPU).
PLACEMENTS = {AUG_WORKER: dict(batched_augment="false"), AUG_DEVICE: dict()}


@pytest.mark.parametrize("mode", PLACEMENTS)
def test_fixed_seed_same_batches_any_workers(corpus, mode):
    train, aug = corpus
    o = opts(augment=True, **PLACEMENTS[mode])
    runs = []
    for workers in (0, 2):
        o.num_workers = workers
        td = build_train_data(train, aug, o, m=2, rank=0, world_size=1, device=CPU)
        assert td.dataset.mode == mode
        td.set_epoch(1)
        runs.append(list(td.loader))
    for b0, b1 in zip(*runs):
        assert b0["utts"] == b1["utts"] and b0.keys() == b1.keys()
        for key in b0.keys() - {"utts"}:
            torch.testing.assert_close(b0[key], b1[key], rtol=0, atol=0)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_every_placement_gives_the_reference_audio(corpus, device):
    """The same draws through each placement give the per-utterance reference's audio."""
    train, aug = corpus
    dev = torch.device(device)
    out = {}
    for mode, kw in PLACEMENTS.items():
        td = build_train_data(train, aug, opts(augment=True, **kw), m=2, rank=0, world_size=1, device=dev)
        assert td.dataset.mode == mode
        batches = list(td.loader)
        if mode == AUG_DEVICE:  # only the draws cross from the workers
            assert "clips" not in batches[0] and "rir" not in batches[0]
        out[mode] = (torch.cat([device_wave(b, dev, td.device_augment).cpu() for b in batches]),
                     torch.cat([b["aug_kind"] for b in batches]))
    ref_wave, ref_kind = out[AUG_WORKER]
    assert len(set(ref_kind.tolist())) >= 4
    assert torch.equal(out[AUG_DEVICE][1], ref_kind)
    torch.testing.assert_close(out[AUG_DEVICE][0], ref_wave, rtol=1e-4, atol=1e-5)


def unpacked_copy(src, dst):
    """A copy of data dir ``src`` at ``dst`` without its packed bank."""
    dst.mkdir()
    for f in src.iterdir():
        if not f.name.startswith("bank."):
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


@CUDA
def test_cuda_bank_augmentation_does_not_synchronise(corpus):
    train, aug = corpus
    dev = torch.device("cuda", 0)
    td = build_train_data(train, aug, opts(augment=True), m=2, rank=0, world_size=1, device=dev)
    assert td.dataset.mode == AUG_DEVICE and td.device_augment.audio.is_cuda
    batches = [{k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in b.items()} for b in td.loader]
    device_wave(batches[0], dev, td.device_augment)  # warm-up: cuFFT plans
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        waves = [device_wave(b, dev, td.device_augment) for b in batches]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(torch.isfinite(w).all() for w in waves)


def test_packed_bank_reads_what_the_wav_files_hold(corpus, tmp_path):
    _, aug = corpus
    unpacked = unpacked_copy(aug / "musan_speech", tmp_path / "musan_speech")
    packed, plain = WindowBank.load(aug / "musan_speech"), WindowBank.load(unpacked)
    assert packed.packed is not None and plain.packed is None
    assert packed.names == plain.names
    rng = np.random.default_rng(0)
    for i in range(len(packed)):
        n = int(packed.lengths[i])
        assert 0 <= int(plain.lengths[i]) - n <= 80  # segments times are rounded to 10 ms; the bank knows the real end
        for offset, frames in ((0, 100), (int(rng.integers(n)), 300), (n - 50, 200), (0, 3 * n)):
            np.testing.assert_array_equal(packed.read(i, offset, frames), plain.read(i, offset, frames))


def test_packed_rirs_equal_the_wav_files(corpus, tmp_path):
    _, aug = corpus
    packed, plain = RirBank.load(aug / "rirs"), RirBank.load(unpacked_copy(aug / "rirs", tmp_path / "rirs"))
    assert (aug / "rirs" / "bank.index").is_file() and packed.names == plain.names
    np.testing.assert_array_equal(packed.bounds, plain.bounds)
    np.testing.assert_array_equal(packed.data, plain.data)
    np.testing.assert_allclose([np.sum(packed[i] ** 2) for i in range(len(packed))], 1.0, rtol=1e-5)


def test_device_bank_clips_wrap_like_the_reader(corpus):
    _, aug = corpus
    source = AugmentSource.load(aug)
    dev_bank = DeviceAugmentBank(source, CPU)
    base = source.window_base
    speech = source.banks["speech"]
    wins = [0, 1, len(speech) - 1]
    offsets = [0, 123, int(speech.lengths[-1]) - 10]
    got = dev_bank.clips(torch.tensor(wins) + base["speech"], torch.tensor(offsets), 7000)
    for row, (w, o) in enumerate(zip(wins, offsets)):
        np.testing.assert_array_equal(got[row].numpy(), speech.read(w, o, 7000))
    rirs = dev_bank.rirs(torch.tensor([2, 0]))
    for row, r in enumerate((2, 0)):
        h = source.rirs[r]
        np.testing.assert_array_equal(rirs[row, :len(h)].numpy(), h)
        assert not rirs[row, len(h):].any()


def test_stale_or_damaged_bank_is_named_with_the_fix(corpus, tmp_path):
    _, aug = corpus
    d = unpacked_copy(aug / "musan_noise", tmp_path / "musan_noise")
    pack_audio(d)
    assert WindowBank.load(d).packed is not None
    with open(d / "bank.pcm16", "ab") as f:
        f.write(b"\0\0")
    with pytest.raises(SpkidError, match=r"bank.pcm16 holds .* utils/pack_audio.py"):
        WindowBank.load(d)
    pack_audio(d)
    lines = (d / "wav.scp").read_text().splitlines()
    (d / "wav.scp").write_text("\n".join(lines[:-1]) + "\n")
    (d / "segments").write_text("".join(l + "\n" for l in (d / "segments").read_text().splitlines()
                                         if not l.split()[1] == lines[-1].split()[0]))
    with pytest.raises(SpkidError, match=r"packed from another .*wav.scp.*utils/pack_audio.py"):
        WindowBank.load(d)


def test_unpacked_or_oversized_bank_falls_back_to_per_utterance(corpus, tmp_path, caplog):
    train, aug = corpus
    src = AugmentSource.load(aug)
    assert device_bank_refusal(src, 16.0) is None
    assert "--aug-bank-max-gb" in device_bank_refusal(src, 1e-6)
    assert bank_budget_gib(-1, CPU) == 16.0 and bank_budget_gib(0.5, CPU) == 0.5
    for name in ("musan_noise", "musan_music", "musan_speech", "rirs"):
        unpacked_copy(aug / name, tmp_path / name)
    with caplog.at_level("WARNING"):
        td = build_train_data(train, tmp_path, opts(augment=True), m=2, rank=0, world_size=1, device=CPU)
    assert td.dataset.mode == AUG_WORKER and td.device_augment is None
    assert "utils/pack_audio.py" in caplog.text and "musan_noise" in caplog.text
    td = build_train_data(train, aug, opts(augment=True, aug_bank_max_gb=1e-6), m=2, rank=0, world_size=1, device=CPU)
    assert td.dataset.mode == AUG_WORKER


def test_auto_placement_is_the_measured_best_for_the_device(corpus):
    """--batched-augment=auto: per utterance in the workers on a GPU (the H200's end-to-end
    figures), the bank on the device on a CPU (the 2-core machine's loader figures)."""
    src = AugmentSource.load(corpus[1])
    assert choose_augmentation(src, "auto", -1, torch.device("cuda", 0)).name == AUG_WORKER
    assert choose_augmentation(src, "auto", -1, CPU).name == AUG_DEVICE
    assert choose_augmentation(src, "false", -1, CPU).name == AUG_WORKER
    assert choose_augmentation(src, "true", -1, CPU).name == AUG_DEVICE
    assert TrainOptions().batched_augment == "auto"


def test_window_bank_pickles_its_memory_map_by_name(corpus):
    import pickle
    bank = WindowBank.load(corpus[1] / "musan_music")
    blob = pickle.dumps(bank)
    assert len(blob) < bank.packed.nbytes / 4
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again.read(1, 5, 500), bank.read(1, 5, 500))


def test_device_mode_pickles_for_workers_without_its_bank(corpus):
    import pickle
    train, aug = corpus
    td = build_train_data(train, aug, opts(augment=True), m=2, rank=0, world_size=1, device=CPU)
    assert td.dataset.mode == AUG_DEVICE and td.device_augment is td.dataset.augmentation.device_augment
    blob = pickle.dumps(td.dataset)
    assert len(blob) < td.device_augment.audio.nbytes / 4  # the device bank stays in the training process
    again = pickle.loads(blob)
    assert again.augmentation.device_augment is None
    item, copy = td.dataset[(3, 11)], again[(3, 11)]
    assert item.keys() == copy.keys()
    for key in item:
        np.testing.assert_array_equal(item[key], copy[key])


def test_ranks_split_the_global_batch(corpus):
    train, _ = corpus
    per_rank = [list(build_train_data(train, None, opts(), m=2, rank=r, world_size=2, device=CPU).loader)
                for r in range(2)]
    whole = list(build_train_data(train, None, opts(), m=2, rank=0, world_size=1, device=CPU).loader)
    for b0, b1, b in zip(*per_rank, whole):
        assert b0["utts"] + b1["utts"] == b["utts"]
        torch.testing.assert_close(torch.cat([b0["wave"], b1["wave"]]), b["wave"])


def test_workers_outlive_a_sigterm_sent_to_every_process_and_end_with_their_rank(corpus):
    """Slurm signals every process of a step: the DataLoader workers leave that SIGTERM to their
    rank (which saves a checkpoint and stops); the DataLoader still stops them."""
    train, _ = corpus
    td = build_train_data(train, None, opts(batch_size=4, num_workers=2), m=1, rank=0, world_size=1, device=CPU)
    reference = build_train_data(train, None, opts(batch_size=4), m=1, rank=0, world_size=1, device=CPU)
    for data in (td, reference):
        data.set_epoch(1)
    whole = [b["utts"] for b in reference.loader]
    batches = iter(td.loader)
    seen = [next(batches)["utts"]]
    workers = [w for w in batches._workers]
    subprocess.run(["kill", "-TERM", *(str(w.pid) for w in workers)], check=True)  # not their parent
    seen += [b["utts"] for b in batches]
    assert seen == whole and all(w.is_alive() for w in workers)
    batches._shutdown_workers()
    assert not any(w.is_alive() for w in workers)


def test_missing_aug_dirs_named(corpus, tmp_path):
    train, _ = corpus
    with pytest.raises(SpkidError, match="musan_noise"):
        AugmentSource.load(tmp_path)
    with pytest.raises(SpkidError, match="--aug-data"):
        build_train_data(train, None, opts(augment=True), m=2, rank=0, world_size=1, device=CPU)


def test_unreadable_training_file_is_one_line_naming_it(tmp_path):
    from spkid.errors import error_message

    train = make_train_dir(tmp_path, num_speakers=4, utts_per_speaker=2, seconds=(0.5, 1.0))
    bad = sorted(train.wav_scp)[3]
    with open(train.wav_scp[bad], "wb") as f:
        f.write(b"not a wav file at all")
    td = build_train_data(train, None, opts(batch_size=4, num_workers=1), m=1, rank=0, world_size=1, device=CPU)
    with pytest.raises(SpkidError) as info:
        for _ in td.loader:
            pass
    msg = error_message(info.value)
    assert "\n" not in msg and "Traceback" not in msg
    assert f"utterance '{bad}'" in msg and "utils/validate_data_dir.py" in msg


def test_partial_utt2dur_is_named(tmp_path):
    train = make_train_dir(tmp_path, num_speakers=4, utts_per_speaker=2, seconds=(0.5, 1.0))
    lines = (train.path / "utt2dur").read_text().splitlines()
    (train.path / "utt2dur").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(SpkidError, match=r"utt2dur has no duration for '.*' \(1 of 8 missing\)"):
        build_train_data(DataDir.load(train.path), None, opts(batch_size=4), m=1, rank=0, world_size=1, device=CPU)


def test_lengths_from_headers_without_utt2dur(tmp_path):
    train = make_train_dir(tmp_path, num_speakers=4, utts_per_speaker=2, seconds=(0.5, 1.0))
    (train.path / "utt2dur").unlink()
    loaded = DataDir.load(train.path)
    td = build_train_data(loaded, None, opts(batch_size=4), m=1, rank=0, world_size=1, device=CPU)
    expected = [sf.info(train.wav_scp[u]).frames for u in td.dataset.utts]
    assert td.dataset.lengths.tolist() == expected
