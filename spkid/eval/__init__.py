"""Stages 4-6 and using a trained system: extraction, scoring, metrics, fusion, DET, results, export.

``extract`` (ten-crop embeddings), ``scoring`` (cosine, AS-norm), ``metrics`` (EER, MinDCF),
``threshold``, ``fusion``, ``det``, ``results`` and ``paper`` (the results table against Table 2),
``baseline`` (the MFCC floor), ``usage`` (verify/embed users' recordings), ``export``.
May import :mod:`spkid.data`, :mod:`spkid.models` and the foundations; never training.
"""
