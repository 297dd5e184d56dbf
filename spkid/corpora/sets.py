"""What stage 2 makes: the trial lists it reads into which data dirs, and how the sets it wrote
compare with the published VoxCeleb sizes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrialListSpec:
    list_file: str          # under <corpus>/lists/
    wav_root: str           # under <corpus>/, the list's paths are relative to it
    data_dir: str           # under <data>/
    trial_name: str         # <data>/<data_dir>/trials/<trial_name>
    known_trials: int | None = None   # real VoxCeleb (cleaned lists); None: not checked
    challenge: bool = False           # a VoxSRC list: paths and ids as spkid.corpora.voxsrc reads them


# list file -> wav root -> data dir -> trial name.
TRIAL_LISTS = (
    TrialListSpec("veri_test2.txt", "voxceleb1/wav", "vox1", "vox1_O", 37_611),
    TrialListSpec("list_test_all2.txt", "voxceleb1/wav", "vox1", "vox1_E", 579_818),
    TrialListSpec("list_test_hard2.txt", "voxceleb1/wav", "vox1", "vox1_H", 550_894),
    TrialListSpec("voxsrc2019_test.txt", "voxsrc2019/wav", "voxsrc19_test", "voxsrc19_test", challenge=True),
    TrialListSpec("voxsrc2020_val.txt", "voxsrc2020_val/wav", "voxsrc20_val", "voxsrc20_val", challenge=True),
)
# Real VoxCeleb sizes: (speakers, utterances) per data dir.
KNOWN_SIZES = {"vox2_dev": (5_994, 1_092_009), "vox1": (1_251, 153_516)}


@dataclass
class SetSummary:
    name: str
    utterances: int
    speakers: int
    trials: dict[str, int]


def compare_known(summaries: list[SetSummary]) -> list[str]:
    """Differences from the published VoxCeleb sizes (a partial download shows here)."""
    out = []
    by_name = {s.name: s for s in summaries}
    for name, (spk, utt) in KNOWN_SIZES.items():
        s = by_name.get(name)
        if s and (s.speakers, s.utterances) != (spk, utt):
            out.append(f"{name}: {s.speakers} speakers, {s.utterances} utterances; VoxCeleb has {spk:,} and {utt:,}")
    for spec in TRIAL_LISTS:
        s = by_name.get(spec.data_dir)
        n = s.trials.get(spec.trial_name) if s else None
        if spec.known_trials and n is not None and n != spec.known_trials:
            out.append(f"{spec.trial_name} ({spec.list_file}): {n} trials; the cleaned list has {spec.known_trials:,}")
    return out


def format_summary(summaries: list[SetSummary]) -> str:
    lines = [f"{'set':<16}{'utts':>10}{'spks':>8}  trials"]
    for s in summaries:
        trials = ", ".join(f"{k} {v}" for k, v in s.trials.items())
        lines.append(f"{s.name:<16}{s.utterances:>10}{s.speakers:>8}  {trials}")
    return "\n".join(lines)
