import math

import pytest
import torch
import torch.nn.functional as F

from spkid.errors import SpkidError
from spkid.train.losses import (AngularPrototypical, MarginSoftmax, PrototypicalPlusSoftmax, Softmax,
                          additive_angular_margin, build_loss)
from spkid.options import LossOptions
from spkid.registry import LOSSES

torch.set_num_threads(1)


def unit(angle: float) -> list[float]:
    return [math.cos(angle), math.sin(angle)]


def ce(logits: list[float], target: int) -> float:
    """Cross-entropy of one row, by hand."""
    return -logits[target] + math.log(sum(math.exp(z) for z in logits))


def margin_head(margin: float, scale: float, angular: bool, class_angles=(0.0, math.pi / 2)) -> MarginSoftmax:
    head = MarginSoftmax(2, len(class_angles), margin, scale, angular).double()
    with torch.no_grad():
        # Class vectors of arbitrary length: the head normalises them.
        head.weight.copy_(torch.tensor([[3 * c for c in unit(a)] for a in class_angles], dtype=torch.float64))
    return head


def test_softmax_by_hand():
    head = Softmax(2, 3).double()
    with torch.no_grad():
        head.fc.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]]))
        head.fc.bias.copy_(torch.tensor([0.5, 0.0, -0.5]))
    emb = torch.tensor([[1.0, 1.0], [2.0, -1.0]], dtype=torch.float64)
    loss, acc = head(emb, torch.tensor([1, 2]))
    # logits row 0: [1.5, 2, -0.5]; row 1: [2.5, -2, -3.5]
    want = (ce([1.5, 2.0, -0.5], 1) + ce([2.5, -2.0, -3.5], 2)) / 2
    assert loss.item() == pytest.approx(want, rel=1e-12)
    assert acc.item() == 0.5


def test_am_softmax_by_hand():
    theta = 0.3
    head = margin_head(0.2, 30.0, angular=False)
    loss, acc = head(torch.tensor([[5 * c for c in unit(theta)]], dtype=torch.float64), torch.tensor([0]))
    want = ce([30 * (math.cos(theta) - 0.2), 30 * math.cos(math.pi / 2 - theta)], 0)
    assert loss.item() == pytest.approx(want, rel=1e-10)
    assert acc.item() == 1.0


def test_aam_softmax_by_hand():
    theta = 0.3
    head = margin_head(0.2, 30.0, angular=True)
    loss, _ = head(torch.tensor([unit(theta)], dtype=torch.float64), torch.tensor([0]))
    want = ce([30 * math.cos(theta + 0.2), 30 * math.cos(math.pi / 2 - theta)], 0)
    assert loss.item() == pytest.approx(want, rel=1e-10)


def test_aam_continuation_past_pi():
    m = 0.2
    theta = math.pi - 0.05  # theta + m > pi
    got = additive_angular_margin(torch.tensor([math.cos(theta)], dtype=torch.float64), m).item()
    assert got == pytest.approx(math.cos(theta) - m * math.sin(m), rel=1e-12)
    # Below the switch it is cos(theta + m).
    theta = math.pi - 0.3
    got = additive_angular_margin(torch.tensor([math.cos(theta)], dtype=torch.float64), m).item()
    assert got == pytest.approx(math.cos(theta + m), rel=1e-12)


