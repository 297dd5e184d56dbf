#!/usr/bin/env python3
"""What running stage 4's jobs through Slurm costs and buys: one extraction, timed with the local
runner (the parts as threads of the step) and as Slurm jobs on the one-node test cluster
(tests/slurm_cluster.py: munged, slurmctld, slurmd on localhost; needs slurm-wlm and munge).

    python bench/cluster_extract.py [--utts 48] [--seconds 4] [--channels 8,16,32,64] [--nj 2]

The same set (a Q/SAP network, ten 2-s crops per utterance, synthetic audio) is extracted with
--nj 2 three ways: locally (the default: the parts are threads of the step), as Slurm jobs run
at once (each on its own CPU, as two nodes would run them), and as Slurm jobs one at a time
(--max-jobs-run=1: what half the cluster gives). Every run's embeddings.ark is checked
byte-equal to the local one. Slurm against local is what a job costs (scheduling, a process,
torch start-up and loading the network, per job); one at a time against at once is what the
second slot, or node, buys.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


from spkid.data.synthetic import make_noise_set
from spkid.options import EvalOptions, ModelOptions

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from slurm_cluster import start_cluster  # noqa: E402  (the tests' cluster, started here the same way)
from trained_system import make_experiment  # noqa: E402  (the tests' untrained system)




def extract(exp: Path, data: Path, nj: int, cmd: str, env: dict) -> float:
    shutil.rmtree(exp / "embeddings", ignore_errors=True)
    start = time.perf_counter()
    p = subprocess.run([str(ROOT / "steps" / "extract.sh"), f"--nj={nj}", "--read-workers=0", "--cmd", cmd,
                        str(exp), str(data)], capture_output=True, text=True, env=env)
    took = time.perf_counter() - start
    if p.returncode != 0:
        raise SystemExit(f"extraction failed ({cmd}, --nj {nj}):\n{p.stdout}{p.stderr}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utts", type=int, default=48)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--channels", default="8,16,32,64")
    ap.add_argument("--nj", type=int, default=2)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="spkid-bench-cluster-"))
    cluster = start_cluster()
    try:
        exp = make_experiment(root / "exp" / "B", ModelOptions(trunk="Q_SAP", channels=args.channels, n_mels=40,
                                                               embed_dim=128), EvalOptions(eval_frames=200, num_eval_crops=10))
        data = make_noise_set(root, args.utts, args.seconds, speakers=4).path
        ark = exp / "embeddings" / "set" / "embeddings.ark"
        print(f"stage 4 of {args.utts} utterances of {args.seconds:g} s, Q/SAP channels {args.channels}, "
              f"ten crops, --nj {args.nj}; one node with {cluster.cpus} CPUs")
        base, want = None, None
        for name, cmd in (("local run.py (threads of one process)", "run.py"),
                          ("Slurm, the jobs at once", "slurm.py --time=10"),
                          ("Slurm, one job at a time", "slurm.py --time=10 --max-jobs-run=1")):
            took = extract(exp, data, args.nj, cmd, cluster.env)
            same = "" if want is None or ark.read_bytes() == want else "  EMBEDDINGS DIFFER"
            want = want or ark.read_bytes()
            base = base or took
            print(f"  {name:40s} {took:6.1f} s ({took / base:.2f}x){same}")
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
