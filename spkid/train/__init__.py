"""Stage 3: training a system — ranks and process group, checkpoints, the loop, the losses.

May import :mod:`spkid.data`, :mod:`spkid.models` and the foundations; never evaluation.
"""
