"""The --watch loop of gridgate status and gridgate points: draw a frame, wait, draw it again.

On a terminal each frame replaces the last (ANSI clear screen); into a pipe or a file the frames
follow one another, each starting with a header line, so a log or a test can tell them apart.
Ctrl-C (SIGINT) ends the watch with exit status 0; so does a reader that goes away (``| head``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

CLEAR = "\033[H\033[2J"  # cursor home, clear the screen
DEFAULT_INTERVAL = 2.0
MIN_INTERVAL = 0.1

Frame = Callable[[], object]  # prints one frame to stdout; its result is ignored


def interval(text: str) -> float:
    """argparse type of --watch SECONDS."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not MIN_INTERVAL <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{value:g} s is out of range ({MIN_INTERVAL:g} to 3600)")
    return value


def _frame(draw: Frame) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        draw()
    return buf.getvalue()


def watch(draw: Frame, seconds: float, title: str, out: TextIO | None = None) -> int:
    """Draw every ``seconds`` until Ctrl-C; returns 0 (the exit status of a watch)."""
    out = out if out is not None else sys.stdout
    tty = out.isatty()
    try:
        while True:
            body = _frame(draw)  # drawn off screen first: a slow frame never shows half drawn
            clock = time.strftime("%H:%M:%S")
            header = f"{title}, every {seconds:g} s at {clock} (Ctrl-C to stop)\n"
            out.write((CLEAR if tty else "\n") + header + ("" if tty else "-" * 40 + "\n"))
            out.write(body)
            out.flush()
            time.sleep(seconds)
    except KeyboardInterrupt:
        if tty:
            out.write("\n")
        return 0
    except BrokenPipeError:
        # The reader left: nothing more to say, and Python must not complain at exit either.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return 0
