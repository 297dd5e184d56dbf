"""Kaldi ark/scp tables of float32 embeddings, read without trusting them: the package's one reader.

Stage 4 writes ``embeddings.{ark,scp}`` and ``xvector.{ark,scp}`` in Kaldi's binary table format
(kaldiio's writer): an ark record is ``<utt> ``, then ``\\0B``, a type token (``FM `` a float32
matrix, ``FV `` a float32 vector), its sizes (``\\x04`` and a little-endian int32 each: rows and
columns, or the length) and the values; an scp line ``<utt> <ark>:<offset>`` points at the
record's ``\\0B``. What is checked, and where:

- nothing in an scp is run or read from stdin (kaldiio would run a ``cmd |`` ark): refused with
  the scp's file and line by :func:`spkid.data.datadir.read_scp_lines`; an ark must be a regular
  file (a FIFO would hang the reader);
- structure (:func:`set_problem`, stage 4's "already done" check; a few bytes per record): every
  offset lands just after its own key on a float32 record of the table's one shape, inside the
  file; records do not overlap; in a set stage 4 made they tile the ark exactly, so an ark cut
  at a record boundary is caught too;
- values (:meth:`Table.read`, stage 5; one vectorised pass per matrix): finite, no all-zero
  crop (no direction to length-normalise: it scored 0.000000), and a length <= ``MAX_NORM``.

Every error names the ark, the utterance, its scp line and the fix (extract the set again).
"""

from __future__ import annotations

import math
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from spkid.data.datadir import read_scp_lines
from spkid.errors import SpkidError

#: the longest crop embedding accepted (L2 norm). Raw crop embeddings of the trunks here have
#: lengths of tens (QA4 on the mini corpus: 7 to 23), so a length above 1e6 is damage, not a speaker;
#: the bound is also far below where float32 length normalisation breaks (a squared length of
#: 1e12 against float32's 3.4e38; values of 1e30 overflowed to a length of inf and scored 0)
MAX_NORM = 1e6
#: a crop shorter than this has no direction (``normalize_rows``' epsilon): it would score 0
TINY = 1e-12
_TOKENS = {b"FM ": 2, b"FV ": 1}  # float32 matrix / vector: how many int32 sizes follow
_HEAD = 2 + 3 + 2 * 5  # "\0B", the token, up to two "\x04" + int32 sizes


class ArkError(SpkidError):
    pass


def check_key(key: str, where: str) -> None:
    """A Kaldi table key: non-empty, no whitespace (Kaldi splits scp lines at the first space,
    so "a b" would be read as the key "a"); ``where`` names the writer's output."""
    if not key or key.split() != [key]:
        raise ArkError(f"{where}: cannot write the key '{key}': Kaldi table keys may not be empty or contain "
                       f"whitespace; rename the recording (e.g. spaces to '_')")


def redo_fix(set_dir: Path, extract_args: str = "", run_sh: bool = True) -> str:
    """How to redo a damaged embeddings set ``exp/<SYS>/embeddings/<set>`` (stage 4): remove it
    (its ark cannot be trusted, and run.sh skips a set whose .done marker is there) and extract it
    again; ``extract_args``: steps/extract.sh's arguments when the caller knows them; ``run_sh``:
    whether ./run.sh --stage 4 redoes it too (not the cohort, which no eval set's marker names)."""
    exp_dir = set_dir.parent.parent
    args = extract_args or f"{exp_dir} data/{set_dir.name}"
    also = f" (or ./run.sh --stage 4 --systems {exp_dir.name})" if run_sh else ""
    return f"the set is damaged: remove it and extract it again: rm -r {set_dir}; steps/extract.sh {args}{also}"


@dataclass(frozen=True)
class Record:
    utt: str
    ark: str  # the ark file as located (see locate_ark)
    offset: int
    line: int  # its line in the scp


def locate_ark(ark: str, scp: Path) -> str:
    """An ark path of an scp: the file of that name beside the scp when there is one (stage 4
    writes them side by side: a copied or moved exp dir reads its own ark, not the one its scp
    was written for, which a provenance check of the copy would not have looked at), else as
    written (relative paths are from where extraction ran, e.g. the recipe root). It must be a
    regular file."""
    beside = scp.parent / Path(ark).name
    path = str(beside) if beside.exists() else ark
    if not Path(path).exists():
        raise ArkError(f"{scp} names {ark}, which is neither there (from {Path.cwd()}) nor beside {scp}; "
                       f"run from the recipe directory, or re-run steps/extract.sh")
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ArkError(f"{scp} names {path}, which is not a regular file (a FIFO or device would be read "
                       f"without end); re-run steps/extract.sh")
    return path


