"""Keep lifetimes' diagnostic prints out of stdout without touching other threads.

lifetimes' fitters ``print`` the optimizer result when a fit fails. A plain
``contextlib.redirect_stdout`` would swallow every thread's output while fits run (and
is not safe to nest from several threads), so instead ``sys.stdout`` is wrapped in a
proxy that drops writes only from threads that are currently fitting.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any


class _ThreadFilteredStdout:
    """``sys.stdout`` stand-in that discards writes from registered threads."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self._quiet: set[int] = set()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def silence_current_thread(self) -> Iterator[None]:
        ident = threading.get_ident()
        with self._lock:
            self._quiet.add(ident)
        try:
            yield
        finally:
            with self._lock:
                self._quiet.discard(ident)

    def write(self, text: str) -> int:
        if threading.get_ident() in self._quiet or self._target is None:
            return len(text)
        return int(self._target.write(text))

    def flush(self) -> None:
        if self._target is not None:
            self._target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


@contextlib.contextmanager
def filtered_stdout() -> Iterator[_ThreadFilteredStdout]:
    """Install the filtering proxy on ``sys.stdout`` for the duration of the block.

    Yields
    ------
    _ThreadFilteredStdout
        Use ``proxy.silence_current_thread()`` inside each fitting thread (including the
        calling thread when fitting sequentially).
    """
    original = sys.stdout
    proxy = _ThreadFilteredStdout(original)
    sys.stdout = proxy  # type: ignore[assignment]
    try:
        yield proxy
    finally:
        if sys.stdout is proxy:
            sys.stdout = original
