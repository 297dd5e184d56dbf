"""Speaker-embedding models, found by trunk name: ``build_model(ModelOptions)``.

A model is front-end (no parameters) -> trunk (ending in the embedding Linear) -> optional
BatchNorm1d on the embedding ("BN" in paper Table 2). It takes a waveform batch ``(B, samples)``
float32 in [-1, 1] at 16 kHz and returns ``(B, embed_dim)``.

    Q_SAP  64 log-mel, instance norm  -> ResNet-34 quarter width, SAP       -> 512
    H_ASP  64 log-mel, instance norm  -> ResNet-34 half width, ASP (Table 1) -> 512
    ECAPA  80 MFCC, mean norm         -> ECAPA-TDNN C=1024, context ASP      -> 192

The front-ends are in ``features``; ``--frontend``, ``--preemphasis`` and ``--input-scale`` choose
another (e.g. an imported wespeaker model's Kaldi fbank, see ``imports``). Imports only the foundations (``spkid.errors``,
``spkid.options``): never data, training or evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from spkid.errors import SpkidError
from spkid.models.features import InstanceNormLogMel, KaldiFbank, MeanNormMFCC
from spkid.models.ecapa import ECAPATDNN
from spkid.models.pooling import STD_FLOOR
from spkid.models.resnet import ResNetHASP, ResNetQSAP
from spkid.options import ModelOptions


@dataclass(frozen=True)
class TrunkSpec:
    """A trunk's paper defaults and how to build its two halves."""
    channels: tuple[int, ...]
    n_mels: int
    embed_dim: int
    frontend: type
    trunk: type


TRUNKS: dict[str, TrunkSpec] = {
    "Q_SAP": TrunkSpec((16, 32, 64, 128), 64, 512, InstanceNormLogMel, ResNetQSAP),
    "H_ASP": TrunkSpec((32, 64, 128, 256), 64, 512, InstanceNormLogMel, ResNetHASP),
    "ECAPA": TrunkSpec((1024,), 80, 192, MeanNormMFCC, ECAPATDNN),
}


class SpeakerEmbedder(nn.Module):
    """Waveform ``(B, samples)`` -> front-end (fp32) -> trunk -> [embedding BN] -> ``(B, D)``."""

    def __init__(self, frontend: nn.Module, trunk: nn.Module, embed_bn: bool):
        super().__init__()
        self.frontend = frontend
        self.trunk = trunk
        self.embed_dim: int = trunk.embed_dim
        self.embed_bn: nn.Module = nn.BatchNorm1d(self.embed_dim) if embed_bn else nn.Identity()

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.embed_bn(self.trunk(self.frontend(wave)))


FRONTENDS: dict[str, type] = {"logmel": InstanceNormLogMel, "mfcc": MeanNormMFCC, "fbank": KaldiFbank}


def parse_channels(text: str, trunk: str) -> tuple[int, ...]:
    """``"32,64,128,256"`` -> ``(32, 64, 128, 256)``; ``""`` -> the trunk's paper widths."""
    if not text.strip():
        return TRUNKS[trunk].channels
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise SpkidError(f"{trunk}: --channels takes comma-separated integers, not '{text}'") from None


def build_model(opts: ModelOptions) -> SpeakerEmbedder:
    """The embedding network of ``opts`` (without the loss head), on the CPU, in float32."""
    if opts.trunk not in TRUNKS:
        raise SpkidError(f"unknown --trunk={opts.trunk}; choose one of {', '.join(TRUNKS)}")
    spec = TRUNKS[opts.trunk]
    n_mels = opts.n_mels or spec.n_mels
    embed_dim = opts.embed_dim or spec.embed_dim
    if n_mels < 8 or embed_dim < 1:
        raise SpkidError(f"{opts.trunk}: --n-mels must be at least 8 and --embed-dim positive "
                         f"(0 = the paper's), got {opts.n_mels} and {opts.embed_dim}")
    frontend_cls = spec.frontend if opts.frontend == "paper" else FRONTENDS[opts.frontend]
    frontend = frontend_cls(n_mels, preemphasis=opts.preemphasis, input_scale=opts.input_scale)
    pooling = {"std_floor": opts.pool_std_floor}
    if opts.trunk == "ECAPA":
        pooling["context_std"] = opts.context_std
    elif opts.context_std != "biased":
        raise SpkidError(f"{opts.trunk}: --context-std applies to ECAPA only; remove it")
    if opts.trunk == "Q_SAP" and opts.pool_std_floor != STD_FLOOR:
        raise SpkidError("Q_SAP: self-attentive pooling takes no standard deviation; remove --pool-std-floor")
    trunk = spec.trunk(n_mels, parse_channels(opts.channels, opts.trunk), embed_dim, **({} if opts.trunk == "Q_SAP" else pooling))
    return SpeakerEmbedder(frontend, trunk, opts.embed_bn)


def trunk_parameters(model: nn.Module) -> int:
    """Parameters of the embedding network, without the loss head and the embedding BN
    (as paper section 2.1 counts them; docs/stages.md, Trunks, lists each)."""
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith("embed_bn."))


def non_finite_tensors(state: dict) -> list[str]:
    """Names of the floating-point tensors of a state dict holding a NaN or an infinity (a
    diverged training's weights: every embedding they make is NaN)."""
    return [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
