"""Every raw folder listable and every raw Parquet file readable, checked before dbt runs.

DuckDB's ``read_parquet`` globs pass over what they cannot list, and over a file that
stands where a partition folder should be, so an unreadable partition would drop its
rows from the warehouse without a word (a run shown as completed with 0 requests).
This walk turns each such entry into an :class:`FmbError` that names it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fmb.errors import FmbError

_HINT = "Fix it (e.g. `chmod -R u+rwX {raw}`, or remove the broken entry), then build again."


def _unreadable(raw: Path, path: str, what: str) -> FmbError:
    return FmbError(f"cannot read the raw table entry {path}: {what}.", hint=_HINT.format(raw=raw))


def _is_partition_name(name: str) -> bool:
    key, equals, _ = name.partition("=")
    return bool(equals and key)


def check_raw_readable(raw: Path) -> None:
    """Raise :class:`FmbError` for the first entry under ``raw`` that the warehouse could not read.

    Checked: every folder can be listed, every ``*.parquet`` is a regular file that can be
    opened and read, a ``name=value`` partition is a folder, no symbolic link is broken or
    loops. Other files (a writer's ``.part-*.tmp``) are left alone; an entry that vanishes
    while the walk runs (a part file renamed into place) is not an error.
    """
    try:
        info = os.stat(raw)
    except FileNotFoundError:
        return  # nothing collected yet: the caller says so
    except OSError as exc:
        raise _unreadable(raw, str(raw), exc.strerror or str(exc)) from None
    if not stat.S_ISDIR(info.st_mode):
        raise _unreadable(raw, str(raw), "it is a file, not the folder of raw tables")
    _check_folder(raw, str(raw), ((info.st_dev, info.st_ino),))


def _check_folder(raw: Path, folder: str, ancestors: tuple[tuple[int, int], ...]) -> None:
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError as exc:
        raise _unreadable(raw, folder, f"the folder cannot be listed ({exc.strerror or exc})") from None
    for entry in entries:
        _check_entry(raw, entry, ancestors)


def _check_entry(raw: Path, entry: os.DirEntry[str], ancestors: tuple[tuple[int, int], ...]) -> None:
    path = entry.path
    try:
        info = os.stat(path)  # follows symbolic links
    except FileNotFoundError:
        if os.path.islink(path):
            raise _unreadable(
                raw, path, f"it is a symbolic link to {os.readlink(path)}, which does not exist"
            ) from None
        return  # gone since the listing: a part file renamed into place
    except OSError as exc:  # a symbolic link loop (ELOOP), a name too long, ...
        raise _unreadable(raw, path, exc.strerror or str(exc)) from None
    is_parquet = entry.name.endswith(".parquet")
    if stat.S_ISDIR(info.st_mode):
        if is_parquet:
            raise _unreadable(raw, path, "it is a folder where a Parquet file was expected")
        identity = (info.st_dev, info.st_ino)
        if identity in ancestors:
            raise _unreadable(raw, path, "it is a symbolic link back to a folder above it (a loop)")
        _check_folder(raw, path, (*ancestors, identity))
    elif is_parquet:
        if not stat.S_ISREG(info.st_mode):
            raise _unreadable(raw, path, "it is not a regular file")
        try:
            with open(path, "rb") as part:
                part.read(4)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _unreadable(raw, path, f"the file cannot be read ({exc.strerror or exc})") from None
    elif _is_partition_name(entry.name):
        raise _unreadable(raw, path, "it is a file where a partition folder (name=value) was expected")
