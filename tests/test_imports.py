"""steps/import_model.py and spkid.models.imports: checkpoints built in the sources' layouts (see
source_checkpoints.py) import onto our trunks, and the imported network computes the source's
embeddings (the reference forwards there are written from the sources' equations)."""

import json
import re

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from source_checkpoints import (vt_am_logits, vt_checkpoint, vt_eer, vt_eval_crops, vt_evaluate_from_list, vt_forward,
                                vt_head, vt_resnet, ws_ecapa, ws_forward)
from spkid.config import parse_options, read_resolved
from spkid.errors import SpkidError
from spkid.eval.extract import load_system
from spkid.models import trunk_parameters
from spkid.options import SYSTEM_OPTIONS, EvalOptions, LossOptions, ModelOptions
from spkid.data.datadir import DataDir
from spkid.eval.embed import EmbedOptions, embed
from spkid.eval.extract_set import ExtractOptions, extract_data
from spkid.eval.score_set import ScoreOptions, score_set
from spkid.models.imports import ImportOptions, import_model as run_import
from spkid.train.losses import build_loss, cosine_logits
from trained_system import system_step, voice, write_voice

torch.set_num_threads(1)


def import_model(tmp_path, state, *options, name="SYS"):
    ckpt = tmp_path / f"{name}.model"
    torch.save(state, ckpt)
    exp = tmp_path / "exp" / name
    argv = [*options, str(ckpt), str(exp)]
    system = [ModelOptions, LossOptions, EvalOptions]
    args = parse_options([*system, ImportOptions], argv, ["checkpoint", "exp_dir"])
    assert run_import(str(ckpt), str(exp), args.of(system), args[ImportOptions], args.given) == 0
    return exp


RELEASED = {
    # baseline_lite_ap.model: ResNetSE34L, 40 mels, no pre-emphasis, angleproto, the older bare layout
    "ResNetSE34L-ap": (lambda: vt_checkpoint(vt_resnet("L", (16, 32, 64, 128), 40), vt_head("angleproto"), "bare"),
                       dict(trunk="Q_SAP", channels="16,32,64,128", n_mels=40, embed_dim=512, preemphasis=0.0),
                       "ap", 0, 1_437_078),
    # baseline_v2_ap.model: ResNetSE34V2, ASP, 64 mels, angleproto, the older bare layout
    "ResNetSE34V2-ap": (lambda: vt_checkpoint(vt_resnet("V2", (32, 64, 128, 256), 64), vt_head("angleproto"), "bare"),
                        dict(trunk="H_ASP", channels="32,64,128,256", n_mels=64, embed_dim=512, preemphasis=0.97),
                        "ap", 0, 8_028_492),
    # baseline_v2_smproto.model: the same network with the softmax + angleproto head
    "ResNetSE34V2-smproto": (lambda: vt_checkpoint(vt_resnet("V2", (32, 64, 128, 256), 64), vt_head("softmaxproto"), "bare"),
                             dict(trunk="H_ASP", n_mels=64, embed_dim=512), "ap_softmax", 5994, 8_028_492),
    # wespeaker voxceleb_ECAPA512 / ECAPA1024 avg_model.pt: 5994 speakers x 3 speeds
    "ECAPA_TDNN_GLOB_c512": (lambda: ws_ecapa(512, classes=17982),
                             dict(trunk="ECAPA", channels="512,1536", n_mels=80, embed_dim=192, frontend="fbank",
                                  input_scale=32768.0), "aam_softmax", 17982, 6_190_720),
    "ECAPA_TDNN_GLOB_c1024": (lambda: ws_ecapa(1024, classes=17982),
                              dict(trunk="ECAPA", channels="1024,1536", context_std="unbiased", pool_std_floor=1e-10),
                              "aam_softmax", 17982, 14_657_088),
}


