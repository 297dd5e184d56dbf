#!/usr/bin/env python3
"""Pack the recordings of data dirs into one 16-bit file each (bank.pcm16 + bank.index), the form
training reads MUSAN and the RIRs in: a noise clip becomes a slice of one memory-mapped file,
the RIRs load in one read, and with --batched-augment=true the whole bank can sit on the GPU.
Stage 2 packs these dirs itself; use this for dirs made another way, or after editing their wav.scp.

    utils/pack_audio.py data/musan_noise data/musan_music data/musan_speech data/rirs
"""
import argparse
import time

from spkid.data.augment import pack_audio
from spkid.cli import run_main


def main(argv) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("dirs", nargs="+", help="data dirs with a wav.scp")
    a = p.parse_args(argv)
    for d in a.dirs:
        t0 = time.time()
        index = pack_audio(d, quiet=a.quiet)
        size = index.with_name("bank.pcm16").stat().st_size
        print(f"pack_audio.py: {d}: {size / 2 / 16000 / 3600:.2f} h, {size / 2**20:.1f} MiB in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    run_main(main)
