"""Pretrained checkpoints of the paper's code (voxceleb_trainer) and of wespeaker, read as their
sources write them and mapped onto our trunks.

* voxceleb_trainer: ``torch.save`` of ``{"model_state_dict": ..., "optimizer_state_dict": ...}``,
  or the older bare ``state_dict()`` (or ``{"model": ...}``), of its ``SpeakerNet``: the network
  under ``__S__.``, the loss under ``__L__.``. ``ResNetSE34L`` (SAP; 7x7 stem, no bias) becomes our
  Q_SAP, ``ResNetSE34V2`` (ASP; 3x3 stem with bias) our H_ASP. Widths, embedding size, mel bins
  (the ``MelSpectrogram`` filterbank buffer, else the attention's input width) and pre-emphasis
  (its ``PreEmphasis`` buffer, absent in ResNetSE34L) come from the file; the filterbank and window
  buffers are copied, as its loader copies them.
* wespeaker: a bare ``state_dict()`` of ``ECAPA_TDNN_GLOB_c512/c1024`` with its loss head under
  ``projection.`` becomes our ECAPA with ``C,1536`` channels (its aggregation width, read from the
  file), its optional embedding BN (``bn2.``) our ``--embed-bn``, and wespeaker's front-end (Kaldi
  fbank of the int16-scale waveform, mean norm) and pooling floors.

Evaluation defaults are the sources': voxceleb_trainer ten 400-frame crops scored by the mean
Euclidean distance of normalised crops; wespeaker one whole-utterance embedding, cosine.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from spkid.config import option, write_resolved
from spkid.errors import SpkidError
from spkid.fileio import atomic_write
from spkid.models import build_model, non_finite_tensors
from spkid.models.resnet import BLOCKS
from spkid.options import EvalOptions, LossOptions, ModelOptions, TrainOptions

NETWORKS = {
    "ResNetSE34L": "voxceleb_trainer ResNetSE34L (SAP; baseline_lite_ap.model) -> Q_SAP",
    "ResNetSE34V2": "voxceleb_trainer ResNetSE34V2 (ASP; baseline_v2_ap/smproto.model) -> H_ASP",
    "ECAPA_TDNN_GLOB": "wespeaker ECAPA_TDNN_GLOB_c512/c1024 (ASTP) -> ECAPA",
}
# int16-scale waveforms: the released voxceleb_trainer models were trained on scipy wavfile's
# int16 samples (voxceleb_trainer issue #144); wespeaker multiplies by 1 << 15 before its fbank.
INT16_SCALE = 32768.0


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


def load_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The flat state dict inside a checkpoint file, whichever of the sources' layouts it has."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} not found: give the downloaded checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, or holding arbitrary objects
        raise CheckpointError(f"{path}: cannot read it as a PyTorch checkpoint ({str(e).splitlines()[0]}); "
                           f"is the download complete?") from None
    if isinstance(obj, dict) and "model_state_dict" in obj:
        obj = obj["model_state_dict"]
    elif isinstance(obj, dict) and set(obj) == {"model"} and isinstance(obj["model"], dict):
        obj = {"__S__." + k: v for k, v in obj["model"].items()}
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors (a voxceleb_trainer .model or a "
                           f"wespeaker avg_model.pt is one)")
    bad = non_finite_tensors(obj)
    if bad:  # imported as it was, it made NaN embeddings; fine-tuning from it stopped as "training diverged"
        raise CheckpointError(f"{path}: tensor '{bad[0]}' holds NaN or infinite values"
                              + (f" ({len(bad)} tensors do)" if len(bad) > 1 else "")
                              + "; the file is damaged or its training diverged: download it again")
    return {k.removeprefix("module."): v for k, v in obj.items()}


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


def _resnet(net: str, s: dict[str, torch.Tensor]) -> tuple[ModelOptions, dict, list[str], dict]:
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
                         embed_dim=embed_dim, frontend="logmel", preemphasis=float(told["preemphasis"]),
                         input_scale=INT16_SCALE)
    return model, state, unmatched, told


def _ecapa(s: dict[str, torch.Tensor]) -> tuple[ModelOptions, dict, list[str], dict]:
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


def _vt_head(h: dict[str, torch.Tensor]) -> tuple[str, dict | None, int, str]:
    """voxceleb_trainer ``__L__`` keys -> (our loss, head state, speakers, note)."""
    keys = set(h)
    if keys == {"w", "b"}:
        return "ap", {"w": h["w"], "b": h["b"]}, 0, ""
    if keys == {"softmax.fc.weight", "softmax.fc.bias", "angleproto.w", "angleproto.b"}:
        return "ap_softmax", {"softmax.fc.weight": h["softmax.fc.weight"], "softmax.fc.bias": h["softmax.fc.bias"],
                              "ap.w": h["angleproto.w"], "ap.b": h["angleproto.b"]}, int(h["softmax.fc.weight"].shape[0]), ""
    if keys == {"fc.weight", "fc.bias"}:
        return "softmax", {"fc.weight": h["fc.weight"], "fc.bias": h["fc.bias"]}, int(h["fc.weight"].shape[0]), ""
    if keys == {"W"}:
        return ("aam_softmax", {"weight": h["W"].t().contiguous()}, int(h["W"].shape[1]),
                "its amsoftmax and aamsoftmax heads look alike: imported as aam_softmax (--loss=am_softmax to change)")
    return "", None, 0, f"loss head {sorted(keys) or '(none)'} not recognised: not imported"


def recognise(state: dict[str, torch.Tensor]) -> tuple[str, dict, dict]:
    """(network, its own state, its loss head's state) of a flat checkpoint state dict."""
    if any(k.startswith("__S__.") for k in state):
        net = {k[6:]: v for k, v in state.items() if k.startswith("__S__.")}
        head = {k[6:]: v for k, v in state.items() if k.startswith("__L__.")}
        others = [k for k in state if not k.startswith(("__S__.", "__L__."))]
        if others:
            raise CheckpointError(f"voxceleb_trainer checkpoint with keys outside __S__./__L__.: {', '.join(others[:5])}")
    else:
        net = {k: v for k, v in state.items() if not k.startswith("projection.")}
        head = {k[11:]: v for k, v in state.items() if k.startswith("projection.")}
    if "sap_linear.weight" in net and "conv1.weight" in net:
        return "ResNetSE34L", net, head
    if "attention.0.weight" in net and "conv1.weight" in net:
        return "ResNetSE34V2", net, head
    if "layer2.se_res2block.0.conv.weight" in net:
        return "ECAPA_TDNN_GLOB", net, head
    return "", net, head


def import_checkpoint(path: str | os.PathLike) -> Imported:
    """Read ``path``, recognise its network and map it onto ours (see the module docstring)."""
    state = load_checkpoint(path)
    net, s, h = recognise(state)
    if not net:
        raise unknown_network(path, s)
    model_opts, ours, unmatched, told = _ecapa(s) if net == "ECAPA_TDNN_GLOB" else _resnet(net, s)
    notes: list[str] = []
    if net == "ECAPA_TDNN_GLOB":
        loss = LossOptions(loss="aam_softmax", margin=0.2, scale=32.0)
        head = {"weight": h["weight"]} if set(h) == {"weight"} else None
        speakers = int(h["weight"].shape[0]) if head else 0
        if h and head is None:
            notes.append(f"loss head projection.{sorted(h)} not an arc-margin head: not imported")
        evalo = EvalOptions(eval_frames=1, num_eval_crops=0)
        train = TrainOptions(augment=True)
    else:
        name, head, speakers, note = _vt_head(h)
        loss = LossOptions(loss=name) if name else LossOptions()
        notes += [note] if note else []
        evalo = EvalOptions(score_type="euclidean")
        train = TrainOptions(augment=net == "ResNetSE34V2")
    if "n_mels" not in told:
        notes.append(f"{path}: the filterbank buffer is empty, so the mel bins are not in the file: "
                     f"{model_opts.n_mels} assumed (--n-mels=N to change)")
    check_keys(path, net, model_opts, ours, unmatched)
    return Imported(net, [model_opts, loss, train, evalo], ours, head, speakers, told, notes)


def check_keys(path, net: str, opts: ModelOptions, ours: dict, unmatched: list[str]) -> None:
    """Every parameter and buffer of the trunk we build must come from the file, with its shape,
    and every key of the file must land somewhere."""
    want = build_model(opts).state_dict()
    missing = [k for k in want if k.startswith(("trunk.", "embed_bn.")) and k not in ours]
    extra = unmatched + [k for k in ours if k not in want]
    bad = [f"{k} {tuple(ours[k].shape)} (ours {tuple(want[k].shape)})" for k in ours
           if k in want and ours[k].shape != want[k].shape]
    if missing or extra or bad:
        parts = [f"missing (in our names): {', '.join(missing[:8])}" if missing else "",
                 f"unexpected: {', '.join(extra[:8])}" if extra else "",
                 f"shapes differ: {', '.join(bad[:5])}" if bad else ""]
        raise CheckpointError(f"{path} looks like {net} but does not match it: "
                           + "; ".join(p for p in parts if p) + f". Networks known: {known()}")


def unknown_network(path, net: dict) -> CheckpointError:
    """An error naming, for the known network whose keys overlap most, what is missing and what
    unexpected."""
    optional = {"torchfb.", "instancenorm."} | {p for p in resnet_prefixes() if "downsample" in p}
    templates = {"ResNetSE34L": set(resnet_prefixes()) | {"sap_linear.", "attention"} | optional,
                 "ResNetSE34V2": set(resnet_prefixes()) | {"attention."} | optional,
                 "ECAPA_TDNN_GLOB": set(ecapa_prefixes()) | {"bn2."}}

    def matched(prefixes):
        return [k for k in net if any(k.startswith(p) for p in prefixes)]
    best = max(templates, key=lambda n: len(matched(templates[n])))
    have = matched(templates[best])
    missing = sorted(p.rstrip(".") for p in templates[best] - optional - {"bn2."} if not any(k.startswith(p) for k in net))
    unexpected = sorted(set(net) - set(have))
    return CheckpointError(f"{path}: not a network we know. Closest is {best}: missing {', '.join(missing[:8]) or 'nothing'}"
                        f"; unexpected {', '.join(unexpected[:8]) or 'nothing'}. Networks known: {known()}")


def known() -> str:
    return "; ".join(NETWORKS.values())


def apply_overrides(imported: Imported, given: dict[str, object]) -> None:
    """Options the user gave (``{field: value}``) replace the import's defaults; an option the
    file determines may only repeat the file's value."""
    for name, value in given.items():
        if name in imported.told and imported.told[name] != value:
            raise CheckpointError(f"--{name.replace('_', '-')}={value}: the checkpoint says {imported.told[name]}; "
                               f"options only set what the file cannot tell")
        for i, group in enumerate(imported.options):
            if name in {f.name for f in dataclasses.fields(group)}:
                imported.options[i] = dataclasses.replace(group, **{name: value})


def write_system(imported: Imported, exp_dir: str | os.PathLike, source: str | os.PathLike) -> Path:
    """``exp_dir/config.conf``, ``final.pt`` (network, loss head, speakers) and stage 3's marker
    ``.done.train`` (empty: an imported system belongs to no corpus), so that stages 4-6 and the
    steps that take a trained system take it. The network is loaded strictly before anything is
    written."""
    exp_dir = Path(exp_dir)
    model = build_model(imported.options[0])
    model.load_state_dict({**model.state_dict(), **imported.model_state}, strict=True)
    exp_dir.mkdir(parents=True, exist_ok=True)
    write_resolved(exp_dir / "config.conf", *imported.options,
                   header=f"written by steps/import_model.py from {source} ({imported.network})")
    final = {"model": {k: v.contiguous() for k, v in model.state_dict().items()}, "epoch": 0,
             "num_speakers": imported.num_speakers, "imported_from": str(source), "network": imported.network}
    if imported.head_state is not None:
        final["loss"] = {k: v.contiguous() for k, v in imported.head_state.items()}
    with atomic_write(exp_dir / "final.pt", mode="wb", encoding=None) as f:
        torch.save(final, f)
    with atomic_write(exp_dir / ".done.train") as f:
        f.write("")
    return exp_dir


@dataclass
class ImportOptions:
    force: bool = option(False, "replace a system already in EXP_DIR (its config.conf and final.pt)")


def import_model(checkpoint: str, exp_dir: str, system: list, opts: ImportOptions, given: set[str]) -> int:
    """Import ``checkpoint`` as the system ``exp_dir``; of the system options ``system`` (every
    SYSTEM_OPTIONS group), those named in ``given`` (set by the user) override what the file says."""
    exp = Path(exp_dir)
    if (exp / "final.pt").exists() and not opts.force:
        raise SpkidError(f"{exp} already holds a system (final.pt); use another directory or --force=true")
    imported = import_checkpoint(checkpoint)
    apply_overrides(imported, {name: next(getattr(g, name) for g in system if hasattr(g, name))
                               for name in given - {"force"}})
    write_system(imported, exp, checkpoint)
    model, loss, _, evalo = imported.options
    for note in imported.notes:
        print(f"note: {note}")
    head = (f"{loss.loss} head over {imported.num_speakers} speakers" if imported.num_speakers
            else f"{loss.loss} head" if imported.head_state is not None else "no loss head")
    crops = f"{evalo.num_eval_crops} crops of {evalo.eval_frames} frames" if evalo.num_eval_crops else "whole utterances"
    print(f"import_model.py: {checkpoint}: {imported.network} -> {exp} ({model.trunk} {model.channels}, "
          f"{model.embed_dim}-dim, {model.frontend} front-end, input x{model.input_scale:g}; {head}; "
          f"evaluation: {crops}, {evalo.score_type})")
    return 0

