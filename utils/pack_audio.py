#!/usr/bin/env python3
"""Pack the recordings of data dirs into one 16-bit file each (bank.pcm16 + bank.index), the form
training reads MUSAN and the RIRs in: a noise clip becomes a slice of one memory-mapped file,
the RIRs load in one read, and with --batched-augment=true the whole bank can sit on the GPU.
Stage 2 packs these dirs itself; use this for dirs made another way, or after editing their wav.scp.

    utils/pack_audio.py data/musan_noise data/musan_music data/musan_speech data/rirs
"""
import time
from dataclasses import dataclass

from spkid.cli import run_main
from spkid.config import option, parse_options
from spkid.data.augment import pack_audio


@dataclass
class PackOptions:
    quiet: bool = option(False, "no progress bar")


def main(argv) -> int:
    args = parse_options([PackOptions], argv, ["data_dir..."], prog="utils/pack_audio.py", description=__doc__)
    quiet = args[PackOptions].quiet
    for d in args.positionals["data_dir"]:
        t0 = time.time()
        index = pack_audio(d, quiet=quiet)
        size = index.with_name("bank.pcm16").stat().st_size
        print(f"pack_audio.py: {d}: {size / 2 / 16000 / 3600:.2f} h, {size / 2**20:.1f} MiB in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    run_main(main)
