"""Stages 4-6 and using a trained system: extraction, scoring, metrics, fusion, DET, results, export.

The paper's evaluation: ``extract`` (ten-crop embeddings), ``scoring`` (cosine, AS-norm),
``metrics`` (EER, MinDCF), ``threshold``, ``fusion``, ``det``, ``results`` and ``paper`` (the
results table against Table 2), ``baseline`` (the MFCC floor), ``usage`` (users' recordings
embedded as test utterances), ``export``. What the steps run: ``extract_set`` (stage 4 of a
data dir), ``score_set`` (stage 5), ``fuse_systems`` and ``results.write_results_table``
(stage 6), ``score_files`` (compute_metrics, plot_det), ``verify``, ``embed``,
``export.export_system``.
May import :mod:`spkid.data`, :mod:`spkid.models` and the foundations; never training.
"""
