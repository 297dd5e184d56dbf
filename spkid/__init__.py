"""spkid: a Kaldi-style recipe for the speaker-verification systems of Clova AI's VoxSRC 2020 paper."""

__version__ = "0.1.0"
