"""The extension points, front-ends, trunks and losses: each is a class plus one entry in a registry.

An entry carries everything the rest of the package needs to know of its class: its name
(the value of ``--frontend`` / ``--trunk`` / ``--loss``), how to build it, and for a trunk its
paper defaults, front-end and pooling options, for a loss its utterances per speaker and its
results-table label. No other list of names exists: the options take their choices from
:data:`FRONTENDS`, :data:`TRUNKS` and :data:`LOSSES`, so a misspelt name fails while the conf
is parsed, naming the file, the line and the known names.

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
class Frontend:
    """Features from a waveform: ``build(n_mels, preemphasis=, input_scale=)`` returns a module
    without parameters mapping ``(B, samples)`` to ``(B, n_mels, T)``."""
    name: str
    build: Callable[..., Any]
    about: str

    def describe(self) -> str:
        return self.about


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
    frontend: str  # --frontend=paper: the paper's front-end (an entry of FRONTENDS)
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


Entry = TypeVar("Entry", Frontend, Trunk, Loss)


class Registry(Generic[Entry]):
    """Entries by name, in registration order; loads ``home`` on first use. ``deferred``: values
    of the option that are not entries but name one through another option (``--frontend=paper``:
    the trunk's), with what they mean; the option accepts them, the registry does not build them."""

    def __init__(self, option: str, home: str, deferred: dict[str, str] | None = None):
        self.option = option
        self.home = home
        self.deferred = dict(deferred or {})
        self._entries: dict[str, Entry] = {}

    def register(self, entry: Entry) -> Entry:
        if entry.name in self._entries or entry.name in self.deferred:
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
        if name in self.deferred:
            raise SpkidError(f"{self.option}={name} is not one to build: it means {self.deferred[name]}")
        if name not in entries:
            raise SpkidError(f"unknown {self.option}={name}; choose one of: {', '.join(entries)}")
        return entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self.deferred or name in self._loaded()

    def __iter__(self) -> Iterator[str]:
        return iter([*self.deferred, *self._loaded()])

    def __len__(self) -> int:
        return len(self.deferred) + len(self._loaded())

    def describe(self) -> dict[str, str]:
        """Name -> one line about the entry (for ``--help``)."""
        return {**self.deferred, **{name: entry.describe() for name, entry in self._loaded().items()}}


FRONTENDS: Registry[Frontend] = Registry("--frontend", home="spkid.models.features",
                                         deferred={"paper": "the trunk's own (see --trunk)"})
TRUNKS: Registry[Trunk] = Registry("--trunk", home="spkid.models")
LOSSES: Registry[Loss] = Registry("--loss", home="spkid.train.losses")
