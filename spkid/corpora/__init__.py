"""Stages 1-2: obtaining corpora and turning them into Kaldi data directories.

``download`` (resumable, md5-checked HTTP), ``convert`` (VoxCeleb2 m4a -> wav), ``voxceleb``
(what stage 1 fetches for ``--corpus voxceleb`` and where it goes), ``mini`` (the generated mini
corpus), ``prepare`` (stage 2: data dirs and trial lists). May import :mod:`spkid.data` and the
foundations; never models, training or evaluation.
"""