@pytest.mark.parametrize("name", list(RELEASED))
def test_import_of_each_released_network(tmp_path, name):
    make, model_fields, loss, speakers, params = RELEASED[name]
    state = make()
    exp = import_model(tmp_path, state, name=name)
    model, lossopts, train, evaluation = read_resolved(exp / "config.conf", SYSTEM_OPTIONS)
    for field, value in model_fields.items():
        assert getattr(model, field) == pytest.approx(value) if isinstance(value, float) else getattr(model, field) == value
    assert lossopts.loss == loss
    assert model.input_scale == 32768.0  # all were trained on int16-scale waveforms
    assert (evaluation.num_eval_crops, evaluation.score_type) == ((0, "cosine") if "ECAPA" in name else (10, "euclidean"))
    assert (exp / ".done.train").read_text() == ""  # stage 3's marker, for any corpus
    system = load_system(exp)
    assert trunk_parameters(system.model) == params  # the paper's counts (section 2.1, docs/stages.md, Trunks)
    final = torch.load(exp / "final.pt", weights_only=True)
    assert final["num_speakers"] == speakers
    flat = state.get("model_state_dict", state)
    if loss == "ap_softmax":
        torch.testing.assert_close(final["loss"]["softmax.fc.weight"], flat["__L__.softmax.fc.weight"])
        assert final["loss"]["ap.w"].item() == 12.5
    elif loss == "ap":
        assert (final["loss"]["w"].item(), final["loss"]["b"].item()) == (12.5, -6.25)
    else:
        torch.testing.assert_close(final["loss"]["weight"], flat["projection.weight"])


def wav_and_samples(tmp_path, name, seconds, seed):
    path = write_voice(tmp_path / "wav" / f"{name}.wav", seconds=seconds, seed=seed, f0=100 + 20 * seed)
    samples, _ = sf.read(path, dtype="float32")
    return path, samples


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("net,layout,scale", [("L", "bare", 32768.0), ("V2", "new", 1.0)])
def test_paper_code_crop_embeddings_equal_the_source(tmp_path, net, layout, scale):
    """steps/embed.py --kind=crops on the imported system gives, crop by crop, what the paper's code
    computes: its ten 400-frame crops, front-end (V2 pre-emphasis with reflect padding; L none;
    int16-scale input for a bare state dict, floats for today's saveParameters dict) and network."""
    s = vt_resnet(net, (8, 16, 16, 32), 40 if net == "L" else 64, n_out=64, seed=3)
    exp = import_model(tmp_path, vt_checkpoint(s, vt_head("angleproto"), layout))
    files = [wav_and_samples(tmp_path, f"u{i}", 4.6 + i, seed=i) for i in range(2)]
    out = tmp_path / "emb"
    assert embed(EmbedOptions(kind="crops", format="npy", out=str(out), quiet=True), str(exp),
                 str(tmp_path / "wav")) == 0
    ours = np.load(out / "embeddings.npy")
    assert ours.shape == (2, 10, 64)
    for i, (_, samples) in enumerate(files):
        with torch.no_grad():
            ref = vt_forward(net, s, torch.from_numpy(vt_eval_crops(samples)), input_scale=scale).numpy()
        assert cosines(ours[i], ref).min() >= 0.99999


def test_input_scale_comes_from_the_layout_and_says_so(tmp_path, capsys):
    """Today's saveParameters dict: float input, from the file's layout. A bare state dict: int16
    scale by default, with a note naming the ambiguity and --input-scale=1; given, the option wins
    and the network computes what today's voxceleb_trainer computes (on quiet stretches, where
    log(mel + 1e-6) meets its floor, the two scales differ)."""
    s = vt_resnet("V2", (8, 16, 16, 32), 64, n_out=32, seed=4)
    runs = {"new": [], "bare": [], "bare_float": ["--input-scale=1"]}
    conf, out = {}, {}
    for name, options in runs.items():
        exp = import_model(tmp_path, vt_checkpoint(s, vt_head("angleproto"), name.split("_")[0]), *options, name=name)
        conf[name], out[name] = read_resolved(exp / "config.conf", SYSTEM_OPTIONS)[0], capsys.readouterr().out
    assert conf["new"].input_scale == 1.0 and "input x1 (file layout: saveParameters dict)" in out["new"]
    assert conf["bare"].input_scale == 32768.0 and "input x32768 (default for a bare state dict)" in out["bare"]
    assert conf["bare_float"].input_scale == 1.0 and "input x1 (your option)" in out["bare_float"]
    assert "note:" not in out["new"] and "note:" not in out["bare_float"]
    assert re.search(r"note: the file is a bare state dict.*released models.*float.*--input-scale=1", out["bare"])
    for name in runs:  # VT's README evaluates at 400 frames, its trainSpeakerNet.py at 300 by default
        assert "10 crops (voxceleb_trainer's) of 400 frames (voxceleb_trainer's README; " \
               "voxceleb_trainer's --eval_frames default is 300)" in out[name]
    samples = voice(4.3, seed=1)
    samples[16000:48000] *= 1e-5
    system = load_system(tmp_path / "exp" / "bare_float")
    crops = torch.from_numpy(vt_eval_crops(samples))
    with torch.no_grad():
        ours = system.model(crops).numpy()
        assert cosines(ours, vt_forward("V2", s, crops, input_scale=1.0).numpy()).min() >= 0.99999
        assert cosines(ours, vt_forward("V2", s, crops).numpy()).min() < 0.9999  # far outside the 0.99999 of a faithful import


