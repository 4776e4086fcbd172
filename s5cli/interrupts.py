"""SIGTERM handled like Ctrl-C: the clean-up code that runs on KeyboardInterrupt runs on SIGTERM too.

`timeout`, Slurm, Kubernetes and torchrun stop a process with SIGTERM, whose default action ends it
at once: no `finally`, so temp files, scratch folders and half-made run directories stay behind.
Inside `terminate_as_interrupt()` a SIGTERM raises `Terminated` (a KeyboardInterrupt) in the main
thread instead, so every clean-up written for Ctrl-C (atomic outputs, predict's scratch folder, a
training run that never completed a step) also covers it. Child processes forked meanwhile (data
loader workers) keep the default action: a SIGTERM ends them as before.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal number, as shells report it


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated in this process (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:  # a forked child: die as the signal says, as it would have without us
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_code(exc: KeyboardInterrupt) -> int:
    """The exit status of a process stopped by this interrupt: 143 after SIGTERM, 130 after Ctrl-C."""
    return EXIT_CODES[signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT]
