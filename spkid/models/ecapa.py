"""ECAPA-TDNN trunk (paper section 2.1; Desplanques et al., Interspeech 2020, Fig. 2).

Conv1d k5 (n_mfcc -> C), ReLU, BN; three SE-Res2Net blocks (kernel 3, dilations 2, 3, 4,
scale 8, SE bottleneck 128), each wrapped in a residual connection; multi-layer feature
aggregation: the three block outputs concatenated -> Conv1d k1 to 1536, ReLU; attentive
statistics pooling with global context (bottleneck 128) -> 3072; BN(3072); Linear 3072 -> 192.
C=1024 is the paper's model (14.7 M parameters); C=512 the smaller variant.

Input is the front-end output ``(B, n_mfcc, T)``; output the embedding ``(B, D)``.
"""

from __future__ import annotations

import torch
from torch import nn

from spkid.errors import SpkidError
from spkid.models.pooling import STD_FLOOR, ContextAttentiveStatsPooling
from spkid.registry import TRUNKS, Trunk

DILATIONS = (2, 3, 4)
SCALE = 8
SE_BOTTLENECK = 128
ATTENTION_BOTTLENECK = 128
MFA_CHANNELS = 1536


class ConvReluBN(nn.Sequential):
    """Conv1d (with bias), ReLU, BatchNorm1d: ECAPA-TDNN's basic unit."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 1, dilation: int = 1):
        super().__init__(
            nn.Conv1d(in_ch, out_ch, kernel_size, dilation=dilation, padding=dilation * (kernel_size // 2)),
            nn.ReLU(inplace=True),
            nn.BatchNorm1d(out_ch),
        )


class SqueezeExcitation1d(nn.Module):
    """SE over time: mean, Conv1d C->128, ReLU, Conv1d 128->C, sigmoid gate per channel."""

    def __init__(self, channels: int, bottleneck: int = SE_BOTTLENECK):
        super().__init__()
        self.fc = nn.Sequential(nn.Conv1d(channels, bottleneck, 1), nn.ReLU(inplace=True),
                                nn.Conv1d(bottleneck, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=-1, keepdim=True))


class Res2Conv(nn.Module):
    """Res2Net's hierarchical convolution: split into ``scale`` groups; group i>0 is convolved
    after adding the previous group's output; the last group passes through unchanged."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int = SCALE):
        super().__init__()
        self.width = channels // scale
        self.convs = nn.ModuleList(
            [ConvReluBN(self.width, self.width, kernel_size, dilation) for _ in range(scale - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.width, dim=1)
        out = []
        y = parts[0]
        for i, conv in enumerate(self.convs):
            y = conv(parts[i] if i == 0 else y + parts[i])
            out.append(y)
        out.append(parts[-1])
        return torch.cat(out, dim=1)


class SERes2Block(nn.Module):
    """1x1 ConvReluBN, Res2 dilated conv, 1x1 ConvReluBN, SE, + residual."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int = SCALE):
        super().__init__()
        self.conv1 = ConvReluBN(channels, channels)
        self.res2 = Res2Conv(channels, kernel_size, dilation, scale)
        self.conv3 = ConvReluBN(channels, channels)
        self.se = SqueezeExcitation1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.se(self.conv3(self.res2(self.conv1(x))))


class ECAPATDNN(nn.Module):
    """ECAPA-TDNN with width C (``channels[0]``) and MFA width ``channels[1]`` (default 1536)."""

    def __init__(self, n_mfcc: int = 80, channels: tuple[int, ...] = (1024,), embed_dim: int = 192,
                 pool_std_floor: float = STD_FLOOR, context_std: str = "biased"):
        super().__init__()
        if len(channels) not in (1, 2) or min(channels) < 1 or channels[0] % SCALE:
            raise SpkidError(f"ECAPA: --channels takes C (a multiple of {SCALE}) or C,MFA "
                             f"(e.g. 1024 or 256,768), got {','.join(map(str, channels))}")
        c = channels[0]
        mfa = channels[1] if len(channels) == 2 else MFA_CHANNELS
        self.conv1 = ConvReluBN(n_mfcc, c, kernel_size=5)
        self.layer1 = SERes2Block(c, 3, DILATIONS[0])
        self.layer2 = SERes2Block(c, 3, DILATIONS[1])
        self.layer3 = SERes2Block(c, 3, DILATIONS[2])
        self.mfa = nn.Sequential(nn.Conv1d(3 * c, mfa, 1), nn.ReLU(inplace=True))
        self.pool = ContextAttentiveStatsPooling(mfa, ATTENTION_BOTTLENECK, pool_std_floor, context_std)
        self.pool_bn = nn.BatchNorm1d(self.pool.out_dim)
        self.fc = nn.Linear(self.pool.out_dim, embed_dim)
        self.embed_dim = embed_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x1 = self.layer1(x)
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        x = self.mfa(torch.cat([x1, x2, x3], dim=1))
        return self.fc(self.pool_bn(self.pool(x)))


TRUNKS.register(Trunk("ECAPA", ECAPATDNN, "ECAPA-TDNN (context-dependent attentive statistics pooling)",
                      channels=(1024,), n_mels=80, embed_dim=192, frontend="mfcc",
                      pooling=("pool_std_floor", "context_std")))
