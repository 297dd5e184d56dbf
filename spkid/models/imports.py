"""Pretrained checkpoints of the paper's code (voxceleb_trainer) and of wespeaker, read as their
sources write them and imported as a spkid system (the mapping itself: :mod:`checkpoint_maps`).

* voxceleb_trainer: ``torch.save`` of its ``SpeakerNet``: the network under ``__S__.``, the loss
  under ``__L__.``, as ``{"model_state_dict", "optimizer_state_dict", "scheduler_state_dict",
  "epoch"}`` (its ``saveParameters`` since April 2026), or the older bare ``state_dict()`` (or
  ``{"model": ...}``). ``ResNetSE34L`` (SAP; 7x7 stem, no bias) becomes our Q_SAP,
  ``ResNetSE34V2`` (ASP; 3x3 stem with bias) our H_ASP. Widths, embedding size, mel bins (the
  ``MelSpectrogram`` filterbank buffer, else the attention's input width) and pre-emphasis (its
  ``PreEmphasis`` buffer, absent in ResNetSE34L) come from the file; the filterbank and window
  buffers are copied, as its loader copies them. The input scale comes from the layout: the
  ``model_state_dict`` dict is float input (x1), a bare state dict is int16 scale (x32768, the
  released models) with a note that it may be either. Loss heads: angleproto, softmaxproto,
  softmax, amsoftmax (``W``, nOut x nClasses) and aamsoftmax (``weight``, nClasses x nOut).
* wespeaker: a bare ``state_dict()`` of ``ECAPA_TDNN_GLOB_c512/c1024`` with its loss head under
  ``projection.`` becomes our ECAPA with ``C,1536`` channels (its aggregation width, read from the
  file), its optional embedding BN (``bn2.``) our ``--embed-bn``, and wespeaker's front-end (Kaldi
  fbank of the int16-scale waveform, mean norm) and pooling floors.

Evaluation defaults are the sources': voxceleb_trainer ten 400-frame crops (its README's; its
``--eval_frames`` default is 300) scored by the mean Euclidean distance of normalised crops;
wespeaker one whole-utterance embedding, cosine. The summary line names where each front-end and
evaluation setting came from: the file, its layout, the source's convention, or your option.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from spkid.config import option, write_resolved
from spkid.errors import SpkidError
from spkid.expdir import SystemDir
from spkid.fileio import atomic_write
from spkid.models import build_model, non_finite_tensors
from spkid.models.checkpoint_maps import (BARE, SAVE_PARAMETERS, VT_DEFAULT_EVAL_FRAMES, WRAPPED, CheckpointError,
                                          Imported, check_head, ecapa_prefixes, ecapa_state, resnet_prefixes,
                                          resnet_state, vt_rest, wespeaker_rest)
from spkid.options import ModelOptions

NETWORKS = {
    "ResNetSE34L": "voxceleb_trainer ResNetSE34L (SAP; baseline_lite_ap.model) -> Q_SAP",
    "ResNetSE34V2": "voxceleb_trainer ResNetSE34V2 (ASP; baseline_v2_ap/smproto.model) -> H_ASP",
    "ECAPA_TDNN_GLOB": "wespeaker ECAPA_TDNN_GLOB_c512/c1024 (ASTP) -> ECAPA",
}
def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """The flat state dict inside a checkpoint file, whichever of the sources' layouts it has, and
    that layout: ``SAVE_PARAMETERS`` (voxceleb_trainer's dict since April 2026), ``WRAPPED``
    (``{"model": ...}``) or ``BARE`` (a ``state_dict()``: wespeaker's, and voxceleb_trainer's before)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} not found: give the downloaded checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, or holding arbitrary objects
        raise CheckpointError(f"{path}: cannot read it as a PyTorch checkpoint ({str(e).splitlines()[0]}); "
                           f"is the download complete?") from None
    layout = BARE
    if isinstance(obj, dict) and "model_state_dict" in obj:
        obj, layout = obj["model_state_dict"], SAVE_PARAMETERS
    elif isinstance(obj, dict) and set(obj) == {"model"} and isinstance(obj["model"], dict):
        obj, layout = {"__S__." + k: v for k, v in obj["model"].items()}, WRAPPED
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors (a voxceleb_trainer .model or a "
                           f"wespeaker avg_model.pt is one)")
    bad = non_finite_tensors(obj)
    if bad:  # imported as it was, it made NaN embeddings; fine-tuning from it stopped as "training diverged"
        raise CheckpointError(f"{path}: tensor '{bad[0]}' holds NaN or infinite values"
                              + (f" ({len(bad)} tensors do)" if len(bad) > 1 else "")
                              + "; the file is damaged or its training diverged: download it again")
    return {k.removeprefix("module."): v for k, v in obj.items()}, layout


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
    state, layout = load_checkpoint(path)
    net, s, h = recognise(state)
    if not net:
        raise unknown_network(path, s)
    if net == "ECAPA_TDNN_GLOB":
        model_opts, ours, unmatched, told = ecapa_state(s)
        imported = wespeaker_rest(net, model_opts, ours, told, h)
    else:
        model_opts, ours, unmatched, told = resnet_state(net, s)
        imported = vt_rest(net, model_opts, ours, told, h, layout)
    if "n_mels" not in told:
        imported.notes.append(f"{path}: the filterbank buffer is empty, so the mel bins are not in the file: "
                              f"{model_opts.n_mels} assumed (--n-mels=N to change)")
    check_keys(path, net, model_opts, ours, unmatched)
    check_head(path, imported.head_state, model_opts.embed_dim)
    return imported


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
    layout = SystemDir(exp_dir)
    model = build_model(imported.options[0])
    model.load_state_dict({**model.state_dict(), **imported.model_state}, strict=True)
    layout.root.mkdir(parents=True, exist_ok=True)
    write_resolved(layout.config, *imported.options,
                   header=f"written by steps/import_model.py from {source} ({imported.network})")
    final = {"model": {k: v.contiguous() for k, v in model.state_dict().items()}, "epoch": 0,
             "num_speakers": imported.num_speakers, "imported_from": str(source), "network": imported.network}
    if imported.head_state is not None:
        final["loss"] = {k: v.contiguous() for k, v in imported.head_state.items()}
    with atomic_write(layout.final, mode="wb", encoding=None) as f:
        torch.save(final, f)
    with atomic_write(layout.trained_marker) as f:
        f.write("")
    return layout.root


