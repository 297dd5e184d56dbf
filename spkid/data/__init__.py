"""Data: Kaldi data dirs, reading audio, the speaker-balanced sampler, training crops and augmentation.

``datadir`` (wav.scp/utt2spk/segments/trials, lengths), ``validate`` (Kaldi's rules for a data
dir), ``audio`` (reading wav.scp entries and training crops), ``inputs`` (users' own
recordings), ``sampler``, ``dataset`` (the crop dataset and the DataLoader), ``augment`` (MUSAN + RIR augmentation: draws, mixing, the
packed banks, the modes), ``synthetic`` (tiny data for tests and benches). Imports only the
foundations: never models, training or evaluation.
"""
