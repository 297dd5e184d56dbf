"""The embedded mini corpus: a generated, VoxCeleb-shaped SUBSTITUTE for VoxCeleb, MUSAN and
RIRS_NOISES, so that the whole recipe runs offline on a laptop.

Speakers are text-to-speech voices (espeak-ng, flite, festival; mbrola when opted in) with a
fixed speed factor, pitch and rate each; sessions are random channels; utterances are random
sentences. EERs measured on it say nothing about VoxCeleb.

Modules: text (sentences), voices (voice catalogue, speakers, synthesis), channel (session
channels and signal helpers), noise (MUSAN-shaped noise/music/babble), rirs (simulated room
impulse responses), trials (O/E/H/validation trial lists), corpus (plan, parallel generation,
lists).
"""