def test_aam_target_logit_decreases_with_angle():
    thetas = torch.linspace(0, math.pi, 2001, dtype=torch.float64)
    for m in (0.1, 0.2, 0.5):
        phi = additive_angular_margin(thetas.cos(), m)
        assert (phi.diff() < 0).all(), m
        # And the margin always lowers the target logit.
        assert (phi <= thetas.cos() + 1e-12).all()


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_aam_equals_am_at_zero_margin(scale):
    torch.manual_seed(0)
    emb = torch.randn(6, 5, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    aam = MarginSoftmax(5, 4, 0.0, scale, angular=True).double()
    am = MarginSoftmax(5, 4, 0.0, scale, angular=False).double()
    am.load_state_dict(aam.state_dict())
    l_aam, a_aam = aam(emb, labels)
    l_am, a_am = am(emb, labels)
    assert l_aam.item() == pytest.approx(l_am.item(), rel=1e-10)
    assert a_aam.item() == a_am.item()
    # m = 0: plain softmax on the scaled cosines.
    cos = F.normalize(emb, dim=1) @ F.normalize(aam.weight, dim=1).T
    assert l_aam.item() == pytest.approx(F.cross_entropy(scale * cos, labels).item(), rel=1e-10)


def test_margin_raises_loss():
    torch.manual_seed(1)
    emb = torch.randn(8, 4, dtype=torch.float64)
    labels = torch.randint(0, 3, (8,))
    base = MarginSoftmax(4, 3, 0.0, 30.0, angular=True).double()
    for angular in (False, True):
        head = MarginSoftmax(4, 3, 0.2, 30.0, angular=angular).double()
        head.load_state_dict(base.state_dict())
        assert head(emb, labels)[0].item() > base(emb, labels)[0].item()


def ap_by_hand(groups: list[list[list[float]]], w: float, b: float) -> float:
    """AP loss written out: query = utterance 0, prototype = mean of the rest, cosine, CE."""
    def norm(v):
        n = math.sqrt(sum(x * x for x in v))
        return [x / n for x in v]

    queries = [norm(g[0]) for g in groups]
    protos = [norm([sum(col) / (len(g) - 1) for col in zip(*g[1:])]) for g in groups]
    total = 0.0
    for i, q in enumerate(queries):
        row = [w * sum(a * c for a, c in zip(q, p)) + b for p in protos]
        total += ce(row, i)
    return total / len(groups)


def test_ap_by_hand():
    groups = [[[1.0, 0.0, 0.0], [0.8, 0.2, 0.0], [1.0, 0.1, 0.3]],
              [[0.0, 1.0, 0.0], [0.1, 0.9, 0.2], [0.5, 0.5, 0.0]]]
    head = AngularPrototypical(3, 10.0, -5.0).double()
    emb = torch.tensor([u for g in groups for u in g], dtype=torch.float64)
    loss, acc = head(emb, torch.tensor([0, 0, 0, 1, 1, 1]))
    assert loss.item() == pytest.approx(ap_by_hand(groups, 10.0, -5.0), rel=1e-10)
    assert acc.item() == 1.0


def test_ap_matches_cosine_similarity_formulation():
    """An independent formulation: broadcasting F.cosine_similarity over (B, D, 1) x (1, D, B)."""
    torch.manual_seed(2)
    head = AngularPrototypical(2, 10.0, -5.0).double()
    x = torch.randn(5, 2, 7, dtype=torch.float64)
    anchor = x[:, 1:].mean(1)
    positive = x[:, 0]
    sim = F.cosine_similarity(positive.unsqueeze(-1), anchor.unsqueeze(-1).transpose(0, 2))
    want = F.cross_entropy(sim * 10.0 - 5.0, torch.arange(5))
    loss, _ = head(x.reshape(10, 7), torch.arange(5).repeat_interleave(2))
    assert loss.item() == pytest.approx(want.item(), rel=1e-10)


def test_ap_near_zero_when_separated():
    head = AngularPrototypical(2, 10.0, -5.0).double()
    # Four speakers, both utterances on the speaker's own axis: cos 1 on the diagonal, 0 off it.
    eye = torch.eye(4, dtype=torch.float64)
    loss, acc = head(eye.repeat_interleave(2, dim=0), torch.arange(4).repeat_interleave(2))
    assert loss.item() == pytest.approx(math.log(1 + 3 * math.exp(-10.0)), rel=1e-9)
    assert loss.item() < 2e-4
    assert acc.item() == 1.0
    # Confused speakers (all embeddings equal) give log B.
    loss, _ = head(torch.ones(8, 4, dtype=torch.float64), torch.arange(4).repeat_interleave(2))
    assert loss.item() == pytest.approx(math.log(4), rel=1e-9)


def test_ap_scale_kept_positive():
    head = AngularPrototypical(2, 10.0, -5.0).double()
    with torch.no_grad():
        head.w.fill_(-3.0)
    torch.manual_seed(3)
    emb = torch.randn(6, 4, dtype=torch.float64)
    loss, _ = head(emb, torch.arange(3).repeat_interleave(2))
    # w is used as 1e-6: every logit is ~b, so the loss is ~log B rather than rewarding
    # anti-aligned prototypes.
    assert loss.item() == pytest.approx(math.log(3), abs=1e-5)


def test_ap_invariant_to_speaker_order():
    torch.manual_seed(4)
    head = AngularPrototypical(2, 10.0, -5.0).double()
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    perm = torch.tensor([2, 0, 3, 1])
    a, _ = head(x.reshape(8, 3), torch.zeros(8, dtype=torch.long))
    b, _ = head(x[perm].reshape(8, 3), torch.zeros(8, dtype=torch.long))
    assert a.item() == pytest.approx(b.item(), rel=1e-12)


def test_ap_softmax_is_the_sum():
    torch.manual_seed(5)
    head = PrototypicalPlusSoftmax(4, 3, 2, 10.0, -5.0).double()
    emb = torch.randn(6, 4, dtype=torch.float64)
    labels = torch.tensor([2, 2, 0, 0, 1, 1])
    loss, acc = head(emb, labels)
    ls, acc_s = head.softmax(emb, labels)
    lp, _ = head.ap(emb, labels)
    assert loss.item() == pytest.approx(ls.item() + lp.item(), rel=1e-12)
    assert acc.item() == acc_s.item()


@pytest.mark.parametrize("name", LOSSES)
def test_gradcheck(name):
    torch.manual_seed(6)
    opts = LossOptions(loss=name)
    head = build_loss(opts, embed_dim=4, num_speakers=3, m=2).double()
    emb = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    params = list(head.parameters())
    assert torch.autograd.gradcheck(lambda e: head(e, labels)[0], (emb,))
    # Parameter gradients against finite differences too.
    loss = head(emb, labels)[0]
    grads = torch.autograd.grad(loss, params)
    eps = 1e-6
    for p, g in zip(params, grads):
        flat = p.detach().view(-1)
        for i in range(min(flat.numel(), 5)):
            with torch.no_grad():
                old = flat[i].item()
                flat[i] = old + eps
                up = head(emb, labels)[0].item()
                flat[i] = old - eps
                down = head(emb, labels)[0].item()
                flat[i] = old
            assert (up - down) / (2 * eps) == pytest.approx(g.view(-1)[i].item(), abs=1e-6)


def test_aam_gradient_finite_at_exact_alignment():
    head = margin_head(0.2, 30.0, angular=True)
    emb = torch.tensor([[2.0, 0.0]], dtype=torch.float64, requires_grad=True)  # cos θ = 1 exactly
    loss, _ = head(emb, torch.tensor([0]))
    loss.backward()
    assert torch.isfinite(emb.grad).all() and torch.isfinite(head.weight.grad).all()


@pytest.mark.parametrize("name", LOSSES)
def test_fp32_under_autocast(name):
    torch.manual_seed(7)
    head = build_loss(LossOptions(loss=name), embed_dim=8, num_speakers=5, m=2)
    emb = torch.randn(4, 8).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, acc = head(emb, torch.tensor([1, 1, 3, 3]))
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert acc.dtype == torch.float32 and 0.0 <= acc.item() <= 1.0


def test_build_loss_checks():
    with pytest.raises(SpkidError, match="n-per-speaker"):
        build_loss(LossOptions(loss="ap"), 8, 5, m=1)
    with pytest.raises(SpkidError, match="multiple"):
        build_loss(LossOptions(loss="ap"), 8, 5, m=2)(torch.randn(5, 8), torch.zeros(5, dtype=torch.long))
    assert isinstance(build_loss(LossOptions(loss="softmax"), 8, 5, 1), Softmax)
    assert build_loss(LossOptions(loss="am_softmax"), 8, 5, 1).angular is False
    assert build_loss(LossOptions(loss="aam_softmax", margin=0.3, scale=20.0), 8, 5, 1).margin == 0.3


def _ddp_ap_rank(rank: int, world: int, init: str, x: torch.Tensor, labels: torch.Tensor, loss: str, out: dict):
    import os
    import traceback

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        net = torch.nn.Linear(x.shape[1], 6)
        head = build_loss(LossOptions(loss=loss), 6, 4, 2)
        params = [*net.parameters(), *head.parameters()]
        n = len(x) // world
        rows = slice(rank * n, (rank + 1) * n)
        value, _ = head(net(x[rows]), labels[rows])
        value.backward()
        for p in params:  # what DDP does with the gradients: average them over the ranks
            dist.all_reduce(p.grad)
            p.grad /= world
        if rank == 0:
            out["loss"] = value.detach()
            out["grads"] = [p.grad.clone() for p in params]
        dist.barrier()
    except BaseException:
        traceback.print_exc()
        os._exit(1)
    # leave without gloo's teardown: its destructors now and then abort a finished rank
    # ("terminate called without an active exception", SIGABRT), on 9e84aab too
    os._exit(0)


@pytest.mark.parametrize("loss", ["ap", "ap_softmax"])
def test_ap_under_ddp_sees_the_whole_global_batch(tmp_path, loss):
    """Two ranks, each with half of a 4-speaker x 2 batch: the AP loss and the averaged gradients
    equal one process's on the whole batch (not the mean of two 2-speaker losses)."""
    import torch.multiprocessing as mp

    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 5, generator=g)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    torch.manual_seed(0)
    net = torch.nn.Linear(5, 6)
    head = build_loss(LossOptions(loss=loss), 6, 4, 2)
    whole, _ = head(net(x), labels)
    whole.backward()
    if loss == "ap_softmax":  # the softmax half stays per rank: DDP averages the two halves' means
        head.zero_grad(), net.zero_grad()
        halves = [head.softmax(net(x[r * 4:(r + 1) * 4]), labels[r * 4:(r + 1) * 4])[0] for r in range(2)]
        whole = head.ap(net(x), labels)[0] + sum(halves) / 2
        whole.backward()
    want = [p.grad for p in (*net.parameters(), *head.parameters())]
    out = mp.Manager().dict()
    mp.spawn(_ddp_ap_rank, args=(2, f"file://{tmp_path / 'init'}", x, labels, loss, out), nprocs=2)
    if loss == "ap":
        torch.testing.assert_close(out["loss"], whole.detach())
    for got, exp in zip(out["grads"], want):
        torch.testing.assert_close(got, exp, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("angular", [False, True])
def test_margin_accuracy_is_on_the_plain_cosines(angular):
    # theta = pi/4 - 0.05: nearer class 0 (cos 0.74 vs 0.67), but the margin of 0.2 would put the
    # target logit below class 1's; the reported accuracy is the nearest class's, 1.
    head = margin_head(0.2, 30.0, angular=angular)
    _, acc = head(torch.tensor([unit(math.pi / 4 - 0.05)], dtype=torch.float64), torch.tensor([0]))
    assert acc.item() == 1.0
    _, acc = head(torch.tensor([unit(math.pi / 4 + 0.05)], dtype=torch.float64), torch.tensor([0]))
    assert acc.item() == 0.0
