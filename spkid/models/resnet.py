"""The two ResNet-34 trunks of paper section 2.1: Q/SAP (speed) and H/ASP (performance, Table 1).

Both stack SE basic blocks (3, 4, 6, 3 of them) over a log-mel "image" ``(B, 1, n_mels, T)``
(frequency first, as in Table 1, whose shapes read time x frequency x channels).

* Q/SAP: quarter width 16/32/64/128; stem conv 7x7 stride (2, 1) without bias, BN, ReLU;
  stage strides 1, 2, 2, 1; mean over frequency; self-attentive pooling; Linear 128 -> 512.
* H/ASP: half width 32/64/128/256; stem conv 3x3 stride 1 with bias, ReLU, BN; stage strides
  1, 2, 2, 2; ``L/8 x 8 x 256`` flattened to 2048 per frame; attentive statistics pooling
  (-> 4096); Linear 4096 -> 512.

Input to a trunk is the front-end output ``(B, n_mels, T)``; output the embedding ``(B, D)``.
Both initialise as the paper's code: every Conv2d Kaiming-normal (``fan_out``, ReLU gain),
every BatchNorm2d weight 1 and bias 0; the rest keeps PyTorch's defaults.
"""

from __future__ import annotations

import torch
from torch import nn

from spkid.errors import SpkidError
from spkid.models.pooling import STD_FLOOR, AttentiveStatsPooling, SelfAttentivePooling
from spkid.registry import TRUNKS, Trunk

BLOCKS = (3, 4, 6, 3)
SE_REDUCTION = 8


class SqueezeExcitation2d(nn.Module):
    """Channel gates from the global average: Linear C->C/r, ReLU, Linear C/r->C, sigmoid."""

    def __init__(self, channels: int, reduction: int = SE_REDUCTION):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True),
                                nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc(x.mean(dim=(2, 3)))
        return x * gate[:, :, None, None]


class SEBasicBlock(nn.Module):
    """conv3x3, ReLU, BN, conv3x3, BN, SE, + shortcut (1x1 conv + BN when the shape changes), ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int | tuple[int, int] = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.se = SqueezeExcitation2d(out_ch)
        if stride != 1 or in_ch != out_ch:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(self.relu(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        return self.relu(out + self.shortcut(x))


def make_stages(channels: tuple[int, ...], strides: tuple[int, ...]) -> list[nn.Sequential]:
    """The four stages of SE basic blocks (3, 4, 6, 3); the first block of a stage changes
    the width and applies the stride."""
    stages = []
    in_ch = channels[0]
    for out_ch, blocks, stride in zip(channels, BLOCKS, strides):
        layers = [SEBasicBlock(in_ch, out_ch, stride)]
        layers += [SEBasicBlock(out_ch, out_ch) for _ in range(blocks - 1)]
        stages.append(nn.Sequential(*layers))
        in_ch = out_ch
    return stages


class AddChannel(nn.Module):
    """``(B, F, T) -> (B, 1, F, T)``: the log-mel spectrogram as a one-channel image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1)


class MeanFrequency(nn.Module):
    """Q/SAP: ``(B, C, F, T) -> (B, C, T)`` by averaging over frequency."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=2)


class FlattenFrequency(nn.Module):
    """H/ASP (Table 1 'Flatten'): ``(B, C, F, T) -> (B, C*F, T)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1] * x.shape[2], x.shape[3])


def init_as_paper_code(module: nn.Module) -> None:
    """The paper's code's ResNet initialisation (its ``ResNetSE.__init__``)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1.0)
            nn.init.constant_(m.bias, 0.0)


def _check_channels(channels: tuple[int, ...], name: str) -> None:
    if len(channels) != 4 or min(channels) < 1:
        raise SpkidError(f"{name}: --channels takes four positive widths, one per stage "
                         f"(e.g. 32,64,128,256), got {','.join(map(str, channels))}")


class ResNetQSAP(nn.Module):
    """Q/SAP trunk (speed-optimised ResNet-34, quarter width). Paper section 2.1."""

    def __init__(self, n_mels: int = 64, channels: tuple[int, ...] = (16, 32, 64, 128), embed_dim: int = 512):
        super().__init__()
        _check_channels(channels, "Q_SAP")
        c = channels
        self.image = AddChannel()
        self.conv1 = nn.Conv2d(1, c[0], 7, stride=(2, 1), padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1, self.layer2, self.layer3, self.layer4 = make_stages(c, (1, 2, 2, 1))
        self.collapse = MeanFrequency()
        self.pool = SelfAttentivePooling(c[3])
        self.fc = nn.Linear(self.pool.out_dim, embed_dim)
        self.embed_dim = embed_dim
        init_as_paper_code(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(self.image(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.pool(self.collapse(x)))


class ResNetHASP(nn.Module):
    """H/ASP trunk (performance-optimised ResNet-34, half width). Paper section 2.1, Table 1."""

    def __init__(self, n_mels: int = 64, channels: tuple[int, ...] = (32, 64, 128, 256), embed_dim: int = 512,
                 pool_std_floor: float = STD_FLOOR):
        super().__init__()
        _check_channels(channels, "H_ASP")
        if n_mels % 8:
            raise SpkidError(f"H_ASP: --n-mels must be a multiple of 8 (three stride-2 stages), got {n_mels}")
        c = channels
        self.image = AddChannel()
        self.conv1 = nn.Conv2d(1, c[0], 3, stride=1, padding=1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.bn1 = nn.BatchNorm2d(c[0])
        self.layer1, self.layer2, self.layer3, self.layer4 = make_stages(c, (1, 2, 2, 2))
        self.flatten = FlattenFrequency()
        self.pool = AttentiveStatsPooling(c[3] * (n_mels // 8), std_floor=pool_std_floor)
        self.fc = nn.Linear(self.pool.out_dim, embed_dim)
        self.embed_dim = embed_dim
        init_as_paper_code(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.relu(self.conv1(self.image(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.pool(self.flatten(x)))


TRUNKS.register(Trunk("Q_SAP", ResNetQSAP, "speed-optimised ResNet-34 (quarter width, self-attentive pooling)",
                      channels=(16, 32, 64, 128), n_mels=64, embed_dim=512, frontend="logmel"))
TRUNKS.register(Trunk("H_ASP", ResNetHASP, "performance-optimised ResNet-34 (half width, attentive statistics pooling)",
                      channels=(32, 64, 128, 256), n_mels=64, embed_dim=512, frontend="logmel",
                      pooling=("pool_std_floor",)))
