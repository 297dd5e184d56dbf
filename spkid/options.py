"""The options of a system: what a ``conf/<SYSTEM>.conf`` may set.

Each group is a dataclass; together they are ``SYSTEM_OPTIONS``. Training writes the resolved
values to ``exp/<SYS>/config.conf`` and extraction and scoring read them back from there, so
an experiment describes itself. Defaults are the paper's (see the README); a value of
0 or "" where noted means "the trunk's paper value".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spkid.config import SavedConf, option
from spkid.errors import SpkidError
from spkid.expdir import SystemDir
from spkid.registry import FRONTENDS, LOSSES, TRUNKS

SAMPLE_RATE = 16000  # Hz: every waveform a system takes; corpora are converted and recordings resampled to it
MIN_FRAMES = 1  # a crop of frames*160+240 samples: 0 frames (240 samples) is shorter than the STFT window
MAX_SEED = 2**32 - 1  # numpy's generators refuse a negative seed, torch's one past 64 bits: one range for all


@dataclass
class ModelOptions:
    trunk: str = option("H_ASP", "the embedding network (paper section 2.1)", TRUNKS)
    channels: str = option("", "comma-separated channel widths; empty = the trunk's paper widths (see --trunk)")
    n_mels: int = option(0, "feature bins; 0 = the trunk's paper value (see --trunk)")
    embed_dim: int = option(0, "embedding size; 0 = the trunk's paper value (see --trunk)")
    embed_bn: bool = option(False, "BatchNorm1d on the embedding after the final Linear ('BN' in Table 2)")
    frontend: str = option("paper", "the features the trunk reads (no parameters)", FRONTENDS)
    preemphasis: float = option(0.97, "pre-emphasis coefficient (y[0] = x[0] - a*x[1], as the paper's code); 0 = none (the paper's code's ResNetSE34L); fbank: Kaldi's per-frame pre-emphasis", min=0.0)
    input_scale: float = option(1.0, "waveform multiplier before the front-end: 1 for floats in [-1, 1]; 32768 for networks trained on int16-scale waveforms (the paper's code's released V2 models, its issue #144; wespeaker's fbank)", min=1e-6)
    pool_std_floor: float = option(1e-5, "pooling (trunks with statistics pooling): standard deviations are sqrt(max(variance, floor)) (the paper's code: 1e-5; wespeaker: 1e-10)", min=0.0)
    context_std: str = option("biased", "context-attentive pooling (ECAPA): the global-context std: biased = sqrt(max(biased variance, floor)); unbiased = sqrt(unbiased variance + floor) (wespeaker)", ("biased", "unbiased"))


@dataclass
class LossOptions:
    loss: str = option("aam_softmax", "training objective (paper section 2.2)", LOSSES)
    margin: float = option(0.2, "AM/AAM-softmax margin m")
    scale: float = option(30.0, "AM/AAM-softmax scale s")
    ap_init_w: float = option(10.0, "Angular Prototypical: initial scale w (kept positive)")
    ap_init_b: float = option(-5.0, "Angular Prototypical: initial bias b")

    def problems(self) -> dict[str, str]:
        """The margin and scale a margin loss cannot train with (its entry's ``margin_below``), and why."""
        entry = LOSSES[self.loss]
        if entry.margin_below is None:
            return {}
        upper, why = entry.margin_below
        out = {}
        if not 0.0 <= self.margin < upper:
            out["margin"] = (f"is out of range for --loss={self.loss}: the margin must be at least 0 (a negative one "
                             f"rewards the target class) and below {why}, so a sample on its own class vector "
                             f"would score no higher than an orthogonal class; the paper uses 0.2")
        if not self.scale > 0:
            out["scale"] = (f"is out of range for --loss={self.loss}: the scale must be greater than 0 (at 0 every "
                            f"class is equally likely whatever the embedding, below 0 the wrong classes win); "
                            f"the paper uses 30")
        return out


@dataclass
class TrainOptions:
    epochs: int = option(250, "training epochs", min=1)
    batch_size: int = option(200, "utterances per global batch (all ranks together): 200 classification, 400 metric losses", min=1)
    n_per_speaker: int = option(0, "utterances of one speaker in a batch (M); 0 = the loss's (see --loss)", min=0)
    max_seg_per_spk: int = option(500, "per epoch, at most this many utterances of one speaker")
    train_frames: int = option(200, "training crop in frames: frames*160+240 samples (200 = 2.015 s)", min=MIN_FRAMES)
    augment: bool = option(False, "online MUSAN+RIR augmentation: clean/reverb/music/babble/noise, equal odds")
    batched_augment: str = option("auto", "where augmentation runs: false: per utterance in the DataLoader workers; true: whole batches on the training device, the packed MUSAN banks and the RIRs held there and the workers sending only the draws; auto: the faster of the two as measured for the device (docs/benchmarks.md): false on a GPU, true on a CPU", ("auto", "true", "false"))
    aug_bank_max_gb: float = option(-1.0, "batched augmentation: hold the packed MUSAN banks (16-bit) and the RIRs on the training device when they take at most this many GiB (real MUSAN: ~12 GiB), else the workers augment per utterance; -1: a quarter of the device's memory (16 GiB on a CPU); 0: never")
    lr: float = option(0.001, "Adam learning rate", min=0.0)
    weight_decay: float = option(5e-5, "Adam weight decay", min=0.0)
    lr_decay: float = option(0.75, "StepLR factor", min=0.0)
    lr_step: int = option(16, "StepLR period in epochs", min=1)
    amp: str = option("fp16", "mixed precision on CUDA (ignored on CPU): fp16 with a gradient scaler, bf16, or none", ("fp16", "bf16", "none"))
    compile: bool = option(False, "torch.compile the trunk and loss head")
    compile_mode: str = option("default", "torch.compile mode with --compile true: default; reduce-overhead (CUDA graphs: the fixed-shape step replayed as one graph, for launch-bound steps); max-autotune", ("default", "reduce-overhead", "max-autotune"))
    num_workers: int = option(4, "DataLoader worker processes per rank", min=0)
    seed: int = option(1, "random seed (sampler, crops, augmentation, initialisation)", min=0, max=MAX_SEED)
    average_last: int = option(0, "final.pt = the mean of the last N epochs' parameters and batch-norm statistics (the N checkpoints are kept); 0: the last epoch's", min=0)


@dataclass
class EvalOptions:
    eval_frames: int = option(400, "evaluation crop in frames (400 = 4.015 s)", min=MIN_FRAMES)
    num_eval_crops: int = option(10, "evenly spaced crops per test utterance; 0 = the whole utterance", min=0)
    score_type: str = option("cosine", "cosine: mean of crop-by-crop cosine similarities (paper); euclidean: -mean distance (paper's code); plda: LDA then two-covariance PLDA log-likelihood ratio, trained on the cohort's training utterances", ("cosine", "euclidean", "plda"))
    lda_dim: int = option(200, "PLDA scoring: LDA dimension before PLDA (capped at the embedding size and the training speakers - 1)", min=1)
    mean_subtract: bool = option(False, "subtract the mean raw crop embedding of the cohort's training utterances (stage 4's --cohort-data) before length normalisation and scoring")
    as_norm: bool = option(False, "adaptive score normalisation against training-speaker cohort")
    as_norm_top_n: int = option(300, "AS-norm: top-N cohort scores per side", min=1)
    cohort_utts_per_spk: int = option(10, "AS-norm cohort: utterances extracted per training speaker (evenly spaced in its sorted list; 0 = all)", min=0)
    qmf: bool = option(False, "quality-aware calibration: logistic regression over the score, log durations, embedding norms and AS-norm imposter means, trained on --qmf-trials, applied to every list")
    qmf_trials: str = option("voxsrc20_val/voxsrc20_val", "QMF: the held trial list it is trained on, SET/LIST under the data dirs' parent (data/SET/trials/LIST)")
    p_target: float = option(0.05, "MinDCF prior (the paper's 0.05; NIST SRE often uses 0.01)")


SYSTEM_OPTIONS = (ModelOptions, LossOptions, TrainOptions, EvalOptions)


def n_per_speaker(model_loss: LossOptions, train: TrainOptions) -> int:
    """Utterances per speaker per batch: --n-per-speaker, else the loss's (M=2 for the metric
    losses, paper section 2.2)."""
    if train.n_per_speaker:
        return train.n_per_speaker
    return LOSSES[model_loss.loss].per_speaker


def exp_config(positionals: dict[str, str]) -> Path:
    """``EXP_DIR/config.conf`` of a step run on a trained system (positional argument ``exp_dir``)."""
    conf = SystemDir(positionals["exp_dir"]).config
    if not conf.is_file():
        raise SpkidError(f"{conf} not found: train the system first (stage 3) or give a trained exp dir")
    return conf


# A step run on a trained system (extraction, scoring) reads the system's options from the
# config.conf training wrote; its command line may change only the groups it lists itself.
SYSTEM_CONF = SavedConf(SYSTEM_OPTIONS, exp_config, "EXP_DIR/config.conf")
