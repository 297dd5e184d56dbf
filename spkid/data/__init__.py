"""Data: Kaldi data dirs, reading audio, the speaker-balanced sampler, training crops and augmentation.

``datadir`` (wav.scp/utt2spk/segments/trials, validation), ``audio`` (reading wav.scp entries),
``inputs`` (users' own recordings), ``sampler``, ``dataset`` (crops and the DataLoader),
``augment`` and ``banks`` (MUSAN + RIR augmentation), ``synthetic`` (tiny data for tests and
benches). Imports only the foundations: never models, training or evaluation.
"""