class Table:
    """The records of one scp, their arks located; ``fix`` ends every error (how to redo the set)."""

    def __init__(self, scp: str | os.PathLike, fix: str = ""):
        self.scp = Path(scp)
        self.fix = fix or redo_fix(self.scp.parent)
        if not self.scp.is_file():
            raise ArkError(f"{self.scp} not found: extract the embeddings first (steps/extract.sh)")
        located: dict[str, str] = {}
        self.records: dict[str, Record] = {}
        for line, utt, ark, offset in read_scp_lines(self.scp, self.fix):
            if utt in self.records:
                raise ArkError(f"{self.scp}:{line}: utterance '{utt}' again (first on line "
                               f"{self.records[utt].line}); {self.fix}")
            if ark not in located:
                located[ark] = locate_ark(ark, self.scp)
            self.records[utt] = Record(utt, located[ark], offset, line)

    def error(self, rec: Record, problem: str) -> ArkError:
        return ArkError(f"{rec.ark}: utterance '{rec.utt}' ({self.scp}:{rec.line}): {problem}; {self.fix}")

    def header(self, fd: int, rec: Record, size: int) -> tuple[tuple[int, ...], int]:
        """The shape of ``rec``'s float32 record and where its values start, checked: its key just
        before the offset, a float32 matrix or vector header, values ending inside the ark."""
        key = rec.utt.encode() + b" "
        if rec.offset < len(key):
            raise self.error(rec, f"offset {rec.offset} does not follow the key '{rec.utt}' in the ark")
        head = os.pread(fd, len(key) + _HEAD, rec.offset - len(key))
        body = head[len(key):]
        if len(body) < 5:
            raise self.error(rec, f"offset {rec.offset} is past the end of the ark ({size} bytes): it is truncated")
        if head[:len(key)] != key:
            raise self.error(rec, f"offset {rec.offset} does not follow the key '{rec.utt}' in the ark")
        sizes = _TOKENS.get(body[2:5])
        if body[:2] != b"\0B" or sizes is None:
            raise self.error(rec, f"no float32 matrix or vector at offset {rec.offset} (found {body[:5]!r})")
        if len(body) < 5 + 5 * sizes:
            raise self.error(rec, f"its header runs past the end of the ark ({size} bytes): it is truncated")
        fields = struct.unpack_from("<" + "bi" * sizes, body, 5)
        shape = tuple(fields[1::2])
        if fields[::2] != (4,) * sizes or min(shape) <= 0:
            raise self.error(rec, f"a damaged header at offset {rec.offset} (sizes {fields})")
        data = rec.offset + 5 + 5 * sizes
        if data + 4 * math.prod(shape) > size:
            raise self.error(rec, f"its {'x'.join(map(str, shape))} values run past the end of the ark "
                                  f"({size} bytes): it is truncated")
        return shape, data

    def _records(self, utts: Iterable[str] | None, same_rows: bool
                 ) -> Iterator[tuple[Record, int, int, tuple[int, ...], int]]:
        """(record, ark fd, ark size, shape, values offset) in ark order, each header checked, all
        of one kind (vector or matrix) and dimension; ``same_rows``: also of one crop count (as
        stage 4 writes a set)."""
        recs = self.records.values() if utts is None else (self.records[u] for u in utts)
        fds: dict[str, tuple[int, int]] = {}
        first = None
        try:
            for rec in sorted(recs, key=lambda r: (r.ark, r.offset)):
                if rec.ark not in fds:
                    fd = os.open(rec.ark, os.O_RDONLY)
                    fds[rec.ark] = (fd, os.fstat(fd).st_size)
                fd, size = fds[rec.ark]
                shape, data = self.header(fd, rec, size)
                first = first or shape
                if shape != first and (same_rows or (len(shape), shape[-1]) != (len(first), first[-1])):
                    raise self.error(rec, f"a {'x'.join(map(str, shape))} record among "
                                          f"{'x'.join(map(str, first))} ones")
                yield rec, fd, size, shape, data
        finally:
            for fd, _ in fds.values():
                os.close(fd)

    def check(self, tiled: bool = False) -> tuple[int, ...]:
        """Every record's structure (:meth:`header`), one shape for all, no overlaps; ``tiled``:
        the records also fill their arks from the first byte to the last (what stage 4 writes).
        Returns the shape."""
        shape, ark, end, size = None, None, 0, 0
        for rec, _, rec_size, shape, data in self._records(None, same_rows=tiled):
            if rec.ark != ark:
                self._check_end(ark, end, size, tiled)
                ark, end, size = rec.ark, 0, rec_size
            key_start = rec.offset - len(rec.utt.encode()) - 1
            if key_start < end or (tiled and key_start != end):
                raise self.error(rec, f"its record starts at byte {key_start}, but the one before it in the "
                                      f"ark ends at byte {end}")
            end = data + 4 * math.prod(shape)
        self._check_end(ark, end, size, tiled)
        if shape is None:
            raise ArkError(f"{self.scp} lists no embeddings; {self.fix}")
        return shape

    def _check_end(self, ark: str | None, end: int, size: int, tiled: bool) -> None:
        if ark is not None and tiled and end != size:
            raise ArkError(f"{ark}: {size} bytes, but its last record in {self.scp} ends at byte {end}: "
                           f"records are missing from the scp, or the ark was appended to; {self.fix}")

    def read(self, utts: Iterable[str] | None = None, check_values: bool = True) -> Iterator[tuple[str, np.ndarray]]:
        """(utt, float32 matrix or vector) of ``utts`` (all when None), in ark order (each ark
        read front to back), structure checked, and values unless the caller checks them with
        :meth:`check_lengths` (scoring, which computes every crop's length anyway)."""
        for rec, fd, _, shape, data in self._records(utts, same_rows=False):
            mat = np.frombuffer(os.pread(fd, 4 * math.prod(shape), data), dtype="<f4").reshape(shape)
            problem = value_problem(mat) if check_values else None
            if problem:
                raise self.error(rec, problem)
            yield rec.utt, mat

    def check_lengths(self, utt: str, mat: np.ndarray, lengths: np.ndarray) -> None:
        """The value check of :meth:`read` from the L2 lengths of ``mat``'s crops (utterance ``utt``)."""
        if not all(TINY <= n <= MAX_NORM for n in lengths.tolist()):  # (NaN compares False)
            raise self.error(self.records[utt], value_problem(mat) or f"crops of lengths {lengths}")


