import numpy as np
import pytest
import torch
import torchaudio

from spkid.models.features import InstanceNormLogMel, KaldiFbank, MeanNormMFCC, num_frames, preemphasise

torch.set_num_threads(1)


def speechlike(samples: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 16000
    tone = 0.3 * torch.sin(2 * np.pi * 220 * t) * (1 + torch.sin(2 * np.pi * 3 * t))
    return (tone + 0.05 * torch.randn(samples, generator=g)).clamp(-1, 1)


def preemphasis_np(x: np.ndarray, coef: float = 0.97) -> np.ndarray:
    """The paper's code's PreEmphasis: reflect-pad one sample on the left ([x1, x0, x1, ...]), then
    convolve with [-coef, 1]."""
    padded = np.pad(x, (1, 0), mode="reflect")
    return padded[1:] - coef * padded[:-1]


def reference_power_mel(x: np.ndarray, n_mels: int, coef: float = 0.97) -> torch.Tensor:
    """Independent path: numpy pre-emphasis, torchaudio.functional spectrogram and filterbank."""
    w = torch.from_numpy(preemphasis_np(x, coef) if coef else x)
    spec = torchaudio.functional.spectrogram(
        w, pad=0, window=torch.hamming_window(400, dtype=torch.float64), n_fft=512, hop_length=160,
        win_length=400, power=2.0, normalized=False)
    fb = torchaudio.functional.melscale_fbanks(257, 0.0, 8000.0, n_mels, 16000).double()
    return (spec.transpose(0, 1) @ fb).transpose(0, 1)  # (n_mels, frames)


def test_logmel_instance_norm_matches_independent_computation():
    x = speechlike(32240)
    ours = InstanceNormLogMel(64)(x[None])[0].double().numpy()
    logmel = np.log(reference_power_mel(x.double().numpy(), 64).numpy() + 1e-6)
    ref = (logmel - logmel.mean(1, keepdims=True)) / np.sqrt(logmel.var(1, keepdims=True) + 1e-5)
    assert ours.shape == (64, num_frames(32240)) == (64, 202)
    np.testing.assert_allclose(ours, ref, atol=5e-4)
    np.testing.assert_allclose(ours.mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(ours.std(1), 1, atol=1e-3)


def test_preemphasis_first_sample_is_the_paper_codes():
    """The paper's code convolves [-0.97, 1] over the waveform reflect-padded by one sample, so its
    first output is x0 - 0.97 x1 (not x0): checked against that convolution itself."""
    x = speechlike(1000, seed=2)
    ref = torch.nn.functional.conv1d(torch.nn.functional.pad(x[None, None], (1, 0), mode="reflect"),
                                     torch.tensor([[[-0.97, 1.0]]]))[0, 0]
    ours = preemphasise(x[None], 0.97)[0]
    torch.testing.assert_close(ours, ref)
    assert ours[0].item() == pytest.approx(x[0].item() - 0.97 * x[1].item(), abs=1e-7)


def test_no_preemphasis_and_input_scale_as_the_paper_codes_models():
    """ResNetSE34L: no pre-emphasis, 40 mels. Released V2: int16-scale waveforms, so
    log(32768^2 mel + 1e-6) before the instance norm."""
    x = speechlike(16000, seed=3)
    plain = np.log(reference_power_mel(x.double().numpy(), 40, coef=0.0).numpy() + 1e-6)
    ref = (plain - plain.mean(1, keepdims=True)) / np.sqrt(plain.var(1, keepdims=True) + 1e-5)
    ours = InstanceNormLogMel(40, preemphasis=0.0)(x[None])[0].double().numpy()
    np.testing.assert_allclose(ours, ref, atol=5e-4)
    scaled = np.log(32768.0 ** 2 * reference_power_mel(x.double().numpy(), 64).numpy() + 1e-6)
    ref = (scaled - scaled.mean(1, keepdims=True)) / np.sqrt(scaled.var(1, keepdims=True) + 1e-5)
    ours = InstanceNormLogMel(64, input_scale=32768.0)(x[None])[0].double().numpy()
    np.testing.assert_allclose(ours, ref, atol=5e-4)


def test_kaldi_fbank_is_torchaudios_kaldi_fbank_with_mean_removed():
    """wespeaker's front-end: kaldi.fbank of the int16-scale waveform (80 bins, Hamming, no dither,
    no energy), minus the mean over time; batched here, one waveform at a time there."""
    import torchaudio.compliance.kaldi as kaldi

    waves = torch.stack([speechlike(16000, seed=4), 0.01 * speechlike(16000, seed=5)])
    ours = KaldiFbank(80)(waves)
    assert ours.shape == (2, 80, 1 + (16000 - 400) // 160)
    for i, w in enumerate(waves):
        ref = kaldi.fbank(w[None] * 32768, num_mel_bins=80, frame_length=25, frame_shift=10, dither=0.0,
                          sample_frequency=16000, window_type="hamming", use_energy=False)
        ref = ref - ref.mean(dim=0)
        torch.testing.assert_close(ours[i], ref.T, atol=2e-3, rtol=1e-4)


def test_mfcc_matches_torchaudio_mfcc_with_mean_removed():
    x = speechlike(24000, seed=1)
    ours = MeanNormMFCC(80)(x[None])[0].double().numpy()
    mfcc = torchaudio.transforms.MFCC(
        sample_rate=16000, n_mfcc=80, log_mels=True,
        melkwargs=dict(n_fft=512, win_length=400, hop_length=160, window_fn=torch.hamming_window, n_mels=80))
    ref = mfcc(torch.from_numpy(preemphasis_np(x.numpy()))).double().numpy()
    ref -= ref.mean(1, keepdims=True)
    assert ours.shape == (80, num_frames(24000))
    np.testing.assert_allclose(ours, ref, atol=5e-4)
    # The DCT of a log-mel: c0 is sqrt(1/80) * sum of the log-mels (orthonormal DCT-II).
    logmel = np.log(reference_power_mel(x.double().numpy(), 80).numpy() + 1e-6)
    c0 = logmel.sum(0) / np.sqrt(80)
    np.testing.assert_allclose(ours[0], c0 - c0.mean(), atol=2e-3)


@pytest.mark.parametrize("frontend", [InstanceNormLogMel(64), MeanNormMFCC(80), KaldiFbank(80)],
                         ids=["logmel", "mfcc", "fbank"])
def test_frontends_have_no_parameters_and_are_per_utterance(frontend):
    assert sum(p.numel() for p in frontend.parameters()) == 0
    assert len(list(frontend.buffers())) >= 2  # window, filterbank (and DCT)
    a, b = speechlike(16000, 2), 0.01 * speechlike(16000, 3)
    both = frontend(torch.stack([a, b]))
    torch.testing.assert_close(both[0], frontend(a[None])[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(both[1], frontend(b[None])[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("frontend", [InstanceNormLogMel(64), MeanNormMFCC(80), KaldiFbank(80)],
                         ids=["logmel", "mfcc", "fbank"])
def test_features_unchanged_under_autocast(frontend):
    x = torch.stack([speechlike(16000, 4), speechlike(16000, 5)])
    plain = frontend(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = frontend(x)
    assert auto.dtype == torch.float32
    assert torch.equal(auto, plain)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("frontend", [InstanceNormLogMel(64), MeanNormMFCC(80)], ids=["logmel", "mfcc"])
def test_features_fp32_under_cuda_fp16_autocast(frontend):
    frontend = frontend.cuda()
    x = torch.stack([speechlike(32240, 6), speechlike(32240, 7)]).cuda()
    plain = frontend(x)
    with torch.autocast("cuda", dtype=torch.float16):
        auto = frontend(x)
    assert auto.dtype == torch.float32
    torch.testing.assert_close(auto, plain)
    torch.testing.assert_close(plain.cpu(), frontend.cpu()(x.cpu()), atol=1e-3, rtol=1e-3)


def test_num_frames_for_the_crops():
    assert num_frames(32240) == 202 and num_frames(64240) == 402 and num_frames(199 * 160) == 200


@pytest.mark.parametrize("trunk,loss,m", [("Q_SAP", "ap_softmax", 2), ("H_ASP", "aam_softmax", 1),
                                          ("ECAPA", "am_softmax", 1)])
def test_training_forward_compiles_to_one_graph(trunk, loss, m):
    """No graph breaks from the waveform to the loss, so --compile (and its CUDA graphs) sees the
    whole forward as one graph. (torchaudio's spectrogram used to break it into nine.)"""
    import torch._dynamo as dynamo

    from spkid.train.losses import build_loss
    from spkid.models import build_model
    from spkid.options import LossOptions, ModelOptions
    from spkid.train.trainer import ModelAndLoss

    model = build_model(ModelOptions(trunk=trunk, channels="32" if trunk == "ECAPA" else "4,8,8,8"))
    net = ModelAndLoss(model, build_loss(LossOptions(loss=loss), model.embed_dim, 4, m))
    labels = torch.tensor([0, 0, 1, 1]) if m == 2 else torch.tensor([0, 1, 2, 3])
    explained = dynamo.explain(net)(0.1 * torch.randn(4, 3440), labels)
    assert explained.graph_break_count == 0, [b.reason for b in explained.break_reasons]
    assert explained.graph_count == 1
