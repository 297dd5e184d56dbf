"""Kaldi-style options, typed by dataclasses.

A conf file holds one ``--option=value`` per line; ``#`` starts a comment. A step takes
``--config A.conf --config B.conf`` (later wins) and options on the command line override both.
A number must be finite (``nan`` and ``inf`` are refused). Every option is a field of a dataclass: one name, one type, one default, one help text
(``field(default=..., metadata={"help": ..., "choices": (...)})``). An unknown or malformed
option is an error naming the file and line; nothing is ignored.

    args = parse_options([ModelOptions, RunOptions], argv, positional=["exp_dir"])
    train(args[ModelOptions], args[RunOptions], args.positionals["exp_dir"])
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Sequence, TypeVar

from spkid.errors import SpkidError
from spkid.fileio import atomic_write


class ConfigError(SpkidError):
    pass


T = TypeVar("T")


def option(default: Any, help: str, choices: Collection | None = None, min: float | None = None,
           above: float | None = None, max: float | None = None) -> Any:
    """A dataclass field that is an option: its default, help text and allowed values (``choices``,
    or for a number its least value ``min``, a bound ``above`` it must exceed, its greatest value
    ``max``, so that a conf's 0 or -1 is refused by file and line instead of failing deep in
    training). ``choices`` may be a registry (:mod:`spkid.registry`): it is asked when a value
    is checked, so it holds every entry registered by then.

    A range that depends on other options (a loss's margin) is the dataclass's ``problems()``:
    ``{field name: why its value is refused}``, checked once every option is read."""
    meta: dict[str, Any] = {"help": help}
    if choices is not None:
        meta["choices"] = tuple(choices) if isinstance(choices, list) else choices
    for key, bound in (("min", min), ("above", above), ("max", max)):
        if bound is not None:
            meta[key] = bound
    return dataclasses.field(default=default, metadata=meta)


def option_name(field_name: str) -> str:
    """``lr_step`` -> ``--lr-step``."""
    return "--" + field_name.replace("_", "-")


def _field_table(types: Sequence[type]) -> dict[str, tuple[type, dataclasses.Field, type]]:
    """Map ``--option`` to (dataclass, field, python type); option names must be unique."""
    table: dict[str, tuple[type, dataclasses.Field, type]] = {}
    for cls in types:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            name = option_name(f.name)
            if name in table:
                raise TypeError(f"option {name} is defined by both {table[name][0].__name__} and {cls.__name__}")
            table[name] = (cls, f, hints[f.name])
    return table


def convert_value(value: str, typ: type, f: dataclasses.Field, where: str, check_choices: bool = True) -> Any:
    """Parse ``value`` as ``typ``; ``where`` names the file and line (or 'command line').
    ``check_choices=False``: a name is not looked up in its registry (which imports the modules
    that register its entries, torch among them)."""
    name = option_name(f.name)
    if typ is bool:
        if value not in ("true", "false"):
            raise ConfigError(f"{where}: {name} takes true or false, not '{value}'")
        out: Any = value == "true"
    elif typ is int:
        try:
            out = int(value)
        except ValueError:
            raise ConfigError(f"{where}: {name} takes an integer, not '{value}'") from None
    elif typ is float:
        try:
            out = float(value)
        except ValueError:
            raise ConfigError(f"{where}: {name} takes a number, not '{value}'") from None
        # nan passes every range check (nan < min is false) and inf passes a least value: both
        # used to train a model of NaN weights to the end and exit 0; no option means either
        if not math.isfinite(out):
            raise ConfigError(f"{where}: {name} takes a finite number, not '{value}'")
    elif typ is str:
        out = value
    else:
        raise TypeError(f"option {name}: unsupported type {typ}")
    choices = f.metadata.get("choices") if check_choices else None
    if choices is not None and out not in choices:
        raise ConfigError(f"{where}: {name}={value} is not one of: {', '.join(map(str, choices))}")
    least, above, most = (f.metadata.get(k) for k in ("min", "above", "max"))
    if least is not None and out < least:
        raise ConfigError(f"{where}: {name}={value} is out of range: it must be at least {least}")
    if above is not None and out <= above:
        raise ConfigError(f"{where}: {name}={value} is out of range: it must be greater than {above}")
    if most is not None and out > most:
        raise ConfigError(f"{where}: {name}={value} is out of range: it must be at most {most}")
    return out


def _checked(obj: Any, where: dict[str, str]) -> Any:
    """``obj`` once its cross-option ranges (its ``problems()``) hold; else an error naming the
    file and line (``where``: option -> 'file:line') of the first refused option."""
    problems = obj.problems() if hasattr(obj, "problems") else {}
    for field_name, why in problems.items():
        name = option_name(field_name)
        place = where.get(name, "default value")
        raise ConfigError(f"{place}: {name}={format_value(getattr(obj, field_name))} {why}")
    return obj


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]


def _unknown(name: str, where: str, table: dict) -> ConfigError:
    close = difflib.get_close_matches(name, list(table), n=1)
    hint = f"; did you mean {close[0]}?" if close else f"; known options: {' '.join(sorted(table))}"
    return ConfigError(f"{where}: unknown option {name}{hint}")


def _conf_entries(path: str | os.PathLike, table: dict) -> dict[str, tuple[str, str]]:
    """option -> (value, 'file:line') of a conf file, every option checked against ``table``."""
    entries = {}
    for opt, val, where in read_conf_lines(path):
        if opt not in table:
            raise _unknown(opt, where, table)
        entries[opt] = (val, where)
    return entries


def read_conf_lines(path: str | os.PathLike) -> list[tuple[str, str, str]]:
    """Read a conf file into (option, value, 'file:line') triples, checking the syntax only."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    out = []
    with open(path, "rb") as f:
        for lineno, data in enumerate(f, 1):
            try:  # utf-8-sig: an editor's byte-order mark would otherwise be part of the first option's name
                raw = data.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise ConfigError(f"{path}:{lineno}: not UTF-8 text (byte 0x{data[e.start]:02x} at column "
                                  f"{e.start + 1}): a conf file holds '--option=value' lines; fix the line, or "
                                  f"restore the file if it is not a conf file at all") from None
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            where = f"{path}:{lineno}"
            if not line.startswith("--") or "=" not in line:
                raise ConfigError(f"{where}: expected '--option=value', got '{line}'")
            name, value = line.split("=", 1)
            if name == "--config":
                raise ConfigError(f"{where}: --config cannot be nested inside a conf file; pass both files to the step")
            out.append((name.strip(), value.strip(), where))
    return out


@dataclass(frozen=True)
class SavedConf:
    """Options a step reads from a conf an earlier step wrote (a trained system's
    ``exp/<SYS>/config.conf``) rather than from its own command line. Of ``types``, only those
    the step also lists as its own may be given again (and so override the file)."""
    types: tuple[type, ...]
    path: Callable[[dict[str, Any]], str | os.PathLike]  # the file, from the step's positional arguments
    shown_as: str  # how --help names the file, e.g. EXP_DIR/config.conf


@dataclass(frozen=True)
class Args:
    """A parsed command line: one instance per options class (``args[ModelOptions]``), the
    positional arguments by name (a trailing ``NAME...`` holds a list), the field names of the
    options the user gave (on the command line or in a ``--config`` file, as opposed to a
    default or a saved conf), and one line per value a later ``--config`` file replaced."""
    groups: dict[type, Any]
    positionals: dict[str, Any]
    given: frozenset[str]
    replaced: tuple[str, ...]

    def __getitem__(self, cls: type[T]) -> T:
        return self.groups[cls]

    def of(self, types: Sequence[type]) -> list:
        """The instances of ``types``, in that order."""
        return [self.groups[cls] for cls in types]


def parse_options(types: Sequence[type], argv: Sequence[str], positional: Sequence[str] = (), prog: str = "",
                  description: str = "", saved: SavedConf | None = None) -> Args:
    """Parse ``argv`` in one pass: its options into one instance of each dataclass in ``types``
    (and of ``saved.types``), its positional arguments by the names in ``positional`` (exactly
    that many; a last name ending in ``...`` takes one or more). A bool option may stand alone
    (``--quiet`` is ``--quiet=true``, as in Kaldi's tools). ``saved`` is read first, so that
    ``--config`` files and the command line win over it."""
    table = _field_table(types)
    full = _field_table([*types, *(c for c in (saved.types if saved else ()) if c not in types)])
    if any(a in ("-h", "--help") for a in argv):
        print(format_help(types, positional, prog, description, saved))
        raise SystemExit(0)
    from_confs, from_cli, words, replaced = _read_argv(argv, table, full, saved)
    positionals = _name_positionals(words, positional)
    entries = {**from_confs, **from_cli}
    if saved is not None:
        entries = {**_conf_entries(saved.path(positionals), full), **entries}
    groups = _instances(entries, full)
    given = frozenset(full[name][1].name for name in {**from_confs, **from_cli})
    return Args(groups, positionals, given, tuple(replaced))


def _instances(entries: dict[str, tuple[str, str]], table: dict) -> dict[type, Any]:
    """One instance of each options class in ``table``, from ``entries`` (option -> (value,
    where)) over the defaults, each value and each instance's cross-option ranges checked."""
    values: dict[type, dict[str, Any]] = {cls: {} for cls, _, _ in table.values()}
    for name, (value, where) in entries.items():
        cls, f, typ = table[name]
        values[cls][f.name] = convert_value(value, typ, f, where)
    wheres = {name: where for name, (_, where) in entries.items()}
    return {cls: _checked(cls(**fields), wheres) for cls, fields in values.items()}


def _read_argv(argv: Sequence[str], table: dict, full: dict, saved: SavedConf | None):
    """option -> (value, where) from the ``--config`` files (the last one winning, as in Kaldi)
    and from the command line; the positional words in order; a line per pair of ``--config``
    files where the later replaced values the earlier set (so that an edited conf overridden by
    another, as conf/mini.conf overrides a system's conf, is said)."""
    from_confs: dict[str, tuple[str, str]] = {}
    from_cli: dict[str, tuple[str, str]] = {}
    words: list[str] = []
    replaced: dict[tuple[str, str], list[str]] = {}  # (later file, earlier file) -> changes
    args = list(argv)
    while args:
        arg = args.pop(0)
        if not (arg.startswith("--") and len(arg) > 2):
            words.append(arg)
            continue
        name, value = arg.split("=", 1) if "=" in arg else (arg, None)
        if name != "--config" and name not in table:
            if name in full:
                raise ConfigError(f"command line: {name} is the system's own option ({full[name][0].__name__}), "
                                  f"read from {saved.shown_as}; this step cannot change it")
            raise _unknown(name, "command line", table)
        if value is None:
            value = _separate_value(name, args, table)
        if name != "--config":
            from_cli[name] = (value, "command line")
            continue
        for opt, (new, where) in _conf_entries(value, table).items():
            if opt in from_confs and from_confs[opt][0] != new:
                old, old_where = from_confs[opt]
                replaced.setdefault((value, old_where.rsplit(":", 1)[0]), []).append(f"{opt}={old} -> {new}")
            from_confs[opt] = (new, where)
    notes = [f"{later} replaces what {earlier} set: {', '.join(changes)} (the last --config wins; an option "
             f"given on the command line wins over all)" for (later, earlier), changes in replaced.items()]
    return from_confs, from_cli, words, notes


def _separate_value(name: str, rest: list[str], table: dict) -> str:
    """The value of ``--name`` given as the next word; a bool option standing alone is true."""
    is_bool = name in table and table[name][2] is bool
    if is_bool and (not rest or rest[0] not in ("true", "false")):
        return "true"
    if not rest:
        raise ConfigError(f"command line: option {name} needs a value")
    return rest.pop(0)


def _name_positionals(words: list[str], positional: Sequence[str]) -> dict[str, Any]:
    variadic = bool(positional) and positional[-1].endswith("...")
    fixed = list(positional[:-1] if variadic else positional)
    if len(words) < len(fixed) + variadic or (not variadic and len(words) > len(fixed)):
        want = " ".join(p.upper() for p in positional) or "no positional arguments"
        raise ConfigError(f"expected {want}, got {len(words)} argument(s): {' '.join(words) or '(none)'}")
    named: dict[str, Any] = dict(zip(fixed, words))
    if variadic:
        named[positional[-1].removesuffix("...")] = words[len(fixed):]
    return named


def format_help(types: Sequence[type], positional: Sequence[str] = (), prog: str = "", description: str = "",
                saved: SavedConf | None = None) -> str:
    lines = [f"usage: {prog or 'step'} [--config FILE]... [--option=value]... {' '.join(p.upper() for p in positional)}".rstrip()]
    if description:
        lines += ["", description.strip()]
    lines += ["", "Options (later --config files win; the command line wins over all; a true/false option alone means true):"]
    if saved is not None:
        lines += [f"The system's other options are read from {saved.shown_as}; those below that are among them override it."]
    for cls in types:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default = _default(f)
            kind = hints[f.name].__name__
            choices = f.metadata.get("choices")
            kind = "|".join(map(str, choices)) if choices else kind
            for key, sign in (("min", ">="), ("above", ">"), ("max", "<=")):
                if key in f.metadata:
                    kind += f" {sign} {f.metadata[key]}"
            lines.append(f"  {option_name(f.name)}={format_value(default)}  ({kind}) {f.metadata.get('help', '')}")
            if hasattr(choices, "describe"):  # a registry: one line per entry
                lines += [f"      {name}: {about}" for name, about in choices.describe().items()]
    return "\n".join(lines)


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_conf_lines(*instances: Any) -> list[str]:
    return [f"{option_name(f.name)}={format_value(getattr(obj, f.name))}"
            for obj in instances for f in dataclasses.fields(obj)]


def to_conf_values(*instances: Any) -> dict[str, str]:
    """``--option`` -> value of every option of ``instances``, spelt as :func:`to_conf_lines`
    spells it (what a provenance record keeps of the options, and what two runs compare)."""
    return dict(line.split("=", 1) for line in to_conf_lines(*instances))


def write_resolved(path: str | os.PathLike, *instances: Any, header: str = "") -> None:
    """Write every option of ``instances`` as a conf file that reproduces them (atomically)."""
    with atomic_write(path) as f:
        if header:
            for line in header.strip().splitlines():
                f.write(f"# {line}\n")
        for line in to_conf_lines(*instances):
            f.write(line + "\n")


def read_values(path: str | os.PathLike, types: Sequence[type]) -> dict[str, str]:
    """``--option`` -> value of every option of ``types`` as the conf at ``path`` sets it (else
    its default), spelt as :func:`to_conf_lines` spells it: for comparing a conf with what a
    record says it set. Each value is parsed as its type and range; names are not looked up in
    their registries, nor are the options checked against each other (what a step does with
    :func:`read_resolved`), so that a provenance check does not import torch."""
    table = _field_table(types)
    entries = _conf_entries(path, table)
    out = {}
    for name, (cls, f, typ) in table.items():
        if name in entries:
            value, where = entries[name]
            out[name] = format_value(convert_value(value, typ, f, where, check_choices=False))
        else:
            out[name] = format_value(_default(f))
    return out


def read_resolved(path: str | os.PathLike, types: Sequence[type]) -> list:
    """Read back a conf written by :func:`write_resolved` (or any conf) into ``types``;
    an option that ``types`` do not define is an error, as everywhere else."""
    table = _field_table(types)
    groups = _instances(_conf_entries(path, table), table)
    return [groups[cls] for cls in types]
