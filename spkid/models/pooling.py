"""Temporal pooling: frame features ``(B, C, T)`` -> one utterance vector.

* :class:`SelfAttentivePooling` (SAP, Q/SAP; paper section 2.1, Cai et al. 2018): a learnt
  context vector scores ``tanh(W x_t + b)`` per frame; the softmax over time weights the mean.
* :class:`AttentiveStatsPooling` (ASP, H/ASP; paper section 2.1 and Table 1, Okabe et al. 2018):
  channel-wise attention (Conv1d C->128, ReLU, BN, Conv1d 128->C, softmax over time); the
  weighted mean and weighted standard deviation are concatenated -> ``2C``.
* :class:`ContextAttentiveStatsPooling` (ECAPA-TDNN, Desplanques et al. 2020 section 3.3):
  the same statistics, but the attention sees each frame concatenated with the utterance's
  global (unweighted) mean and standard deviation (Conv1d 3C->128, tanh, Conv1d 128->C).

The statistics are taken in float32 even under autocast: ``E[x^2] - mu^2`` cancels badly in
half precision.
"""

from __future__ import annotations

import torch
from torch import nn

STD_FLOOR = 1e-5


def weighted_mean_std(x: torch.Tensor, w: torch.Tensor, floor: float = STD_FLOOR) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean and standard deviation over time (the last axis).

    ``x`` is ``(B, C, T)``, ``w`` broadcasts to it and sums to one over time. The std is
    ``sqrt(clamp(sum_t w x^2 - mu^2, floor))``, as in the paper's code.
    """
    x = x.float()
    w = w.float()
    mu = torch.sum(x * w, dim=-1)
    var = torch.sum(x * x * w, dim=-1) - mu * mu
    return mu, torch.sqrt(var.clamp(min=floor))


class SelfAttentivePooling(nn.Module):
    """SAP: ``sum_t softmax_t(v . tanh(W x_t + b)) x_t``; ``(B, C, T) -> (B, C)``.

    ``v`` starts as the paper's code's: Xavier-normal of a ``(C, 1)`` matrix, std ``sqrt(2 / (C + 1))``."""

    def __init__(self, channels: int):
        super().__init__()
        self.linear = nn.Linear(channels, channels)
        self.context = nn.Parameter(nn.init.xavier_normal_(torch.empty(channels, 1)).view(channels).clone())
        self.out_dim = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.linear(x.transpose(1, 2)))          # (B, T, C)
        w = torch.softmax(torch.matmul(h, self.context).float(), dim=-1)  # (B, T)
        return torch.sum(x.float() * w.unsqueeze(1), dim=-1)


class AttentiveStatsPooling(nn.Module):
    """ASP with channel-wise attention: ``(B, C, T) -> (B, 2C)`` = [weighted mean, weighted std]."""

    def __init__(self, channels: int, bottleneck: int = 128, std_floor: float = STD_FLOOR):
        super().__init__()
        self.attention = nn.Sequential(
            nn.Conv1d(channels, bottleneck, kernel_size=1),
            nn.ReLU(),
            nn.BatchNorm1d(bottleneck),
            nn.Conv1d(bottleneck, channels, kernel_size=1),
        )
        self.out_dim = 2 * channels
        self.std_floor = std_floor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.attention(x).float(), dim=-1)
        mu, sd = weighted_mean_std(x, w, self.std_floor)
        return torch.cat([mu, sd], dim=1)


class ContextAttentiveStatsPooling(nn.Module):
    """ECAPA-TDNN's ASP with global context: ``(B, C, T) -> (B, 2C)``.

    The context std is ``sqrt(max(biased variance, floor))`` or, with ``context_std="unbiased"``,
    wespeaker's ``sqrt(unbiased variance + floor)``."""

    def __init__(self, channels: int, bottleneck: int = 128, std_floor: float = STD_FLOOR,
                 context_std: str = "biased"):
        super().__init__()
        self.attention = nn.Sequential(
            nn.Conv1d(3 * channels, bottleneck, kernel_size=1),
            nn.Tanh(),
            nn.Conv1d(bottleneck, channels, kernel_size=1),
        )
        self.out_dim = 2 * channels
        self.std_floor = std_floor
        self.unbiased_context = context_std == "unbiased"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[-1]
        if self.unbiased_context:
            xf = x.float()
            g_mu = xf.mean(dim=-1)
            g_sd = torch.sqrt(torch.var(xf, dim=-1, unbiased=True) + self.std_floor)
        else:
            uniform = torch.full((1, 1, frames), 1.0 / frames, dtype=torch.float32, device=x.device)
            g_mu, g_sd = weighted_mean_std(x, uniform, self.std_floor)
        context = torch.cat([x.float(), g_mu.unsqueeze(-1).expand(-1, -1, frames),
                             g_sd.unsqueeze(-1).expand(-1, -1, frames)], dim=1)
        w = torch.softmax(self.attention(context).float(), dim=-1)
        mu, sd = weighted_mean_std(x, w, self.std_floor)
        return torch.cat([mu, sd], dim=1)
