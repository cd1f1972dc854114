"""An NTP step for the processes a test starts: ``clockstep.c`` built with gcc into a temporary
directory and preloaded, the offset in a file the test rewrites while they run.

    step = ClockStep.build(tmp_path)
    subprocess.Popen(cmd, env={**os.environ, **step.env()})
    step.set(3600.0)     # the wall clock of every child jumps an hour ahead, monotonic does not
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("clockstep.c")


class ClockStep:
    def __init__(self, library: Path, offset_file: Path) -> None:
        self.library = library
        self.offset_file = offset_file
        self.offset = 0.0

    @classmethod
    def build(cls, workdir: Path) -> ClockStep:
        gcc = shutil.which("gcc") or shutil.which("cc")
        if gcc is None:
            raise RuntimeError("no C compiler: scripts/setup.sh installs gcc")
        workdir.mkdir(parents=True, exist_ok=True)
        library = workdir / "clockstep.so"
        subprocess.run(
            [gcc, "-shared", "-fPIC", "-O2", "-o", str(library), str(SOURCE), "-ldl"],
            check=True,
            capture_output=True,
        )
        step = cls(library, workdir / "clockstep.offset")
        step.set(0.0)
        return step

    def env(self) -> dict[str, str]:
        return {"LD_PRELOAD": str(self.library), "CLOCKSTEP_FILE": str(self.offset_file)}

    def set(self, offset_s: float) -> None:
        """Step the wall clock of every process started with :meth:`env` to real + offset."""
        data = struct.pack("<q", round(offset_s * 1e9))
        if self.offset_file.exists():
            # In place: the children map this page; a new file would not be seen.
            with self.offset_file.open("r+b") as f:
                f.write(data)
        else:
            self.offset_file.write_bytes(data)
        self.offset = offset_s