def value_problem(mat: np.ndarray) -> str | None:
    """Why the values of an embedding (a matrix of crops, or a vector) cannot be scored, or None.

    One pass: the squared length of each crop, which NaN and infinity turn NaN or infinite."""
    # (a Python loop over the few crops costs less than two numpy reductions; NaN compares False)
    if all(TINY ** 2 <= sq <= MAX_NORM ** 2 for sq in np.einsum("...i,...i->...", mat, mat).reshape(-1).tolist()):
        return None
    rows = np.atleast_2d(mat)
    norms = np.linalg.norm(rows.astype(np.float64), axis=-1)  # (float32 squares overflow past 1.8e19)
    bad = int(np.flatnonzero(~((norms >= TINY) & (norms <= MAX_NORM)))[0])
    row, what = rows[bad], f"crop {bad + 1} of {len(rows)}" if mat.ndim == 2 else "the vector"
    if not np.isfinite(row).all():
        return f"{what} holds {int(np.isnan(row).sum())} NaN and {int(np.isinf(row).sum())} infinite values"
    if norms[bad] > MAX_NORM:
        return f"{what} has length {norms[bad]:.3g}, above {MAX_NORM:g}, which no network here produces"
    if norms[bad] == 0:
        return f"{what} is all zeros (no direction to score)"
    return f"{what} has length {norms[bad]:.3g}, below {TINY:g} (no direction to score)"


def set_problem(ark: str | os.PathLike, utts: Sequence[str]) -> str | None:
    """Why stage 4's ``ark`` (and its scp) is not a whole set of exactly ``utts`` in that order,
    or None: missing files, another list, or any structure problem (:meth:`Table.check`, tiled)."""
    ark, scp = Path(ark), Path(ark).with_suffix(".scp")
    if not ark.is_file() or not scp.is_file():
        return f"{ark if not ark.is_file() else scp} is missing"
    try:
        table = Table(scp, fix="it is extracted again")
        if list(table.records) != list(utts):
            return f"{scp} lists {len(table.records)} utterances, not the {len(utts)} of the set"
        table.check(tiled=True)
    except SpkidError as e:
        return str(e)
    return None
