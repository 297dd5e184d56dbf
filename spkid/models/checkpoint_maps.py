"""How each source's checkpoint maps onto our trunks: key renames, the options the file tells
(widths, embedding size, mel bins, pre-emphasis), the loss head, and the settings the file does
not hold, with where each came from (see :mod:`spkid.models.imports` for the sources' layouts).

voxceleb_trainer's evaluation crop: its README evaluates the paper's models at 400 frames, our
default; its trainSpeakerNet.py's ``--eval_frames`` defaults to 300.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from spkid.errors import SpkidError
from spkid.models.resnet import BLOCKS
from spkid.options import EvalOptions, LossOptions, ModelOptions, TrainOptions

# int16-scale waveforms: the released voxceleb_trainer models were trained on scipy wavfile's
# int16 samples (voxceleb_trainer issue #144); wespeaker multiplies by 1 << 15 before its fbank.
INT16_SCALE = 32768.0
# The checkpoint layouts spkid.models.imports.load_checkpoint tells apart.
SAVE_PARAMETERS, WRAPPED, BARE = "saveParameters dict", "{'model': ...} dict", "bare state dict"
VT_DEFAULT_EVAL_FRAMES = 300


class CheckpointError(SpkidError):
    pass


@dataclass
class Imported:
    """A checkpoint mapped onto one of our trunks: the options a system is built from, the
    network's state dict in our names and the loss head's (``None`` when not recognised)."""
    network: str
    options: list  # ModelOptions, LossOptions, TrainOptions, EvalOptions
    model_state: dict[str, torch.Tensor]
    head_state: dict[str, torch.Tensor] | None
    num_speakers: int
    told: dict[str, object] = field(default_factory=dict)  # option -> value the file determines
    notes: list[str] = field(default_factory=list)
    origins: dict[str, str] = field(default_factory=dict)  # front-end option -> where its value came from


def resnet_prefixes(blocks=BLOCKS) -> dict[str, str]:
    """voxceleb_trainer's ResNetSE key prefixes -> ours (without the ``trunk.`` of ours)."""
    out = {"conv1.": "conv1.", "bn1.": "bn1.", "fc.": "fc."}
    for layer, n in enumerate(blocks, 1):
        out[f"layer{layer}.0.downsample."] = f"layer{layer}.0.shortcut."
        out.update({f"layer{layer}.{i}.": f"layer{layer}.{i}." for i in range(n)})
    return out


def ecapa_prefixes() -> dict[str, str]:
    """wespeaker's ECAPA_TDNN key prefixes -> ours."""
    out = {"layer1.conv.": "conv1.0.", "layer1.bn.": "conv1.2.", "conv.": "mfa.0.",
           "pool.linear1.": "pool.attention.0.", "pool.linear2.": "pool.attention.2.",
           "bn.": "pool_bn.", "linear.": "fc."}
    for k in (2, 3, 4):
        src, ours = f"layer{k}.se_res2block.", f"layer{k - 1}."
        out.update({src + "0.conv.": ours + "conv1.0.", src + "0.bn.": ours + "conv1.2.",
                    src + "2.conv.": ours + "conv3.0.", src + "2.bn.": ours + "conv3.2.",
                    src + "3.linear1.": ours + "se.fc.0.", src + "3.linear2.": ours + "se.fc.2."})
        for i in range(7):
            out[f"{src}1.convs.{i}."] = f"{ours}res2.convs.{i}.0."
            out[f"{src}1.bns.{i}."] = f"{ours}res2.convs.{i}.2."
    return out


def rename(state: dict[str, torch.Tensor], prefixes: dict[str, str]) -> tuple[dict, list[str]]:
    """``state`` with each key's longest matching prefix replaced (ours get ``trunk.``); the keys
    no prefix matches are returned apart."""
    order = sorted(prefixes, key=len, reverse=True)
    out, unmatched = {}, []
    for key, value in state.items():
        src = next((p for p in order if key.startswith(p)), None)
        if src is None:
            unmatched.append(key)
        else:
            out["trunk." + prefixes[src] + key[len(src):]] = value
    return out, unmatched


def _fb_bins(state: dict, key: str) -> int:
    fb = state.get(key)
    return int(fb.shape[1]) if fb is not None and fb.dim() == 2 and fb.numel() else 0


