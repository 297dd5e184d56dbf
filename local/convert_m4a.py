#!/usr/bin/env python3
"""One job of stage 1's m4a->wav conversion when it runs through --cmd (spkid/corpora/convert.py,
ConvertJobs): the files of --list (paths relative to SRC_ROOT) into DST_ROOT, with as many ffmpeg
at once as Slurm gave the job CPUs ($SLURM_CPUS_PER_TASK, else one). Files that fail are listed
in --failures ('<relative path><TAB><ffmpeg's last message>' lines) for the stage to report;
the job itself fails only when it cannot run at all.

    local/convert_m4a.py --list split/m4a.3 --failures split/failed.3 corpus/voxceleb2/aac corpus/voxceleb2/wav
"""

import argparse
import os
from pathlib import Path

from spkid.cli import run_main
from spkid.corpora.convert import convert_files
from spkid.fileio import atomic_write


def main(argv) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", required=True, help="the files to convert, one relative path a line")
    p.add_argument("--failures", required=True, help="where the failed files are listed")
    p.add_argument("src_root")
    p.add_argument("dst_root")
    args = p.parse_args(argv)
    rels = Path(args.list).read_text().splitlines()
    threads = int(os.environ.get("SLURM_CPUS_PER_TASK", "1"))
    result = convert_files(Path(args.src_root), Path(args.dst_root), rels, threads, progress=False)
    with atomic_write(args.failures) as f:
        for rel, reason in sorted(result.failed):
            f.write(f"{rel}\t{reason.replace(chr(9), ' ')}\n")
    print(f"convert_m4a.py: {len(rels)} files of {args.list}: {result.summary()}")
    return 0


if __name__ == "__main__":
    run_main(main)
