"""Checkpoints in the sources' own layouts, and their networks' forward written from the sources'
equations, for the import tests.

Key names and shapes are those of voxceleb_trainer's ``SpeakerNet`` (``__S__.`` network,
``__L__.`` loss; models/ResNetSE34L.py, ResNetSE34V2.py, ResNetBlocks.py, utils.PreEmphasis,
loss/angleproto.py, loss/softmaxproto.py) and of wespeaker's ``ECAPA_TDNN_GLOB_c*`` with its
``projection.`` (ArcMarginProduct) head (wespeaker/models/ecapa_tdnn.py, pooling_layers.py). The
values are random. The reference forwards below read those keys directly with functional ops: they
share nothing with spkid's modules, so an import that maps a key to the wrong place, or a
front-end that differs from the source's, shows up as a different embedding.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio

BLOCKS = (3, 4, 6, 3)


def _rand(g: torch.Generator, *shape: int, scale: float | None = None) -> torch.Tensor:
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    return torch.randn(*shape, generator=g) * (scale if scale is not None else fan_in ** -0.5)


def _bn(g, prefix: str, n: int) -> dict:
    return {prefix + "weight": 1 + 0.1 * torch.randn(n, generator=g), prefix + "bias": 0.1 * torch.randn(n, generator=g),
            prefix + "running_mean": 0.1 * torch.randn(n, generator=g),
            prefix + "running_var": 0.5 + torch.rand(n, generator=g), prefix + "num_batches_tracked": torch.tensor(1000)}


def vt_resnet(net: str, widths=(16, 32, 64, 128), n_mels: int = 40, n_out: int = 512, seed: int = 0,
              empty_fb: bool = False) -> dict[str, torch.Tensor]:
    """``__S__`` state of ResNetSE34L (net="L": 7x7 stem without bias, SAP) or ResNetSE34V2
    ("V2": 3x3 stem with bias, PreEmphasis, channel-wise attention, ASP)."""
    g = torch.Generator().manual_seed(seed)
    s: dict[str, torch.Tensor] = {}
    k = 7 if net == "L" else 3
    s["conv1.weight"] = _rand(g, widths[0], 1, k, k, scale=0.5)
    if net == "V2":
        s["conv1.bias"] = 0.1 * torch.randn(widths[0], generator=g)
    s.update(_bn(g, "bn1.", widths[0]))
    inp = widths[0]
    strides = (1, 2, 2, 1) if net == "L" else (1, 2, 2, 2)
    for layer, (w, n, stride) in enumerate(zip(widths, BLOCKS, strides), 1):
        for i in range(n):
            p = f"layer{layer}.{i}."
            cin = inp if i == 0 else w
            s[p + "conv1.weight"] = _rand(g, w, cin, 3, 3)
            s.update(_bn(g, p + "bn1.", w))
            s[p + "conv2.weight"] = _rand(g, w, w, 3, 3)
            s.update(_bn(g, p + "bn2.", w))
            s[p + "se.fc.0.weight"], s[p + "se.fc.0.bias"] = _rand(g, w // 8, w), 0.1 * torch.randn(w // 8, generator=g)
            s[p + "se.fc.2.weight"], s[p + "se.fc.2.bias"] = _rand(g, w, w // 8), 0.1 * torch.randn(w, generator=g)
            if i == 0 and (stride != 1 or cin != w):
                s[p + "downsample.0.weight"] = _rand(g, w, cin, 1, 1)
                s.update(_bn(g, p + "downsample.1.", w))
        inp = w
    fb = torchaudio.functional.melscale_fbanks(257, 0.0, 8000.0, n_mels, 16000)
    window = torch.hamming_window(400)
    c = widths[3]
    if net == "L":
        s["torchfb.spectrogram.window"], s["torchfb.mel_scale.fb"] = window, torch.empty(0) if empty_fb else fb
        s["sap_linear.weight"], s["sap_linear.bias"] = _rand(g, c, c), 0.1 * torch.randn(c, generator=g)
        s["attention"] = _rand(g, c, 1, scale=(2 / (c + 1)) ** 0.5)
        s["fc.weight"], s["fc.bias"] = _rand(g, n_out, c), 0.1 * torch.randn(n_out, generator=g)
    else:
        s["torchfb.0.flipped_filter"] = torch.tensor([[[-0.97, 1.0]]])
        s["torchfb.1.spectrogram.window"], s["torchfb.1.mel_scale.fb"] = window, fb
        ch = c * n_mels // 8
        s["attention.0.weight"], s["attention.0.bias"] = _rand(g, 128, ch, 1), 0.1 * torch.randn(128, generator=g)
        s.update(_bn(g, "attention.2.", 128))
        s["attention.3.weight"], s["attention.3.bias"] = _rand(g, ch, 128, 1), 0.1 * torch.randn(ch, generator=g)
        s["fc.weight"], s["fc.bias"] = _rand(g, n_out, 2 * ch), 0.1 * torch.randn(n_out, generator=g)
    return s


def vt_head(loss: str, n_out: int = 512, classes: int = 5994, seed: int = 1) -> dict[str, torch.Tensor]:
    """``__L__`` state: angleproto (w, b), softmaxproto (softmax.fc, angleproto.w/b), amsoftmax
    (``W``: nOut x nClasses) or aamsoftmax (``weight``: nClasses x nOut)."""
    g = torch.Generator().manual_seed(seed)
    ap = {"w": torch.tensor(12.5), "b": torch.tensor(-6.25)}
    if loss == "angleproto":
        return ap
    if loss == "amsoftmax":
        return {"W": _rand(g, n_out, classes)}
    if loss == "aamsoftmax":
        return {"weight": _rand(g, classes, n_out)}
    return {"softmax.fc.weight": _rand(g, classes, n_out), "softmax.fc.bias": 0.01 * torch.randn(classes, generator=g),
            **{"angleproto." + k: v for k, v in ap.items()}}


def vt_checkpoint(network: dict, head: dict, layout: str = "new") -> dict:
    """As voxceleb_trainer's ``saveParameters`` writes it since April 2026 ("new": the model's
    state dict under ``model_state_dict``, with optimizer and scheduler state and the epoch) or as
    it did before ("bare": the SpeakerNet's state dict)."""
    state = {**{"__S__." + k: v for k, v in network.items()}, **{"__L__." + k: v for k, v in head.items()}}
    if layout == "bare":
        return state
    return {"model_state_dict": state, "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 0.001, "params": [0, 1]}]},
            "scheduler_state_dict": {"step_size": 10, "gamma": 0.95, "last_epoch": 3}, "epoch": 3}


def ws_ecapa(channels: int = 64, feat_dim: int = 80, embed_dim: int = 192, classes: int = 300,
             seed: int = 0, mfa: int = 1536) -> dict[str, torch.Tensor]:
    """wespeaker ``ECAPA_TDNN_GLOB_c<channels>``'s state dict with its ``projection.`` head (its
    multi-layer aggregation: Conv1d 3C -> 512 * 3, whatever C)."""
    g = torch.Generator().manual_seed(seed)
    c, cat = channels, mfa
    s = {"layer1.conv.weight": _rand(g, c, feat_dim, 5, scale=0.05), "layer1.conv.bias": 0.1 * torch.randn(c, generator=g)}
    s.update(_bn(g, "layer1.bn.", c))
    width = c // 8
    for k in (2, 3, 4):
        p = f"layer{k}.se_res2block."
        for j in (0, 2):
            s[f"{p}{j}.conv.weight"], s[f"{p}{j}.conv.bias"] = _rand(g, c, c, 1), 0.1 * torch.randn(c, generator=g)
            s.update(_bn(g, f"{p}{j}.bn.", c))
        for i in range(7):
            s[f"{p}1.convs.{i}.weight"] = _rand(g, width, width, 3)
            s[f"{p}1.convs.{i}.bias"] = 0.1 * torch.randn(width, generator=g)
            s.update(_bn(g, f"{p}1.bns.{i}.", width))
        s[p + "3.linear1.weight"], s[p + "3.linear1.bias"] = _rand(g, 128, c), 0.1 * torch.randn(128, generator=g)
        s[p + "3.linear2.weight"], s[p + "3.linear2.bias"] = _rand(g, c, 128), 0.1 * torch.randn(c, generator=g)
    s["conv.weight"], s["conv.bias"] = _rand(g, cat, 3 * c, 1), 0.1 * torch.randn(cat, generator=g)
    s["pool.linear1.weight"], s["pool.linear1.bias"] = _rand(g, 128, 3 * cat, 1), 0.1 * torch.randn(128, generator=g)
    s["pool.linear2.weight"], s["pool.linear2.bias"] = _rand(g, cat, 128, 1), 0.1 * torch.randn(cat, generator=g)
    s.update(_bn(g, "bn.", 2 * cat))
    s["linear.weight"], s["linear.bias"] = _rand(g, embed_dim, 2 * cat), 0.1 * torch.randn(embed_dim, generator=g)
    s["projection.weight"] = _rand(g, classes, embed_dim)
    return s


# ---------------------------------------------------------------- the sources' forward passes

def _bnf(x, s, p):
    return F.batch_norm(x, s[p + "running_mean"], s[p + "running_var"], s[p + "weight"], s[p + "bias"], False, 0.0, 1e-5)


def vt_forward(net: str, s: dict, wave: torch.Tensor, input_scale: float = 32768.0) -> torch.Tensor:
    """voxceleb_trainer's ResNetSE34L / ResNetSE34V2 forward, eval mode, on waveforms (B, N)."""
    x = wave.double() * input_scale
    if "torchfb.0.flipped_filter" in s:  # PreEmphasis: reflect pad left, conv with [-coef, 1]
        x = F.conv1d(F.pad(x[:, None], (1, 0), mode="reflect"), s["torchfb.0.flipped_filter"].double())[:, 0]
    pre = "torchfb.1." if net == "V2" else "torchfb."
    fb = s[pre + "mel_scale.fb"].double()
    if fb.numel() == 0:
        fb = torchaudio.functional.melscale_fbanks(257, 0.0, 8000.0, 40, 16000).double()
    spec = torchaudio.functional.spectrogram(x, 0, s[pre + "spectrogram.window"].double(), 512, 160, 400, 2.0, False)
    mel = torch.matmul(spec.transpose(1, 2), fb).transpose(1, 2) + 1e-6
    feat = F.instance_norm(mel.log(), eps=1e-5).float()[:, None]  # (B, 1, n_mels, T)
    s = {k: v.float() if v.is_floating_point() else v for k, v in s.items()}
    if net == "L":
        x = F.relu(_bnf(F.conv2d(feat, s["conv1.weight"], stride=(2, 1), padding=3), s, "bn1."))
    else:
        x = _bnf(F.relu(F.conv2d(feat, s["conv1.weight"], s["conv1.bias"], padding=1)), s, "bn1.")
    strides = (1, 2, 2, 1) if net == "L" else (1, 2, 2, 2)
    for layer, (n, stride) in enumerate(zip(BLOCKS, strides), 1):
        for i in range(n):
            p = f"layer{layer}.{i}."
            out = _bnf(F.relu(F.conv2d(x, s[p + "conv1.weight"], stride=stride if i == 0 else 1, padding=1)), s, p + "bn1.")
            out = _bnf(F.conv2d(out, s[p + "conv2.weight"], padding=1), s, p + "bn2.")
            y = out.mean(dim=(2, 3))
            y = torch.sigmoid(F.linear(F.relu(F.linear(y, s[p + "se.fc.0.weight"], s[p + "se.fc.0.bias"])),
                                       s[p + "se.fc.2.weight"], s[p + "se.fc.2.bias"]))
            out = out * y[:, :, None, None]
            res = x
            if p + "downsample.0.weight" in s:
                res = _bnf(F.conv2d(x, s[p + "downsample.0.weight"], stride=stride if i == 0 else 1), s, p + "downsample.1.")
            x = F.relu(out + res)
    if net == "L":
        x = x.mean(dim=2).permute(0, 2, 1)  # (B, T, C)
        h = torch.tanh(F.linear(x, s["sap_linear.weight"], s["sap_linear.bias"]))
        w = F.softmax(torch.matmul(h, s["attention"]).squeeze(2), dim=1)[:, :, None]
        pooled = torch.sum(x * w, dim=1)
    else:
        x = x.reshape(x.shape[0], -1, x.shape[-1])
        a = F.relu(F.conv1d(x, s["attention.0.weight"], s["attention.0.bias"]))
        a = _bnf(a, s, "attention.2.")
        w = F.softmax(F.conv1d(a, s["attention.3.weight"], s["attention.3.bias"]), dim=2)
        mu = torch.sum(x * w, dim=2)
        sg = torch.sqrt((torch.sum(x ** 2 * w, dim=2) - mu ** 2).clamp(min=1e-5))
        pooled = torch.cat([mu, sg], 1)
    return F.linear(pooled, s["fc.weight"], s["fc.bias"])


def ws_fbank(wave: torch.Tensor) -> torch.Tensor:
    """wespeaker's features of one waveform (N,): Kaldi fbank of the int16-scale samples, mean
    normalised; (T, 80)."""
    import torchaudio.compliance.kaldi as kaldi
    mat = kaldi.fbank(wave[None] * (1 << 15), num_mel_bins=80, frame_length=25, frame_shift=10, dither=0.0,
                      sample_frequency=16000, window_type="hamming", use_energy=False)
    return mat - mat.mean(dim=0)


def ws_forward(s: dict, wave: torch.Tensor) -> torch.Tensor:
    """wespeaker's ECAPA_TDNN_GLOB forward (eval mode) on one waveform (N,): (1, embed_dim)."""
    x = ws_fbank(wave).T[None]  # (1, F, T)

    def crb(x, p, **kw):
        return _bnf(F.relu(F.conv1d(x, s[p + "conv.weight"], s[p + "conv.bias"], **kw)), s, p + "bn.")

    out1 = crb(x, "layer1.", padding=2)
    outs, h = [], out1
    for k, d in ((2, 2), (3, 3), (4, 4)):
        p = f"layer{k}.se_res2block."
        y = crb(h, p + "0.")
        spx = torch.split(y, y.shape[1] // 8, 1)
        parts, sp = [], spx[0]
        for i in range(7):
            if i >= 1:
                sp = sp + spx[i]
            sp = F.conv1d(sp, s[f"{p}1.convs.{i}.weight"], s[f"{p}1.convs.{i}.bias"], padding=d, dilation=d)
            sp = _bnf(F.relu(sp), s, f"{p}1.bns.{i}.")
            parts.append(sp)
        y = crb(torch.cat(parts + [spx[7]], 1), p + "2.")
        z = torch.sigmoid(F.linear(F.relu(F.linear(y.mean(dim=2), s[p + "3.linear1.weight"], s[p + "3.linear1.bias"])),
                                   s[p + "3.linear2.weight"], s[p + "3.linear2.bias"]))
        h = h + y * z[:, :, None]
        outs.append(h)
    x = F.relu(F.conv1d(torch.cat(outs, 1), s["conv.weight"], s["conv.bias"]))
    ctx = torch.cat([x, x.mean(-1, keepdim=True).expand_as(x), torch.sqrt(torch.var(x, dim=-1, keepdim=True) + 1e-10).expand_as(x)], 1)
    alpha = torch.softmax(F.conv1d(torch.tanh(F.conv1d(ctx, s["pool.linear1.weight"], s["pool.linear1.bias"])),
                                   s["pool.linear2.weight"], s["pool.linear2.bias"]), dim=2)
    mean = torch.sum(alpha * x, dim=2)
    std = torch.sqrt((torch.sum(alpha * x ** 2, dim=2) - mean ** 2).clamp(min=1e-10))
    return F.linear(_bnf(torch.cat([mean, std], 1), s, "bn."), s["linear.weight"], s["linear.bias"])


def vt_eval_crops(wave: np.ndarray, frames: int = 400, num: int = 10) -> np.ndarray:
    """voxceleb_trainer's evaluation crops of an utterance longer than one crop: ``num`` windows of
    frames*160+240 samples at int(linspace(0, len - crop, num))."""
    crop = frames * 160 + 240
    return np.stack([wave[int(a):int(a) + crop] for a in np.linspace(0, len(wave) - crop, num=num)])


def vt_am_logits(emb: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """voxceleb_trainer amsoftmax's cosines: rows of ``emb`` and columns of ``W`` (nOut, nClasses)
    each divided by its L2 norm, then multiplied."""
    return torch.mm(emb / emb.norm(dim=1, keepdim=True), w / w.norm(dim=0, keepdim=True))


def vt_load_wav(path, frames: int = 400, num_eval: int = 10) -> np.ndarray:
    """voxceleb_trainer's loadWAV in evaluation mode: soundfile's float64 samples; an utterance no
    longer than a crop wrap-padded to crop + 1 samples; ``num_eval`` crops at int(linspace(0,
    len - crop, num_eval))."""
    import soundfile
    audio, _ = soundfile.read(str(path))
    crop = frames * 160 + 240
    if len(audio) <= crop:
        audio = np.pad(audio, (0, crop - len(audio) + 1), "wrap")
    return np.stack([audio[int(a):int(a) + crop] for a in np.linspace(0, len(audio) - crop, num=num_eval)])


def vt_evaluate_from_list(net: str, s: dict, list_path, wav_dir, frames: int = 400, num_eval: int = 10,
                          input_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """voxceleb_trainer's evaluateFromList on a ``1|0 a.wav b.wav`` list: each file's crops
    embedded, each crop L2-normalised (its losses' test_normalize), score = -mean of the
    num_eval x num_eval Euclidean distances. (scores, labels) in list order."""
    lines = [line.split() for line in open(list_path)]
    files = sorted({f for line in lines for f in line[1:]})
    feats = {}
    with torch.no_grad():
        for f in files:
            crops = torch.from_numpy(vt_load_wav(f"{wav_dir}/{f}", frames, num_eval))
            feats[f] = F.normalize(vt_forward(net, s, crops, input_scale).double(), p=2, dim=1)
    scores = np.array([-torch.cdist(feats[a], feats[b]).mean().item() for _, a, b in lines])
    return scores, np.array([int(line[0]) for line in lines])


def vt_eer(scores: np.ndarray, labels: np.ndarray) -> float:
    """voxceleb_trainer's tuneThresholdfromScore EER (%): sklearn's ROC, the point where |FNR - FPR|
    is least, max(FPR, FNR) there."""
    from sklearn.metrics import roc_curve
    fpr, tpr, _ = roc_curve(labels, scores, pos_label=1)
    fnr = 1 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return 100 * max(fpr[i], fnr[i])