def resnet_state(net: str, s: dict[str, torch.Tensor]) -> tuple[ModelOptions, dict, list[str], dict]:
    """ResNetSE34L / ResNetSE34V2 network state (``__S__.`` stripped) -> our options and state."""
    try:
        widths = [int(s[f"layer{i}.0.conv1.weight"].shape[0]) for i in range(1, 5)]
        embed_dim = int(s["fc.weight"].shape[0])
        fc_in = int(s["fc.weight"].shape[1])
    except KeyError as e:
        raise CheckpointError(f"{net}: the checkpoint has no {e.args[0]}") from None
    blocks = tuple(len({k.split(".")[1] for k in s if k.startswith(f"layer{i}.") and k.endswith(".conv1.weight")})
                   for i in range(1, 5))
    if blocks != BLOCKS:
        raise CheckpointError(f"{net}: {blocks} blocks per stage, not ResNet-34's {BLOCKS}")
    fb_key = "torchfb.1.mel_scale.fb" if "torchfb.1.mel_scale.fb" in s else "torchfb.mel_scale.fb"
    window_key = fb_key.replace("mel_scale.fb", "spectrogram.window")
    n_mels = _fb_bins(s, fb_key)
    told: dict[str, object] = {"trunk": "Q_SAP" if net == "ResNetSE34L" else "H_ASP",
                               "channels": ",".join(map(str, widths)), "embed_dim": embed_dim, "frontend": "logmel"}
    ff = s.get("torchfb.0.flipped_filter")
    told["preemphasis"] = round(-float(ff.flatten()[0]), 6) if ff is not None else 0.0
    prefixes = resnet_prefixes()
    if net == "ResNetSE34L":
        if fc_in != widths[3]:
            raise CheckpointError(f"ResNetSE34L: fc takes {fc_in} inputs, not {widths[3]}: its encoder is ASP, "
                               f"and only the SAP encoder is our Q_SAP")
        prefixes["sap_linear."] = "pool.linear."
        state, unmatched = rename(s, prefixes)
        if "attention" in s:
            state["trunk.pool.context"] = s["attention"].reshape(-1)
            unmatched.remove("attention")
    else:
        att_in = int(s["attention.0.weight"].shape[1])
        if fc_in != 2 * att_in:
            raise CheckpointError(f"ResNetSE34V2: fc takes {fc_in} inputs, not 2 x {att_in}: its encoder is SAP, "
                               f"and only the ASP encoder is our H_ASP")
        from_attention = 8 * att_in // widths[3]
        if n_mels and n_mels != from_attention:
            raise CheckpointError(f"ResNetSE34V2: the filterbank has {n_mels} mel bins but the attention takes "
                               f"{att_in} = {widths[3]} x {from_attention}/8 channels")
        n_mels = from_attention
        prefixes["attention."] = "pool.attention."
        state, unmatched = rename(s, prefixes)
    if n_mels:
        told["n_mels"] = n_mels
    for key, ours in ((fb_key, "frontend.logmel.mel.mel_scale.fb"), (window_key, "frontend.logmel.mel.spectrogram.window")):
        if key in s and s[key].numel():
            state[ours] = s[key]
        if key in unmatched:
            unmatched.remove(key)
    unmatched = [k for k in unmatched if k != "torchfb.0.flipped_filter" and not k.startswith("instancenorm.")]
    model = ModelOptions(trunk=str(told["trunk"]), channels=str(told["channels"]), n_mels=n_mels or 40,
                         embed_dim=embed_dim, frontend="logmel", preemphasis=float(told["preemphasis"]))
    return model, state, unmatched, told


def ecapa_state(s: dict[str, torch.Tensor]) -> tuple[ModelOptions, dict, list[str], dict]:
    try:
        c, feat_dim = (int(v) for v in s["layer1.conv.weight"].shape[:2])
        mfa = int(s["conv.weight"].shape[0])
        att_in = int(s["pool.linear1.weight"].shape[1])
        embed_dim = int(s["linear.weight"].shape[0])
    except KeyError as e:
        raise CheckpointError(f"ECAPA_TDNN: the checkpoint has no {e.args[0]}") from None
    if att_in != 3 * mfa:
        raise CheckpointError(f"ECAPA_TDNN: the pooling's attention takes {att_in} channels, not 3 x {mfa}: it is "
                           f"ECAPA_TDNN_c{c} without global context; our ECAPA is ECAPA_TDNN_GLOB_c{c}")
    emb_bn = {k[4:]: v for k, v in s.items() if k.startswith("bn2.")}
    state, unmatched = rename({k: v for k, v in s.items() if not k.startswith("bn2.")}, ecapa_prefixes())
    state.update({"embed_bn." + k: v for k, v in emb_bn.items()})
    for key in [k for k in state if k.startswith("trunk.layer") and ".se.fc." in k and k.endswith(".weight")]:
        state[key] = state[key].unsqueeze(-1)  # its SE Linear -> our 1x1 Conv1d
    told = {"trunk": "ECAPA", "channels": f"{c},{mfa}", "n_mels": feat_dim, "embed_dim": embed_dim,
            "embed_bn": bool(emb_bn)}
    model = ModelOptions(trunk="ECAPA", channels=f"{c},{mfa}", n_mels=feat_dim, embed_dim=embed_dim, embed_bn=bool(emb_bn),
                         frontend="fbank", preemphasis=0.97, input_scale=INT16_SCALE,
                         pool_std_floor=1e-10, context_std="unbiased")
    return model, state, unmatched, told


