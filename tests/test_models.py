
import numpy as np
import pytest
import torch

from bench import models as bench_models
from spkid.config import parse_options
from spkid.errors import SpkidError
from spkid.models import build_model, trunk_parameters
from spkid.models.pooling import (AttentiveStatsPooling, ContextAttentiveStatsPooling,
                                  SelfAttentivePooling, weighted_mean_std)
from spkid.models.summary import SummaryOptions, layer_table, print_summary
from spkid.options import SYSTEM_OPTIONS, ModelOptions
from spkid.registry import TRUNKS

torch.set_num_threads(1)

SMALL = {"Q_SAP": "4,8,8,16", "H_ASP": "4,8,8,16", "ECAPA": "32,64"}  # small --channels of each trunk


def test_every_registered_trunk_is_tested():
    assert list(SMALL) == list(TRUNKS), "give a new trunk small --channels in SMALL, so the tests below cover it"


def small(trunk: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelOptions(trunk=trunk, channels=SMALL[trunk], **kw))


def wave(batch: int, samples: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (0.1 * torch.randn(batch, samples, generator=g)).clamp(-1, 1)


@pytest.mark.parametrize("trunk,channels,count", [
    ("Q_SAP", "", 1_437_078), ("H_ASP", "", 8_028_492), ("ECAPA", "", 14_657_088), ("ECAPA", "512", 6_190_720)])
def test_paper_parameter_counts(trunk, channels, count):
    model = build_model(ModelOptions(trunk=trunk, channels=channels))
    assert trunk_parameters(model) == count
    assert sum(p.numel() for p in model.parameters()) == count
    with_bn = build_model(ModelOptions(trunk=trunk, channels=channels, embed_bn=True))
    assert trunk_parameters(with_bn) == count
    assert sum(p.numel() for p in with_bn.parameters()) == count + 2 * with_bn.embed_dim


def test_paper_defaults_and_overrides():
    assert build_model(ModelOptions(trunk="ECAPA")).embed_dim == 192
    q = build_model(ModelOptions(trunk="Q_SAP", channels="8,16,32,64", embed_dim=128, n_mels=40))
    assert q.embed_dim == 128 and q.frontend.n_mels == 40 and q.trunk.layer4[0].conv1.out_channels == 64
    e = build_model(ModelOptions(trunk="ECAPA", channels="256"))
    assert e.trunk.conv1[0].out_channels == 256 and e.trunk.mfa[0].out_channels == 1536


@pytest.mark.parametrize("opts,match", [
    (ModelOptions(trunk="H_ASP", channels="8,16,32"), "four positive widths"),
    (ModelOptions(trunk="Q_SAP", channels="8,x,32,64"), "comma-separated integers"),
    (ModelOptions(trunk="ECAPA", channels="100"), "multiple of 8"),
    (ModelOptions(trunk="H_ASP", n_mels=60), "multiple of 8"),
    (ModelOptions(trunk="Q_SAP", pool_std_floor=1e-10), r"^Q_SAP: --pool-std-floor does not apply to its pooling \(it takes: none\)"),
    (ModelOptions(trunk="H_ASP", context_std="unbiased"), r"--context-std does not apply .*it takes: --pool-std-floor\)"),
    (ModelOptions(trunk="VGG"), r"^unknown --trunk=VGG; choose one of: Q_SAP, H_ASP, ECAPA$"),
])
def test_bad_options_are_clear_errors(opts, match):
    with pytest.raises(SpkidError, match=match):
        build_model(opts)


def shapes(model, samples):
    return {name: shape for name, _, shape, _ in layer_table(model, samples)}


def test_h_asp_output_shapes_are_table_1():
    L = 200
    s = shapes(build_model(ModelOptions(trunk="H_ASP")), (L - 1) * 160)
    assert s["trunk.conv1"] == (32, 64, L)
    assert all(s[f"trunk.layer1.{i}"] == (32, 64, L) for i in range(3))
    assert s["trunk.layer2.3"] == (64, 32, L // 2)
    assert s["trunk.layer3.5"] == (128, 16, L // 4)
    assert s["trunk.layer4.2"] == (256, 8, L // 8)
    assert s["trunk.flatten"] == (2048, L // 8)
    assert s["trunk.pool"] == (4096,)
    assert s["trunk.fc"] == s["embed_bn"] == (512,)


def test_q_sap_and_ecapa_shapes():
    L = 200
    q = shapes(build_model(ModelOptions(trunk="Q_SAP")), (L - 1) * 160)
    assert q["trunk.conv1"] == (16, 32, L) and q["trunk.layer4.2"] == (128, 8, L // 4)
    assert q["trunk.collapse"] == (128, L // 4) and q["trunk.pool"] == (128,) and q["trunk.fc"] == (512,)
    e = shapes(build_model(ModelOptions(trunk="ECAPA", channels="512")), (L - 1) * 160)
    assert e["frontend"] == (80, L) and e["trunk.layer3"] == (512, L) and e["trunk.mfa.0"] == (1536, L)
    assert e["trunk.pool"] == (3072,) and e["trunk.fc"] == (192,)


@pytest.mark.parametrize("trunk", list(SMALL))
def test_variable_lengths_and_batch_independence(trunk):
    model = small(trunk, embed_bn=True).eval()
    with torch.no_grad():
        for samples in (32240, 64240, 21111, 97003):  # 2-s train crop, 4-s eval crop, whole utterances
            out = model(wave(3, samples))
            assert out.shape == (3, model.embed_dim) and torch.isfinite(out).all()
        x = wave(2, 30000, seed=1)
        torch.testing.assert_close(model(x)[1:], model(x[1:]), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("trunk", list(SMALL))
def test_training_step_gives_finite_gradients(trunk):
    model = small(trunk, embed_bn=True).train()
    model(wave(4, 32240)).square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("trunk", list(SMALL))
def test_torchscript_export_of_the_full_model(trunk, tmp_path):
    model = small(trunk, embed_bn=True).eval()
    scripted = torch.jit.script(model)
    path = tmp_path / "model.pt"
    scripted.save(str(path))
    loaded = torch.jit.load(str(path))
    with torch.no_grad():
        for samples in (32240, 50001):
            x = wave(2, samples, seed=samples)
            torch.testing.assert_close(loaded(x), model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.slow  # torch.export traces for 10-20 s per trunk on a CPU
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("trunk", list(SMALL))
def test_torch_export_with_dynamic_batch_and_length(trunk, tmp_path):
    model = small(trunk, embed_bn=True).eval()
    auto = torch.export.Dim.AUTO
    program = torch.export.export(model, (wave(2, 32240),), dynamic_shapes=({0: auto, 1: auto},))
    torch.export.save(program, tmp_path / "model.pt2")
    loaded = torch.export.load(tmp_path / "model.pt2").module()
    with torch.no_grad():
        for batch, samples in ((3, 64240), (2, 40003)):
            x = wave(batch, samples, seed=samples)
            torch.testing.assert_close(loaded(x), model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("trunk", list(SMALL))
def test_channels_last_and_bf16_autocast(trunk):
    model = small(trunk).eval()
    x = wave(2, 32240)
    captured = []
    model.frontend.register_forward_hook(lambda m, i, o: captured.append(o.dtype))
    with torch.no_grad():
        ref = model(x)
        cl = model.to(memory_format=torch.channels_last)(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            auto = model(x)
    torch.testing.assert_close(cl, ref, atol=1e-4, rtol=1e-4)
    assert captured == [torch.float32] * 3
    cos = torch.nn.functional.cosine_similarity(auto.float(), ref)
    assert (cos > 0.98).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("trunk", list(SMALL))
def test_cuda_fp16_training_step_without_host_syncs(trunk):
    model = small(trunk, embed_bn=True).cuda().to(memory_format=torch.channels_last).train()
    x = wave(4, 32240).cuda()
    model(x)  # warm-up: lazy initialisation may synchronise once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.autocast("cuda", dtype=torch.float16):
            emb = model(x)
        emb.float().square().mean().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert emb.shape == (4, model.embed_dim)


@pytest.mark.parametrize("trunk", ["Q_SAP", "H_ASP"])
def test_resnets_initialise_as_the_paper_code(trunk):
    """Every Conv2d Kaiming-normal with fan_out and ReLU gain (std sqrt(2 / (out * kh * kw)), normal,
    not PyTorch's default uniform), every BatchNorm2d weight 1 and bias 0; SAP's context vector
    Xavier-normal of a (C, 1) matrix (std sqrt(2 / (C + 1)))."""
    torch.manual_seed(0)
    model = build_model(ModelOptions(trunk=trunk))
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    w = torch.cat([c.weight.detach().flatten() / (2.0 / (c.weight.shape[0] * c.weight[0, 0].numel())) ** 0.5
                   for c in convs if c.weight.numel() > 20000])  # each scaled to unit std
    assert w.std().item() == pytest.approx(1.0, abs=0.02) and abs(w.mean().item()) < 0.01
    kurtosis = (w ** 4).mean().item() / w.var().item() ** 2
    assert kurtosis == pytest.approx(3.0, abs=0.1)  # a normal's 3; a uniform's 1.8
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    if trunk == "Q_SAP":
        v = torch.cat([SelfAttentivePooling(2048).context.detach() for _ in range(4)])
        assert v.std().item() == pytest.approx((2 / 2049) ** 0.5, rel=0.05)


def test_context_pooling_unbiased_std_as_wespeaker():
    """wespeaker's ASTP: context std sqrt(var(unbiased) + 1e-10), statistics' std
    sqrt(max(var, 1e-10)); written here from its equations."""
    torch.manual_seed(1)
    pool = ContextAttentiveStatsPooling(6, 4, std_floor=1e-10, context_std="unbiased")
    x = torch.randn(2, 6, 9)
    x[:, 0] = 0.5  # a constant channel: the floors matter
    ctx = torch.cat([x, x.mean(-1, keepdim=True).expand_as(x),
                     torch.sqrt(x.var(-1, keepdim=True) + 1e-10).expand_as(x)], dim=1)
    alpha = torch.softmax(pool.attention(ctx), dim=2)
    mean = (alpha * x).sum(2)
    std = torch.sqrt(((alpha * x * x).sum(2) - mean ** 2).clamp(min=1e-10))
    torch.testing.assert_close(pool(x), torch.cat([mean, std], 1))
    assert not torch.allclose(ContextAttentiveStatsPooling(6, 4)(x)[:, 6], std[:, 0])


def test_weighted_mean_std_by_hand():
    x = torch.tensor([[[1.0, 2.0, 4.0], [3.0, 3.0, 3.0]]])
    w = torch.tensor([[[0.5, 0.25, 0.25]]])
    mu, sd = weighted_mean_std(x, w)
    # channel 0: mean 0.5+0.5+1 = 2; E[x^2] = 0.5+1+4 = 5.5; var 1.5. Channel 1: var 0 -> floor.
    torch.testing.assert_close(mu, torch.tensor([[2.0, 3.0]]))
    torch.testing.assert_close(sd, torch.tensor([[1.5 ** 0.5, 1e-5 ** 0.5]]))


def test_pooling_with_uniform_attention_is_plain_statistics():
    x = torch.randn(2, 6, 9)
    mean, std = x.mean(-1), x.std(-1, unbiased=False)
    sap = SelfAttentivePooling(6)
    torch.nn.init.zeros_(sap.context)
    torch.testing.assert_close(sap(x), mean)
    for asp in (AttentiveStatsPooling(6, 4).eval(), ContextAttentiveStatsPooling(6, 4)):
        last = asp.attention[-1]
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)
        torch.testing.assert_close(asp(x), torch.cat([mean, std], 1))


def test_attention_weights_follow_the_scores():
    """SAP: softmax over time of v . tanh(W x_t + b), checked against numpy."""
    torch.manual_seed(3)
    sap = SelfAttentivePooling(4)
    x = torch.randn(1, 4, 5)
    W, b, v = (t.detach().double().numpy() for t in (sap.linear.weight, sap.linear.bias, sap.context))
    xt = x[0].double().numpy().T
    e = np.tanh(xt @ W.T + b) @ v
    a = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
    np.testing.assert_allclose(sap(x)[0].detach().double().numpy(), a @ xt, atol=1e-6)


def summary(argv: list[str]) -> int:
    """steps/model_summary.py's command line, parsed as it parses it."""
    args = parse_options([*SYSTEM_OPTIONS, SummaryOptions], argv)
    return print_summary(args[ModelOptions], args[SummaryOptions])


def test_model_summary_reads_a_system_conf(tmp_path, capsys):
    conf = tmp_path / "sys.conf"
    conf.write_text("--trunk=H_ASP\n--loss=ap_softmax\n--embed-bn=true\n--lr-step=16\n")
    assert summary(["--config", str(conf)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "trunk parameters: 8028492"
    assert any(line.startswith("trunk.flatten") and "(2048, 26)" in line for line in lines)
    assert summary(["--config", str(conf), "--trunk=Q_SAP", "--channels=8,16,32,64"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"trunk parameters: {trunk_parameters(build_model(ModelOptions(trunk='Q_SAP', channels='8,16,32,64')))}"


def test_model_summary_too_short_names_a_length_that_runs(capsys):
    # it said "use at least 0.1" for --seconds=0.1
    with pytest.raises(SpkidError, match=r"^--seconds=0.1 is too short to run the trunk; use at least 0.15$"):
        summary(["--trunk=Q_SAP", "--channels=8,16,32,64", "--seconds=0.1"])
    assert summary(["--trunk=Q_SAP", "--channels=8,16,32,64", "--seconds=0.15"]) == 0


def test_bench_runs_a_tiny_configuration(capsys):
    assert bench_models.main(["--trunks=ECAPA", "--channels=16", "--batch-size=2", "--samples=8000",
                       "--iters=1", "--warmup=0", "--device=cpu"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("ECAPA"))
    assert "cpu" in row and "fp32" in row
