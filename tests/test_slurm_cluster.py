"""The Slurm test cluster itself: a job runs on its node, and a job's exit status comes back."""

import subprocess


def test_cluster_runs_jobs_and_reports_their_status(slurm_cluster):
    ok = subprocess.run(["srun", "--ntasks=1", "bash", "-c", "echo $SLURM_JOB_NODELIST"],
                        env=slurm_cluster.env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == slurm_cluster.node
    failed = subprocess.run(["srun", "--ntasks=1", "bash", "-c", "exit 3"],
                            env=slurm_cluster.env, capture_output=True, text=True, timeout=60)
    assert failed.returncode == 3
