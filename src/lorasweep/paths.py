"""Output paths checked before anything is loaded: a bad ``--out`` is one line, not a traceback
after the model has loaded."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from lorasweep.errors import UserError


def check_output_dir(path: Path, field: str) -> None:
    """``path`` is a folder this process can write in, or one it can create.

    Nothing is left behind: the write probe is an unnamed temporary file.

    Args:
        path: The folder that will be written.
        field: The option that named it (``--out``), for the error line.

    Raises:
        UserError: ``path`` is a file, lies under a file, or cannot be written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{field}: {path} is a file, not a folder")
    _check_creatable(path, path, field)


def check_output_file(path: Path, field: str) -> None:
    """``path`` is a file this process can write (replacing it if it exists).

    Raises:
        UserError: ``path`` is a folder, lies under a file, or its folder cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{field}: {path} is a folder, not a file")
    _check_creatable(path.parent, path, field)


def _check_creatable(folder: Path, target: Path, field: str) -> None:
    """``folder`` exists and is writable, or its nearest existing ancestor is."""
    existing = folder
    while not existing.exists():  # where the first folder will be created
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{field}: cannot create {target}: {existing} is a file")
    where = (
        f"cannot write in {target}"
        if existing == target
        else f"cannot create {target}: {existing} is not writable"
    )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{field}: {where} (permission denied)")
    try:  # access() does not see everything (root squash on NFS, quotas, some mounts)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise UserError(f"{field}: {where} ({err.strerror or err})") from None