@dataclass
class ImportOptions:
    force: bool = option(False, "replace a system already in EXP_DIR (its config.conf and final.pt)")


def import_model(checkpoint: str, exp_dir: str, system: list, opts: ImportOptions, given: set[str]) -> int:
    """Import ``checkpoint`` as the system ``exp_dir``; of the system options ``system`` (option
    groups), those named in ``given`` (set by the user) override what the file says."""
    exp = Path(exp_dir)
    if SystemDir(exp).final.exists() and not opts.force:
        raise SpkidError(f"{exp} already holds a system (final.pt); use another directory or --force=true")
    imported = import_checkpoint(checkpoint)
    overrides = {name: next(getattr(g, name) for g in system if hasattr(g, name)) for name in given - {"force"}}
    apply_overrides(imported, overrides)
    imported.origins.update({name: "your option" for name in overrides})
    if "input_scale" in overrides:  # the user has settled what the note asks
        imported.notes = [n for n in imported.notes if "--input-scale" not in n]
    write_system(imported, exp, checkpoint)
    for note in imported.notes:
        print(f"note: {note}")
    print(summary(imported, checkpoint, exp))
    return 0


def summary(imported: Imported, checkpoint: str, exp: Path) -> str:
    """One line: what was imported, and each front-end and evaluation setting with where it came from."""
    model, loss, _, evaluation = imported.options
    origin = imported.origins
    head = (f"{loss.loss} head over {imported.num_speakers} speakers" if imported.num_speakers
            else f"{loss.loss} head" if imported.head_state is not None else "no loss head")
    if evaluation.num_eval_crops:
        crops = (f"{evaluation.num_eval_crops} crops ({origin['num_eval_crops']}) of {evaluation.eval_frames} frames "
                 f"({origin['eval_frames']}")
        crops += (f"; voxceleb_trainer's --eval_frames default is {VT_DEFAULT_EVAL_FRAMES})"
                  if imported.network.startswith("ResNetSE34") and evaluation.eval_frames != VT_DEFAULT_EVAL_FRAMES else ")")
    else:
        crops = f"whole utterances ({origin['num_eval_crops']})"
    return (f"import_model.py: {checkpoint}: {imported.network} -> {exp} ({model.trunk} {model.channels}, "
            f"{model.embed_dim}-dim; {head}); front-end: {model.frontend} ({origin['frontend']}), "
            f"{model.n_mels} mels ({origin['n_mels']}), "
            f"pre-emphasis {model.preemphasis:g} ({origin['preemphasis']}), input x{model.input_scale:g} "
            f"({origin['input_scale']}); evaluation: {crops}, {evaluation.score_type} ({origin['score_type']})")
