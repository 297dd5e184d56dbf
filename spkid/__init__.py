"""spkid: a Kaldi-style recipe for the speaker-verification systems of Clova AI's VoxSRC 2020 paper.

One subpackage per stage or role; the arrows are the only imports allowed between them
(``tests/test_layout.py`` checks them):

    spkid.corpora   stage 1-2: obtain corpora (download, convert, mini corpus) and prepare data dirs
                    -> data, foundations
    spkid.data      data dirs, audio, sampler, training dataset, augmentation   -> foundations
    spkid.models    front-ends, trunks, pooling                                  -> foundations
    spkid.train     stage 3: ranks, checkpoints, the loop, losses     -> data, models, foundations
    spkid.eval      stages 4-6: extract, score, metrics, fusion, DET, results, export
                    -> data, models, foundations

The foundations every subpackage may use sit at the top: :mod:`spkid.errors` (the one user-error
type), :mod:`spkid.fileio` (atomic writes), :mod:`spkid.config` (Kaldi-style conf parsing),
:mod:`spkid.options` (what a system conf may set), :mod:`spkid.registry` (the trunks and losses
by name), :mod:`spkid.expdir` (the layout of ``exp/<SYS>``: the one place that spells its paths),
:mod:`spkid.cli` (the steps' entry wrapper), :mod:`spkid.console` (progress bars on a terminal,
plain lines and a copy in ``exp/<SYS>/log/`` otherwise),
:mod:`spkid.device` and :mod:`spkid.jobs` (Kaldi's job-runner contract, for ``--cmd``). Nothing in the package runs the command-line scripts under
``steps/``, ``local/`` or ``utils/``; they import the package.
"""

__version__ = "0.1.0"
