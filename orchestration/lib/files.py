"""Small file helpers shared by the landing, export and model stores."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's content, read in 4 MB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def atomic_writer(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write ``path`` all at once: readers see the old file or the whole new one.

    Yields a handle on a temporary file in the same folder (``.<name>.<pid>.<random>.tmp``,
    created with the usual permissions, so ``os.replace`` is atomic). When the block ends
    normally the file is flushed, fsync'ed and moved over ``path``; when it raises, the
    temporary file is removed and ``path`` stays as it was. The folder must exist.

    Parameters
    ----------
    path : Path
        The file to write.
    mode : {"w", "wb"}, default "w"
        Text (UTF-8) or binary.

    Examples
    --------
    >>> with atomic_writer(folder / "params.json") as fh:  # doctest: +SKIP
    ...     fh.write(text)
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_writer mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, mode, encoding="utf-8" if mode == "w" else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` (text as UTF-8) at once, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path, "wb" if isinstance(data, bytes) else "w") as fh:
        fh.write(data)
