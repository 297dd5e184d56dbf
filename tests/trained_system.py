"""A tiny fake experiment dir (config.conf + final.pt, as training writes them) for the usage tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch

from spkid.config import parse_options, write_resolved
from spkid.eval.metrics import compute_metrics
from spkid.models import build_model
from spkid.options import SYSTEM_CONF, EvalOptions, LossOptions, ModelOptions, TrainOptions

# targets 0.9 0.8 0.4, non-targets 0.5 0.3 0.2 0.1; a trial is accepted when score >= t.
# EER point: t=0.5 (FNR 1/3, FPR 1/4); MinDCF(0.05) point: t=0.8 (cost 0.05/3, no false alarm).
SCORES = [0.9, 0.8, 0.4, 0.5, 0.3, 0.2, 0.1]
LABELS = [1, 1, 1, 0, 0, 0, 0]

TINY_MODEL = ModelOptions(trunk="Q_SAP", channels="4,8,8,8", embed_dim=32)
# Short crops keep the tests fast; the crop logic is the evaluation's either way.
TINY_EVAL = EvalOptions(eval_frames=100, num_eval_crops=10)


def make_experiment(exp_dir: Path, model_opts: ModelOptions = TINY_MODEL, eval_opts: EvalOptions = TINY_EVAL,
                    seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = build_model(model_opts)
    # non-trivial BN statistics, so eval mode differs from a fresh network
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    exp_dir.mkdir(parents=True, exist_ok=True)
    write_resolved(exp_dir / "config.conf", model_opts, LossOptions(), TrainOptions(), eval_opts)
    torch.save({"model": model.state_dict(), "epoch": 1, "num_speakers": 2}, exp_dir / "final.pt")
    return exp_dir


def voice(seconds: float, rate: int = 16000, f0: float = 120.0, seed: int = 0, amp: float = 0.3) -> np.ndarray:
    """A buzzy harmonic tone with a little noise: speech-like enough for a network to embed."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 12) if f0 * k < rate / 2)
    x = x + 0.05 * rng.standard_normal(len(t))
    return (amp * x / np.abs(x).max()).astype(np.float32)


def write_voice(path: Path, seconds: float = 2.0, rate: int = 16000, f0: float = 120.0, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, voice(seconds, rate, f0, seed), rate)
    return path


def system_step(stage_options: type, stage: Callable[..., int]) -> Callable[[list[str]], int]:
    """``main(argv)`` of a step run on a trained system's EXP_DIR and a DATA_DIR, as
    steps/extract.py and steps/score.py parse it: the system's config.conf, then ``argv``."""
    def main(argv: list[str]) -> int:
        args = parse_options([stage_options, EvalOptions], argv, ["exp_dir", "data_dir"], saved=SYSTEM_CONF)
        return stage(Path(args.positionals["exp_dir"]), Path(args.positionals["data_dir"]), args[stage_options],
                     args[EvalOptions])
    return main


def save_metrics(exp_dir: Path, data_set: str, trial_list: str, scores=SCORES, labels=LABELS,
                 score_type: str = "cosine", as_norm: bool = False) -> None:
    """What steps/score.py writes next to a list's scores."""
    out = exp_dir / "scores" / data_set / f"{trial_list}.metrics.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**compute_metrics(scores, labels).to_json(), "score_type": score_type,
                               "as_norm": as_norm}))


def record_set(emb_dir: Path, final: Path | None = None) -> None:
    """The provenance record stage 4 leaves beside an embeddings set written by hand (its
    embeddings.{ark,scp} and utt2spk when there), made from ``final`` when given."""
    from spkid.expdir import Record

    files = [emb_dir / n for n in ("embeddings.ark", "embeddings.scp", "utt2spk") if (emb_dir / n).is_file()]
    Record.made_from(emb_dir, 4, f"steps/extract.sh {emb_dir.parent.parent} DATA",
                     {"final.pt": final} if final else {}).write(files)
