"""Stage 3: training a system — ranks (process group, SIGTERM's agreed stop), slurm (the
rendezvous of one torchrun per node of a Slurm job step), checkpoints (atomic save, RNG
states, resume, pruning, config diff), trainer (the step and the epoch loop) with epoch (an
epoch's running figures), system (one run of steps/train.py), losses, average
(checkpoint averaging), derive (a system that differs from a trained one only in its
back-end or averaging: steps/derive_system.py).

May import :mod:`spkid.data`, :mod:`spkid.models` and the foundations; never evaluation.
"""
