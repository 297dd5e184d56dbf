"""Deploying a trained system: its network (front-end inside) as TorchScript or ONNX.

The exported graph is exactly ``build_model(ModelOptions)`` with the weights of
``exp/<SYS>/final.pt``: a waveform batch ``(batch, samples)`` float32 in [-1, 1] at 16 kHz in,
raw embeddings ``(batch, embed_dim)`` out, both axes dynamic. Evaluation crops (EvalOptions) and
the length normalisation of scoring stay outside the graph, as in ``spkid.eval.extract`` and
``spkid.eval.scoring``, so a deployment reproduces the recipe's scores by cropping and averaging the
same way; the resolved ``config.conf`` travels inside the file (TorchScript extra file
``config.conf``; ONNX metadata ``config.conf``) so the crop settings go with the network.

ONNX goes through ``torch.export`` (``torch.onnx.export(dynamo=True)``): the front-end's complex
STFT has no TorchScript-exporter translation, while the torch.export path lowers it to the ONNX
STFT operator. That path needs an onnxscript that knows the installed torch.
"""

from __future__ import annotations

import copy
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from spkid.config import option
from spkid.errors import SpkidError
from spkid.eval.extract import LoadedSystem, load_system
from spkid.fileio import atomic_paths, check_output_file
from spkid.options import SAMPLE_RATE

FORMATS = ("torchscript", "onnx")
SUFFIXES = {"torchscript": ".pt", "onnx": ".onnx"}
ONNX_OPSET = 18
# The shortest waveform an exported graph is traced for; recordings are at least 0.5 s
# (spkid.data.audio.MIN_SECONDS) and evaluation crops 2-4 s, far above it.
MIN_EXPORT_SAMPLES = 4000


class ExportError(SpkidError):
    pass


def _cpu_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).cpu().float().eval()


def export_torchscript(system: LoadedSystem, out: str | os.PathLike) -> None:
    """``torch.jit.script`` the network (CPU, float32) and save it, ``config.conf`` inside."""
    try:
        scripted = torch.jit.script(_cpu_copy(system.model))
    except Exception as e:
        raise ExportError(f"{system.model_opts.trunk}: the network does not script ({str(e).splitlines()[0]})") from None
    with atomic_paths(out) as (tmp,):
        torch.jit.save(scripted, str(tmp), _extra_files={"config.conf": system.config_text()})


def _check_onnxscript() -> None:
    major, minor = torch.__version__.split(".")[:2]
    api = f"onnxscript._framework_apis.torch_{major}_{minor}"
    try:
        found = importlib.util.find_spec(api) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        try:
            import onnxscript
            have = f"onnxscript {onnxscript.__version__}"
        except ImportError:
            have = "no onnxscript"
        raise ExportError(f"ONNX export with torch {torch.__version__} needs an onnxscript that supports it "
                          f"(found {have}); pip install -U 'onnxscript>=0.7.2'")


def export_onnx(system: LoadedSystem, out: str | os.PathLike, opset: int = ONNX_OPSET) -> None:
    """Export the network to ONNX with dynamic batch and length axes, ``config.conf`` in the metadata."""
    _check_onnxscript()
    model = _cpu_copy(system.model)
    example = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    shapes = ({0: torch.export.Dim("batch"), 1: torch.export.Dim("samples", min=MIN_EXPORT_SAMPLES)},)
    try:
        program = torch.onnx.export(model, (example,), input_names=["wave"], output_names=["embedding"],
                                    dynamo=True, dynamic_shapes=shapes, opset_version=opset, verbose=False)
    except Exception as e:
        raise ExportError(f"{system.model_opts.trunk}: ONNX export failed ({str(e).splitlines()[0]})") from None
    program.model.metadata_props["config.conf"] = system.config_text()
    program.model.metadata_props["sample_rate"] = str(SAMPLE_RATE)
    with atomic_paths(out) as (tmp,):
        program.save(str(tmp))


def export(system: LoadedSystem, fmt: str, out: str | os.PathLike) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    (export_torchscript if fmt == "torchscript" else export_onnx)(system, out)


def load_exported(path: str | os.PathLike, fmt: str) -> Callable[[np.ndarray], np.ndarray]:
    """A function ``wave (B, samples) float32 -> embeddings (B, D)`` running the exported file on CPU:
    TorchScript with ``torch.jit.load``, ONNX with onnxruntime."""
    if fmt == "torchscript":
        module = torch.jit.load(str(path), map_location="cpu")

        def run_ts(wave: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(wave)).numpy()
        return run_ts
    if fmt == "onnx":
        import onnxruntime
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def run_onnx(wave: np.ndarray) -> np.ndarray:
            return session.run(["embedding"], {"wave": wave})[0]
        return run_onnx
    raise ExportError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")


def max_embedding_difference(system: LoadedSystem, run: Callable[[np.ndarray], np.ndarray],
                             lengths: tuple[int, ...] = (8000, 64247),
                             batch: int = 2, seed: int = 0) -> float:
    """Largest absolute difference between the PyTorch network and an exported one on random audio
    of the given lengths (default: 0.5 s, and 7 samples over a 400-frame evaluation crop)."""
    model = _cpu_copy(system.model)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for n in lengths:
        wave = (0.1 * rng.standard_normal((batch, n))).astype(np.float32)
        with torch.inference_mode():
            ref = model(torch.from_numpy(wave)).numpy()
        worst = max(worst, float(np.abs(run(wave) - ref).max()))
    return worst


@dataclass
class ExportRunOptions:
    format: str = option("torchscript", "output format", FORMATS)
    out: str = option("", "output file; empty = EXP/export/model.pt (TorchScript) or .onnx")
    check: bool = option(True, "compare the exported network with the PyTorch one after writing")
    tolerance: float = option(1e-4, "largest absolute embedding difference --check accepts")


def export_system(run: ExportRunOptions, exp_dir: str) -> int:
    """Export ``exp_dir``'s network as ``run`` says, checked against PyTorch before it is renamed
    onto the output file."""
    out = Path(run.out) if run.out else Path(exp_dir) / "export" / f"model{SUFFIXES[run.format]}"
    check_output_file(out, "--out")
    system = load_system(exp_dir)
    line = f"exported {exp_dir} ({system.model_opts.trunk}, {system.model.embed_dim}-dim) to {out} [{run.format}]"
    # written and checked under a temporary name: a file that fails the check never reaches --out
    with atomic_paths(out) as (tmp,):
        export(system, run.format, tmp)
        if run.check:
            diff = max_embedding_difference(system, load_exported(tmp, run.format))
            if not diff <= run.tolerance:
                raise ExportError(f"the export of {exp_dir} differs from the PyTorch network by {diff:.3g} "
                                  f"(> --tolerance={run.tolerance:g}), so {out} was not written; raise --tolerance "
                                  f"if that difference is acceptable")
            line += f"; max |embedding difference| vs PyTorch {diff:.2g}"
    print(line)
    return 0

