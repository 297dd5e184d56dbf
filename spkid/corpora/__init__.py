"""Stages 1-2: obtaining corpora and turning them into Kaldi data directories.

``download`` (resumable, md5-checked HTTP, mirrors tried in order), ``archives`` (joining parts,
extracting), ``convert`` (VoxCeleb2 m4a -> wav), ``sources`` (what is published where: archives,
md5 sums, mirrors), ``credentials``, ``on_disk`` (linking copies already on disk), ``voxsrc``
(the VoxSRC lists' path shapes), ``voxceleb`` (stage 1 for ``--corpus voxceleb``), ``mini`` (the
generated mini corpus), ``prepare`` (stage 2: data dirs and trial lists). May import
:mod:`spkid.data` and the foundations; never models, training or evaluation.
"""
