# How run.sh runs its jobs (sourced by run.sh), Kaldi's cmd.sh: each command takes
#   JOB=1:N LOG COMMAND...   (one log per job, waits for all, names the failed jobs)
# utils/run.py runs them on this machine; utils/slurm.py runs each job through srun on a Slurm
# cluster, with srun's options (--name=value) after it. See docs/cluster.md.

# stage 1 (--corpus voxceleb): VoxCeleb2 m4a->wav, one job per --nj list of files, as many
# ffmpeg at once as the job has CPUs
cpu_cmd="run.py"
# cpu_cmd="slurm.py --partition=cpu --cpus-per-task=4 --mem=4G --time=4:00:00"

# stage 4: embedding extraction, one job per --nj part (with run.py on the CPU the parts are
# threads of one process)
extract_cmd="run.py"
# extract_cmd="slurm.py --partition=gpu --gres=gpu:1 --cpus-per-task=4 --mem=16G --time=12:00:00"

# stage 5: scoring, one job per system (its evaluation sets in turn)
score_cmd="run.py"
# score_cmd="slurm.py --partition=cpu --cpus-per-task=2 --mem=16G --time=2:00:00"
