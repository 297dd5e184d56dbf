"""Speaker-embedding models, found by trunk name in :data:`spkid.registry.TRUNKS`: ``build_model(ModelOptions)``.

A model is front-end (no parameters) -> trunk (ending in the embedding Linear) -> optional
BatchNorm1d on the embedding ("BN" in paper Table 2). It takes a waveform batch ``(B, samples)``
float32 in [-1, 1] at 16 kHz and returns ``(B, embed_dim)``.

The paper's trunks, registered by ``resnet`` and ``ecapa`` (the trunk modules imported below):

    Q_SAP  64 log-mel, instance norm  -> ResNet-34 quarter width, SAP       -> 512
    H_ASP  64 log-mel, instance norm  -> ResNet-34 half width, ASP (Table 1) -> 512
    ECAPA  80 MFCC, mean norm         -> ECAPA-TDNN C=1024, context ASP      -> 192

The front-ends are in ``features`` (registered in :data:`spkid.registry.FRONTENDS`); ``--frontend``, ``--preemphasis`` and ``--input-scale`` choose
another (e.g. an imported wespeaker model's Kaldi fbank, see ``imports``). Imports only the foundations (``spkid.errors``,
``spkid.options``): never data, training or evaluation.
"""

from __future__ import annotations

import torch
from torch import nn

from spkid.config import option_name
from spkid.errors import SpkidError
from spkid.models import resnet, ecapa  # noqa: F401  (the trunk modules, in the paper's order: each registers its trunks)
from spkid.options import ModelOptions
from spkid.registry import FRONTENDS, TRUNKS, Trunk


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


# the ModelOptions fields that configure a trunk's pooling; a trunk's entry names those it takes
POOLING_OPTIONS = ("pool_std_floor", "context_std")


def parse_channels(text: str, trunk: Trunk) -> tuple[int, ...]:
    """``"32,64,128,256"`` -> ``(32, 64, 128, 256)``; ``""`` -> the trunk's paper widths."""
    if not text.strip():
        return trunk.channels
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise SpkidError(f"{trunk.name}: --channels takes comma-separated integers, not '{text}'") from None


def pooling_options(opts: ModelOptions, trunk: Trunk) -> dict[str, object]:
    """The pooling options ``trunk`` takes, by name; one it does not take must keep its
    default, since it would change nothing."""
    defaults = ModelOptions()
    for name in POOLING_OPTIONS:
        if name not in trunk.pooling and getattr(opts, name) != getattr(defaults, name):
            takes = ", ".join(option_name(n) for n in trunk.pooling) or "none"
            raise SpkidError(f"{trunk.name}: {option_name(name)} does not apply to its pooling "
                             f"(it takes: {takes}); remove it")
    return {name: getattr(opts, name) for name in trunk.pooling}


def build_model(opts: ModelOptions) -> SpeakerEmbedder:
    """The embedding network of ``opts`` (without the loss head), on the CPU, in float32."""
    trunk = TRUNKS[opts.trunk]
    n_mels = opts.n_mels or trunk.n_mels
    embed_dim = opts.embed_dim or trunk.embed_dim
    if n_mels < 8 or embed_dim < 1:
        raise SpkidError(f"{opts.trunk}: --n-mels must be at least 8 and --embed-dim positive "
                         f"(0 = the paper's), got {opts.n_mels} and {opts.embed_dim}")
    frontend = FRONTENDS[trunk.frontend if opts.frontend == "paper" else opts.frontend].build(
        n_mels, preemphasis=opts.preemphasis, input_scale=opts.input_scale)
    network = trunk.build(n_mels, parse_channels(opts.channels, trunk), embed_dim, **pooling_options(opts, trunk))
    return SpeakerEmbedder(frontend, network, opts.embed_bn)


def trunk_parameters(model: nn.Module) -> int:
    """Parameters of the embedding network, without the loss head and the embedding BN
    (as paper section 2.1 counts them; docs/stages.md, Trunks, lists each)."""
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith("embed_bn."))


def non_finite_tensors(state: dict) -> list[str]:
    """Names of the floating-point tensors of a state dict holding a NaN or an infinity (a
    diverged training's weights: every embedding they make is NaN)."""
    return [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