def vt_head(h: dict[str, torch.Tensor]) -> tuple[str, dict | None, int, str]:
    """voxceleb_trainer ``__L__`` keys -> (our loss, head state, speakers, note). Its amsoftmax
    holds ``W`` (nOut, nClasses), its aamsoftmax ``weight`` (nClasses, nOut): ours is (speakers, dim)."""
    keys = set(h)
    margin_note = ("the margin and scale are not in the file: fine-tuning takes --margin and --scale "
                   "(the paper's 0.2 and 30 unless given; voxceleb_trainer's defaults are 0.1 and 30)")
    if keys == {"w", "b"}:
        return "ap", {"w": h["w"], "b": h["b"]}, 0, ""
    if keys == {"softmax.fc.weight", "softmax.fc.bias", "angleproto.w", "angleproto.b"}:
        return "ap_softmax", {"softmax.fc.weight": h["softmax.fc.weight"], "softmax.fc.bias": h["softmax.fc.bias"],
                              "ap.w": h["angleproto.w"], "ap.b": h["angleproto.b"]}, int(h["softmax.fc.weight"].shape[0]), ""
    if keys == {"fc.weight", "fc.bias"}:
        return "softmax", {"fc.weight": h["fc.weight"], "fc.bias": h["fc.bias"]}, int(h["fc.weight"].shape[0]), ""
    if keys == {"W"} and h["W"].dim() == 2:
        return "am_softmax", {"weight": h["W"].t().contiguous()}, int(h["W"].shape[1]), margin_note
    if keys == {"weight"} and h["weight"].dim() == 2:
        return "aam_softmax", {"weight": h["weight"]}, int(h["weight"].shape[0]), margin_note
    return "", None, 0, f"loss head {sorted(keys) or '(none)'} not recognised: not imported"


def check_head(path, head: dict | None, embed_dim: int) -> None:
    """A head's class vectors (speakers, dim) must be of the network's embedding size."""
    for key, value in (head or {}).items():
        if value.dim() == 2 and value.shape[1] != embed_dim:
            raise CheckpointError(f"{path}: the loss head's class vectors are {value.shape[0]} x {value.shape[1]} "
                                  f"(speakers x dim), but the network's embedding has {embed_dim} dimensions: "
                                  f"not a head of this network")


def vt_input_scale(layout: str) -> tuple[float, str, str]:
    """(input scale, its origin, a note) of a voxceleb_trainer checkpoint, from the one piece of
    evidence the file holds: its layout. voxceleb_trainer read int16-scale samples (scipy's
    wavfile) until April 2021 and floats (soundfile) since; its saveParameters has written the
    ``model_state_dict`` dict since April 2026 and a bare state dict before. The dict therefore
    means float input; a bare state dict may be either (the released baseline_lite_ap and
    baseline_v2 models are int16, user files of 2021-2026 float)."""
    if layout == SAVE_PARAMETERS:
        return 1.0, "file layout: saveParameters dict", ""
    return INT16_SCALE, f"default for a {layout}", (
        f"the file is a {layout}, which voxceleb_trainer wrote both for its released models (trained on "
        f"int16-scale audio, before April 2021) and for networks trained on float audio (April 2021 to "
        f"April 2026): taken as int16 scale (input x32768, right for baseline_lite_ap.model and "
        f"baseline_v2_*.model); give --input-scale=1 for a network trained by voxceleb_trainer after April 2021")


def wespeaker_rest(net: str, model_opts: ModelOptions, ours: dict, told: dict, h: dict) -> Imported:
    """An ECAPA_TDNN_GLOB's loss head, training and evaluation options: wespeaker's."""
    loss = LossOptions(loss="aam_softmax", margin=0.2, scale=32.0)
    head = {"weight": h["weight"]} if set(h) == {"weight"} else None
    notes = [f"loss head projection.{sorted(h)} not an arc-margin head: not imported"] if h and head is None else []
    origins = {"frontend": "wespeaker's", "n_mels": "file", "preemphasis": "wespeaker's", "input_scale": "wespeaker's",
               "eval_frames": "wespeaker's", "num_eval_crops": "wespeaker's", "score_type": "wespeaker's"}
    return Imported(net, [model_opts, loss, TrainOptions(augment=True), EvalOptions(eval_frames=1, num_eval_crops=0)],
                    ours, head, int(h["weight"].shape[0]) if head else 0, told, notes, origins)


def vt_rest(net: str, model_opts: ModelOptions, ours: dict, told: dict, h: dict, layout: str) -> Imported:
    """A voxceleb_trainer network's loss head, input scale (from the file's layout), training and
    evaluation options."""
    name, head, speakers, note = vt_head(h)
    if name:
        told["loss"] = name
    scale, scale_origin, scale_note = vt_input_scale(layout)
    origins = {"frontend": "file", "n_mels": "file" if "n_mels" in told else "default", "preemphasis": "file",
               "input_scale": scale_origin, "eval_frames": "voxceleb_trainer's README",
               "num_eval_crops": "voxceleb_trainer's", "score_type": "voxceleb_trainer's"}
    options = [dataclasses.replace(model_opts, input_scale=scale), LossOptions(loss=name) if name else LossOptions(),
               TrainOptions(augment=net == "ResNetSE34V2"), EvalOptions(score_type="euclidean")]
    return Imported(net, options, ours, head, speakers, told, [n for n in (note, scale_note) if n], origins)
