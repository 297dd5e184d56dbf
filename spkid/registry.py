"""The two extension points, trunks and losses: each is a class plus one entry in a registry.

An entry carries everything the rest of the package needs to know of its class: its name
(the value of ``--trunk`` / ``--loss``), how to build it, and for a trunk its paper defaults
and pooling options, for a loss its utterances per speaker and its results-table label. No other
list of names exists: the options take their choices from :data:`TRUNKS` and :data:`LOSSES`, so
a misspelt name fails while the conf is parsed, naming the file, the line and the known names.

An entry is registered by the module that defines its class, and a registry imports its home
module (:attr:`Registry.home`, which imports those modules) the first time it is asked, so a
step that only parses options sees every entry. ``docs/design.md`` shows how to add one.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

from spkid.errors import SpkidError


@dataclass(frozen=True)
class Trunk:
    """An embedding network (paper section 2.1): ``build(n_mels, channels, embed_dim, **pooling)``
    returns a module mapping front-end features ``(B, n_mels, T)`` to ``(B, embed_dim)`` and
    having an ``embed_dim`` attribute."""
    name: str
    build: Callable[..., Any]
    about: str
    channels: tuple[int, ...]  # --channels="": the paper's widths
    n_mels: int  # --n-mels=0: the paper's feature bins
    embed_dim: int  # --embed-dim=0: the paper's embedding size
    frontend: str  # --frontend=paper: the paper's front-end (logmel, mfcc or fbank)
    pooling: tuple[str, ...] = ()  # the ModelOptions fields its pooling takes, passed to build by name

    def describe(self) -> str:
        return (f"{self.about}; paper: --channels={','.join(map(str, self.channels))}, "
                f"{self.n_mels} {self.frontend} bins, {self.embed_dim}-dim")


@dataclass(frozen=True)
class Loss:
    """A training objective (paper section 2.2): ``build(loss_options, embed_dim, num_speakers, m)``
    returns a head mapping embeddings ``(N, D)`` and labels ``(N,)`` to ``(loss, accuracy)``
    (see :mod:`spkid.train.losses`); ``m`` is the utterances per speaker in a batch."""
    name: str
    build: Callable[..., Any]
    about: str
    label: str  # its name in the results table (the paper's Table 2 spelling)
    per_speaker: int = 1  # utterances of one speaker in a batch when --n-per-speaker=0
    # a margin loss: the margin m must be in [0, upper), and why (then --scale must be > 0 too)
    margin_below: tuple[float, str] | None = None

    def describe(self) -> str:
        return f"{self.about}; {self.per_speaker} utterance(s) per speaker in a batch"


Entry = TypeVar("Entry", Trunk, Loss)


class Registry(Generic[Entry]):
    """Entries by name, in registration order; loads ``home`` on first use."""

    def __init__(self, option: str, home: str):
        self.option = option
        self.home = home
        self._entries: dict[str, Entry] = {}

    def register(self, entry: Entry) -> Entry:
        if entry.name in self._entries:
            raise ValueError(f"{self.option}={entry.name} is registered twice")
        self._entries[entry.name] = entry
        return entry

    def unregister(self, name: str) -> None:
        del self._entries[name]

    def _loaded(self) -> dict[str, Entry]:
        importlib.import_module(self.home)  # a no-op after the first time
        return self._entries

    def __getitem__(self, name: str) -> Entry:
        entries = self._loaded()
        if name not in entries:
            raise SpkidError(f"unknown {self.option}={name}; choose one of: {', '.join(entries)}")
        return entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._loaded()

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._loaded()))

    def __len__(self) -> int:
        return len(self._loaded())

    def describe(self) -> dict[str, str]:
        """Name -> one line about the entry (for ``--help``)."""
        return {name: entry.describe() for name, entry in self._loaded().items()}


TRUNKS: Registry[Trunk] = Registry("--trunk", home="spkid.models")
LOSSES: Registry[Loss] = Registry("--loss", home="spkid.train.losses")
