"""Simulated room impulse responses shaped like RIRS_NOISES/simulated_rirs.

As the original simulated RIRs, rooms come from the image method (pyroomacoustics): small
rooms 1-10 m and medium rooms 10-30 m in length and width, height 2-5 m, one source and
several microphones per room, absorption 0.2-0.8 with the reflection order set from Sabine's
RT60 (capped, to keep generation fast).
"""

from __future__ import annotations

import numpy as np

from spkid.corpora.mini.channel import SR

ROOM_SIZES = {"smallroom": (1.0, 10.0), "mediumroom": (10.0, 30.0), "largeroom": (30.0, 50.0)}


def room_rirs(rng: np.random.Generator, room_type: str, n_mics: int, max_order: int = 12) -> list[np.ndarray]:
    """Impulse responses from one random source to ``n_mics`` random microphones of one room."""
    import pyroomacoustics as pra

    lo, hi = ROOM_SIZES[room_type]
    dims = np.array([rng.uniform(lo, hi), rng.uniform(lo, hi), rng.uniform(2.0, 5.0)])
    absorption = float(rng.uniform(0.2, 0.8))
    volume, surface = float(np.prod(dims)), 2 * float(dims[0] * dims[1] + dims[0] * dims[2] + dims[1] * dims[2])
    rt60 = 0.161 * volume / (surface * absorption)
    # Image sources needed to cover RT60 grow with rt60 * c / mean free path.
    order = int(np.clip(np.ceil(rt60 * 343.0 / (4 * volume / surface)), 2, max_order))
    room = pra.ShoeBox(dims, fs=SR, materials=pra.Material(absorption), max_order=order)

    def point() -> list[float]:
        margin = np.minimum(0.5, dims / 4)
        return [float(rng.uniform(margin[k], dims[k] - margin[k])) for k in range(3)]

    room.add_source(point())
    room.add_microphone_array(np.array([point() for _ in range(n_mics)]).T)
    room.compute_rir()
    out = []
    for m in range(n_mics):
        h = np.asarray(room.rir[m][0], dtype=np.float32)
        start = max(0, int(np.argmax(np.abs(h))) - 40)   # drop the propagation delay before the direct path
        h = h[start: start + int(min(1.5, max(0.3, rt60 * 1.2)) * SR)]
        out.append((h / (np.max(np.abs(h)) + 1e-9) * 0.9).astype(np.float32))
    return out
