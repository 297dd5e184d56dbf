"""Training objectives of the paper (section 2.2), one small module each, found by name in
:data:`spkid.registry.LOSSES` (each registered below its class).

Every head takes embeddings ``(N, D)`` and speaker labels ``(N,)`` and returns
``(loss, accuracy)``: the mean loss as a 0-dim tensor and the top-1 training accuracy in
[0, 1] as a 0-dim tensor on the same device (never a Python float, so that the training step
does not wait for the device), or ``None`` where a head has no accuracy.

The heads compute in fp32 with autocast off: their cost is negligible next to the trunk's and
a scale of 30 on fp16 cosines loses the margin's precision.

The metric losses (``ap``, ``ap_softmax``) expect the batch ordered speaker-major in groups of
``m`` consecutive utterances of one speaker, as the sampler builds it; under DDP the AP loss
gathers the whole global batch from the ranks (:func:`gather_batch`).
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from spkid.errors import SpkidError
from spkid.options import LossOptions
from spkid.registry import LOSSES, Loss


def _accuracy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(dim=1) == target).float().mean()


class _Fp32Head(nn.Module):
    """Runs ``_forward`` with autocast disabled, on fp32 embeddings when they come in half
    precision (float64 stays float64, for gradient checks)."""

    def forward(self, emb: torch.Tensor, labels: torch.Tensor):
        if emb.dtype in (torch.float16, torch.bfloat16):
            emb = emb.float()
        with torch.autocast(device_type=emb.device.type, enabled=False):
            return self._forward(emb, labels)

    def _forward(self, emb: torch.Tensor, labels: torch.Tensor):
        raise NotImplementedError


class Softmax(_Fp32Head):
    """Softmax: a Linear classifier (with bias) over the training speakers + cross-entropy."""

    def __init__(self, embed_dim: int, num_speakers: int):
        super().__init__()
        self.fc = nn.Linear(embed_dim, num_speakers)

    @classmethod
    def from_options(cls, opts: LossOptions, embed_dim: int, num_speakers: int, m: int) -> Softmax:
        return cls(embed_dim, num_speakers)

    def _forward(self, emb, labels):
        logits = self.fc(emb)
        return F.cross_entropy(logits, labels), _accuracy(logits.detach(), labels)


def cosine_logits(emb: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """cos θ between every embedding ``(N, D)`` and every class vector ``weight (C, D)``."""
    return F.linear(F.normalize(emb, dim=1), F.normalize(weight, dim=1))


def additive_angular_margin(cos_target: torch.Tensor, margin: float) -> torch.Tensor:
    """cos(θ + m) for the target class (AAM-softmax, paper section 2.2).

    Where θ + m > π, cos(θ + m) would rise again with θ; like ArcFace and the paper's code we
    continue with cos θ − m·sin(m) there, which keeps the logit decreasing in θ.
    """
    # sin θ >= 0 on [0, π]; the clamp keeps the gradient finite at cos θ = ±1.
    sin_target = (1.0 - cos_target * cos_target).clamp(min=1e-12).sqrt()
    cos_theta_m = cos_target * math.cos(margin) - sin_target * math.sin(margin)
    return torch.where(cos_target > math.cos(math.pi - margin), cos_theta_m,
                       cos_target - margin * math.sin(margin))


class MarginSoftmax(_Fp32Head):
    """AM-softmax (s·(cos θ_y − m)) or AAM-softmax (s·cos(θ_y + m)), paper section 2.2.

    Class vectors and embeddings are L2-normalised; only the target logit gets the margin.
    """

    def __init__(self, embed_dim: int, num_speakers: int, margin: float, scale: float, angular: bool):
        super().__init__()
        self.margin = margin
        self.scale = scale
        self.angular = angular
        self.weight = nn.Parameter(torch.empty(num_speakers, embed_dim))
        nn.init.xavier_normal_(self.weight, gain=1.0)

    @classmethod
    def from_options(cls, opts: LossOptions, embed_dim: int, num_speakers: int, m: int, angular: bool) -> MarginSoftmax:
        return cls(embed_dim, num_speakers, opts.margin, opts.scale, angular)

    def _forward(self, emb, labels):
        cos = cosine_logits(emb, self.weight)
        cos_target = cos.gather(1, labels[:, None])
        if self.angular:
            target = additive_angular_margin(cos_target, self.margin)
        else:
            target = cos_target - self.margin
        logits = self.scale * cos.scatter(1, labels[:, None], target)
        # Accuracy on the plain cosines: the class the embedding is nearest to.
        return F.cross_entropy(logits, labels), _accuracy(cos.detach(), labels)


class AngularPrototypical(_Fp32Head):
    """Angular Prototypical loss (paper section 2.2; Chung et al. 2020).

    The batch is B speakers × M utterances, speaker-major. The query of speaker i is its
    utterance 0, its prototype the mean of the other M−1. Logits are w·cos(query_i, proto_j) + b
    over the B×B matrix, with learnt w (kept positive) and b; cross-entropy with the diagonal
    as the targets. ``labels`` are not needed (the grouping defines the targets).
    """

    def __init__(self, m: int, init_w: float, init_b: float):
        super().__init__()
        if m < 2:
            raise SpkidError(f"the Angular Prototypical loss needs at least 2 utterances per speaker in a batch, "
                             f"got --n-per-speaker={m}; use 2 (or 0 for the default)")
        if init_w <= 0:
            raise SpkidError(f"--ap-init-w={init_w}: the scale w must start positive")
        self.m = m
        self.w = nn.Parameter(torch.tensor(float(init_w)))
        self.b = nn.Parameter(torch.tensor(float(init_b)))

    @classmethod
    def from_options(cls, opts: LossOptions, embed_dim: int, num_speakers: int, m: int) -> AngularPrototypical:
        return cls(m, opts.ap_init_w, opts.ap_init_b)

    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        n, d = emb.shape
        if n % self.m:
            raise SpkidError(f"Angular Prototypical: a batch of {n} utterances is not a whole number of "
                             f"groups of {self.m}; make the per-rank batch size a multiple of --n-per-speaker")
        groups = emb.view(n // self.m, self.m, d)
        query = F.normalize(groups[:, 0], dim=1)
        proto = F.normalize(groups[:, 1:].mean(dim=1), dim=1)
        return self.w.clamp(min=1e-6) * (query @ proto.T) + self.b

    def _forward(self, emb, labels):
        logits = self.logits(gather_batch(emb))
        target = torch.arange(logits.shape[0], device=emb.device)
        return F.cross_entropy(logits, target), _accuracy(logits.detach(), target)


def gather_batch(emb: torch.Tensor) -> torch.Tensor:
    """Under DDP, the embeddings of the whole global batch (every rank's slice, in rank order,
    which is the sampler's order), with gradients flowing back to each rank's own rows.

    So the AP loss compares all B speakers of the global batch, as on one GPU, not B/world on
    each rank. Every rank computes the same loss; the gather's backward sums the world's
    identical gradients for each rank's rows, and DDP's average over ranks undoes that sum: the
    parameter gradient is the one-GPU gradient of the global batch."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return emb
    from torch.distributed.nn.functional import all_gather
    return torch.cat(all_gather(emb.contiguous()), dim=0)


class PrototypicalPlusSoftmax(_Fp32Head):
    """AP + softmax (paper section 2.2): the AP loss plus softmax cross-entropy over all N
    utterances, summed 1:1. The accuracy is the softmax classifier's, as in the paper's code."""

    def __init__(self, embed_dim: int, num_speakers: int, m: int, init_w: float, init_b: float):
        super().__init__()
        self.softmax = Softmax(embed_dim, num_speakers)
        self.ap = AngularPrototypical(m, init_w, init_b)

    @classmethod
    def from_options(cls, opts: LossOptions, embed_dim: int, num_speakers: int, m: int) -> PrototypicalPlusSoftmax:
        return cls(embed_dim, num_speakers, m, opts.ap_init_w, opts.ap_init_b)

    def _forward(self, emb, labels):
        loss_s, acc = self.softmax._forward(emb, labels)
        loss_p, _ = self.ap._forward(emb, labels)
        return loss_s + loss_p, acc


# where a head's class vectors live: softmax, AP+softmax, AM/AAM-softmax
CLASS_VECTOR_KEYS = ("fc.weight", "softmax.fc.weight", "weight")


def class_vectors(old: dict, new: dict) -> torch.Tensor | None:
    """The class vectors of a saved head ``old`` that can start the margin head ``new`` (a
    state dict with a (speakers, dim) ``weight``): a softmax classifier's weight rows or another
    margin head's, over the same speakers; None when there are none."""
    target = new.get("weight")
    if target is None or target.dim() != 2:
        return None
    for key in CLASS_VECTOR_KEYS:
        if key in old and old[key].shape == target.shape:
            return old[key].clone()
    return None


LOSSES.register(Loss("softmax", Softmax.from_options, "softmax cross-entropy over the training speakers",
                     label="Softmax"))
# The margin m each margin loss can train with, [0, upper), and why: a negative m rewards the
# target class instead of penalising it, and past the upper end a sample lying on its own class
# vector (θ = 0) gets a target logit no higher than an orthogonal class's (cos 0 - m <= 0 for
# AM-softmax; cos(0 + m) <= 0 for AAM-softmax, whose continuation cos θ - m·sin(m) even turns
# into a bonus for m > π). Outside it, training drives the loss to 0 without learning speakers.
LOSSES.register(Loss("am_softmax", partial(MarginSoftmax.from_options, angular=False),
                     "additive margin softmax (--margin, --scale)", label="AM-softmax",
                     margin_below=(1.0, "1: at m >= 1, cos 0 - m <= 0")))
LOSSES.register(Loss("aam_softmax", partial(MarginSoftmax.from_options, angular=True),
                     "additive angular margin softmax (--margin, --scale)", label="AAM-softmax",
                     margin_below=(math.pi / 2, "π/2 = 1.5708: at m >= π/2, cos(0 + m) <= 0")))
LOSSES.register(Loss("ap", AngularPrototypical.from_options, "Angular Prototypical (--ap-init-w, --ap-init-b)",
                     label="AP", per_speaker=2))
LOSSES.register(Loss("ap_softmax", PrototypicalPlusSoftmax.from_options, "Angular Prototypical + softmax, summed 1:1",
                     label="AP+softmax", per_speaker=2))


def build_loss(opts: LossOptions, embed_dim: int, num_speakers: int, m: int) -> nn.Module:
    """The loss head named by ``opts.loss``; ``m`` = utterances per speaker in a batch."""
    return LOSSES[opts.loss].build(opts, embed_dim, num_speakers, m)