@pytest.mark.parametrize("loss,ours", [("amsoftmax", "am_softmax"), ("aamsoftmax", "aam_softmax")])
def test_margin_heads_import_for_fine_tuning(tmp_path, capsys, loss, ours):
    """voxceleb_trainer's amsoftmax (W: nOut x nClasses) and aamsoftmax (weight: nClasses x nOut)
    become our margin heads, which load into the loss a fine-tuning run builds and give the
    source's cosines."""
    head = vt_head(loss, n_out=32, classes=7)
    exp = import_model(tmp_path, vt_checkpoint(vt_resnet("L", (8, 16, 16, 32), 40, n_out=32), head))
    model, lossopts, _, _ = read_resolved(exp / "config.conf", SYSTEM_OPTIONS)
    assert lossopts.loss == ours
    assert "margin and scale are not in the file" in capsys.readouterr().out
    final = torch.load(exp / "final.pt", weights_only=True)
    assert final["num_speakers"] == 7
    built = build_loss(lossopts, model.embed_dim, final["num_speakers"], m=1)
    built.load_state_dict(final["loss"])  # strict: what --init-from loads
    emb = torch.randn(5, 32, generator=torch.Generator().manual_seed(2))
    want = vt_am_logits(emb, head["W"]) if loss == "amsoftmax" else \
        F.normalize(emb) @ F.normalize(head["weight"]).T  # aamsoftmax: F.linear of the normalised pair
    torch.testing.assert_close(cosine_logits(emb, built.weight), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(SpkidError, match=r"class vectors are 7 x 16 \(speakers x dim\), but the network's embedding has 32"):
        bad = {"W": torch.zeros(16, 7)} if loss == "amsoftmax" else {"weight": torch.zeros(7, 16)}
        import_model(tmp_path, vt_checkpoint(vt_resnet("L", (8, 16, 16, 32), 40, n_out=32), bad), name="bad")


def test_wespeaker_whole_utterance_embedding_equals_the_source(tmp_path):
    """wespeaker's evaluation: one embedding of the whole utterance (Kaldi fbank of the int16-scale
    waveform, mean norm, ECAPA_TDNN_GLOB with its unbiased context std and 1e-10 floors)."""
    s = ws_ecapa(64, mfa=192, seed=5)
    # eight dead aggregation channels (ReLU output 0 throughout), as trained networks have: their
    # std is the floor, and the BN after the pooling has learnt that value, so a floor of 1e-5
    # instead of wespeaker's 1e-10 moves the embedding
    s["conv.bias"][:8] = -1e3
    s["bn.running_mean"][192:200], s["bn.running_var"][192:200] = 1e-5, 1e-8
    exp = import_model(tmp_path, s)
    files = [wav_and_samples(tmp_path, f"u{i}", 2.7 + i, seed=i) for i in range(2)]
    out = tmp_path / "emb"
    assert embed(EmbedOptions(kind="crops", out=str(out), quiet=True), str(exp), str(tmp_path / "wav")) == 0
    import kaldiio
    ours = dict(kaldiio.load_scp(str(out / "embeddings.scp")))
    for i, (_, samples) in enumerate(files):
        with torch.no_grad():
            ref = ws_forward(s, torch.from_numpy(samples)).numpy()
        assert ours[f"u{i}"].shape == (1, 192)
        assert cosines(ours[f"u{i}"], ref).min() >= 0.99999


def test_unknown_network_names_missing_and_unexpected_keys(tmp_path):
    s = vt_resnet("L", (8, 16, 16, 32), 40)
    del s["sap_linear.weight"], s["sap_linear.bias"], s["attention"]
    s["gru.weight_ih_l0"] = torch.zeros(3, 3)
    with pytest.raises(SpkidError, match=r"not a network we know.*Closest is ResNetSE34L: missing attention, "
                                         r"sap_linear; unexpected gru.weight_ih_l0.*Networks known: .*ResNetSE34V2.*ECAPA"):
        import_model(tmp_path, vt_checkpoint(s, vt_head("angleproto")))


@pytest.mark.parametrize("make,match", [
    (lambda: ws_ecapa(64, mfa=192) | {"pool.linear1.weight": torch.zeros(128, 192, 1)}, "without global context"),
    (lambda: vt_checkpoint({**vt_resnet("V2", (8, 16, 16, 32), 64), "fc.weight": torch.zeros(512, 256)}, {}),
     "encoder is SAP"),
    (lambda: vt_checkpoint({**vt_resnet("L", (8, 16, 16, 32), 40), "layer2.0.se.fc.0.weight": torch.zeros(3, 16)}, {}),
     r"shapes differ: trunk.layer2.0.se.fc.0.weight \(3, 16\) \(ours \(2, 16\)\)"),
    (lambda: {"model_state_dict": {"__S__.fc.weight": "not a tensor"}}, "no state dict of tensors"),
])
def test_foreign_checkpoints_are_refused_by_name(tmp_path, make, match):
    with pytest.raises(SpkidError, match=match):
        import_model(tmp_path, make())


def test_checkpoint_with_nan_weights_is_refused_naming_the_tensor(tmp_path):
    # imported with exit 0, it made NaN embeddings; fine-tuning from it ended in "training diverged"
    net = vt_resnet("L", (8, 16, 16, 32), 40)
    net["sap_linear.weight"] = net["sap_linear.weight"].clone()
    net["sap_linear.weight"][3, 1] = float("nan")
    with pytest.raises(SpkidError, match=r"SYS.model: tensor '__S__.sap_linear.weight' holds NaN or infinite "
                                         r"values; the file is damaged"):
        import_model(tmp_path, vt_checkpoint(net, vt_head("angleproto")))
    assert not (tmp_path / "exp" / "SYS").exists()


def test_options_set_only_what_the_file_cannot_tell(tmp_path):
    s = vt_checkpoint(vt_resnet("L", (8, 16, 16, 32), 40, empty_fb=True), vt_head("angleproto"))
    with pytest.raises(SpkidError, match=r"--channels=16,32,64,128: the checkpoint says 8,16,16,32"):
        import_model(tmp_path, s, "--channels=16,32,64,128", name="a")
    # the filterbank buffer is empty (old torchaudio filled it lazily): the mel bins are an option
    exp = import_model(tmp_path, s, "--n-mels=48", "--num-eval-crops=5", name="b")
    model, _, _, evaluation = read_resolved(exp / "config.conf", SYSTEM_OPTIONS)
    assert (model.n_mels, evaluation.num_eval_crops, evaluation.score_type) == (48, 5, "euclidean")
    with pytest.raises(SpkidError, match="already holds a system"):
        import_model(tmp_path, s, name="b")


@pytest.mark.parametrize("name", ["ResNetSE34L-ap", "ResNetSE34V2-smproto", "ECAPA_TDNN_GLOB_c1024"])
def test_released_shapes_compute_the_source(tmp_path, name):
    """The released networks at full size (not only the narrow ones above) give the source's
    embeddings: two of the ten crops (VT), the whole utterance (wespeaker)."""
    state = RELEASED[name][0]()
    system = load_system(import_model(tmp_path, state, name=name))
    flat = state.get("model_state_dict", state)
    samples = voice(4.5, seed=7)
    with torch.no_grad():
        if "ECAPA" in name:
            ours = system.model(torch.from_numpy(samples)[None]).numpy()
            ref = ws_forward(flat, torch.from_numpy(samples)).numpy()
        else:
            crops = torch.from_numpy(vt_eval_crops(samples)[[0, 9]])
            ours = system.model(crops).numpy()
            ref = vt_forward("L" if "34L" in name else "V2", {k[6:]: v for k, v in flat.items() if k.startswith("__S__.")},
                             crops).numpy()
    assert cosines(ours, ref).min() >= 0.99999


def speech_like(seconds: float, f0: float, seed: int) -> np.ndarray:
    """Voiced stretches with pauses between them at a noise floor near -80 dBFS, as recordings have:
    where log(mel + 1e-6) meets its floor, an int16-scale and a float front-end part ways."""
    rng = np.random.default_rng(seed)
    x = voice(seconds, f0=f0, seed=seed)
    for start in rng.uniform(0, seconds - 0.6, size=3):
        a, n = int(start * 16000), int(rng.uniform(0.3, 0.6) * 16000)
        x[a:a + n] = 1e-4 * rng.standard_normal(n)
    return x


def vt_list(tmp_path, speakers: int = 3, per_speaker: int = 3):
    """wav/<spk>/v/<n>.wav of a few speakers (one utterance shorter than a 400-frame crop) and a
    voxceleb_trainer list of every pair of them, as a data dir with that list under trials/."""
    utts = []
    for k in range(speakers):
        for n in range(per_speaker):
            utt = f"id{k:05d}/v/{n:05d}"
            seconds = 3.9 if (k, n) == (0, 0) else 4.2 + 0.4 * n + 0.2 * k
            samples = speech_like(seconds, f0=95 + 23 * k + 4 * n, seed=10 * k + n)
            (tmp_path / "wav" / utt).parent.mkdir(parents=True, exist_ok=True)
            sf.write(tmp_path / "wav" / f"{utt}.wav", samples, 16000, subtype="FLOAT")
            utts.append(utt)
    lines = [f"{int(a[:7] == b[:7])} {a}.wav {b}.wav" for i, a in enumerate(utts) for b in utts[i + 1:]]
    data = DataDir(tmp_path / "data" / "test", {u: str(tmp_path / "wav" / f"{u}.wav") for u in utts},
                   {u: u[:7] for u in utts}, {}, None)
    data.write()
    (data.path / "trials").mkdir()
    (data.path / "trials" / "vt_list").write_text("\n".join(lines) + "\n")
    return data.path, data.path / "trials" / "vt_list"


extract_step = system_step(ExtractOptions, lambda *args: extract_data(*args, job_command=[]))
score_step = system_step(ScoreOptions, score_set)


def stage4_5_scores(exp, data) -> tuple[np.ndarray, float]:
    """The list's scores and EER as stages 4 and 5 compute them for the imported system."""
    assert extract_step(["--nj=1", "--read-workers=0", str(exp), str(data)]) == 0
    assert score_step([str(exp), str(data)]) == 0
    scores = np.array([float(line.split()[2]) for line in open(exp / "scores" / "test" / "vt_list.score")])
    return scores, json.loads((exp / "scores" / "test" / "vt_list.metrics.json").read_text())["eer_percent"]


def test_todays_paper_code_checkpoint_scores_as_its_evaluate_from_list(tmp_path):
    """A ResNetSE34V2 saved by today's voxceleb_trainer (saveParameters dict), imported with no
    option and scored through stages 4-5, gives the EER its evaluateFromList gives on the same
    list, with scores that correlate at >= 0.99999. Imported at int16 scale (what every file got
    before the layout was read), it does not."""
    torch.set_num_threads(1)
    s = vt_resnet("V2", (8, 8, 8, 16), 16, n_out=32, seed=6)
    data, trials = vt_list(tmp_path)
    vt_scores, labels = vt_evaluate_from_list("V2", s, trials, tmp_path / "wav")
    ours, eer = stage4_5_scores(import_model(tmp_path, vt_checkpoint(s, vt_head("angleproto"))), data)
    assert np.corrcoef(ours, vt_scores)[0, 1] >= 0.99999
    assert eer == pytest.approx(vt_eer(vt_scores, labels), abs=1e-6)
    int16, _ = stage4_5_scores(import_model(tmp_path, vt_checkpoint(s, vt_head("angleproto")), "--input-scale=32768",
                                            name="int16"), data)
    assert np.corrcoef(int16, vt_scores)[0, 1] < 0.9999
