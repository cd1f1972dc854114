"""A Debian bookworm root booted with ``systemd-nspawn -b``, driven from the host.

How the test talks to it: ``systemd-nspawn -b --register=no --keep-unit`` runs in the background
(no machined, no systemd on the host needed), and every command goes in with
``nsenter -t LEADER -m -u -i -n -p``, LEADER being the container's PID 1 (systemd). A command
entered that way sees the container's file system, /run and process ids, so ``systemctl``,
``journalctl`` and ``kill`` inside act on the container's systemd over its private socket. It is
not in the container's cgroup nor under nspawn's seccomp filter, which is why whatever must run
*inside* the sandbox of a unit is started by the container's systemd (``systemd-run``, a unit's
``ExecStartPost=``), never by nsenter.

Why unified cgroups and CAP_BPF: the host of these machines mounts the cgroup v1 controllers and
nspawn hands them to the container read-only, so a unit's ``DeviceAllow=`` would silently do
nothing. With ``SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1`` the container's systemd gets a cgroup2 tree
and enforces device policies with a BPF program, which it may load once the container keeps
CAP_BPF and the ``bpf`` system call (a gateway's systemd, on bare metal, has both). Memory limits
need the memory controller, which stays with the host's v1 hierarchy: ``MemoryMax=`` is set but
not enforced in this container (the test says so instead of pretending).

The network namespace is the host's (no ``--private-network``): the broker and the simulators
listen on the host's loopback and the daemons reach them as they would reach devices on a LAN.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Machine:
    def __init__(self, tarball: Path, workdir: Path) -> None:
        self.tarball = tarball
        self.workdir = workdir
        self.root = workdir / "root"
        self.log_path = workdir / "nspawn.log"
        self.name = f"gg-boot-{os.getpid()}"
        self._proc: subprocess.Popen[bytes] | None = None
        self.leader = 0

    # -- life cycle ------------------------------------------------------------------------------

    def unpack(self) -> None:
        self.root.mkdir(parents=True)
        # The root's own owners and modes (uids as numbers, setuid bits) are the point.
        subprocess.run(
            ["tar", "-C", str(self.root), "--numeric-owner", "-xpf", str(self.tarball)],
            check=True,
            timeout=300,
        )

    def boot(self, binds: dict[Path, str] | None = None, timeout: float = 60.0) -> None:
        """Boot; ``binds`` maps host directories to read-only paths inside."""
        try:
            self._boot(binds or {}, timeout)
        except BaseException:
            self.shutdown(timeout=20)
            raise

    def _boot(self, binds: dict[Path, str], timeout: float) -> None:
        log = self.log_path.open("ab")
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        self._proc = subprocess.Popen(
            [
                "systemd-nspawn",
                "-b",
                "--register=no",
                "--keep-unit",
                "--link-journal=no",
                "--console=read-only",
                f"--machine={self.name}",
                "--capability=CAP_BPF,CAP_PERFMON",
                "--system-call-filter=bpf",
                *(f"--bind-ro={host}:{inside}" for host, inside in binds.items()),
                "-D",
                str(self.root),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AssertionError(f"systemd-nspawn exited {self._proc.returncode}\n{self.log()}")
            self.leader = self._find_leader()
            if self.leader:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"no container PID 1 after {timeout} s\n{self.log()}")
        # systemctl answers once the manager's private socket exists, a little after PID 1.
        while time.monotonic() < deadline:
            state = self.run(["systemctl", "is-system-running"], check=False).stdout.strip()
            if state and state != "offline":
                return
            time.sleep(0.2)
        raise AssertionError(f"the container's systemd never answered\n{self.log()}")

    def wait_booted(self, timeout: float) -> str:
        """Wait until the boot transaction is over (every unit of the boot started or failed);
        returns "running" or "degraded"."""
        try:
            done = self.run(
                ["systemctl", "is-system-running", "--wait"], check=False, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            jobs = self.run(["systemctl", "list-jobs", "--no-pager"], check=False).stdout
            raise AssertionError(f"still booting after {timeout} s:\n{jobs}") from None
        state = done.stdout.strip()
        assert state in ("running", "degraded"), f"boot ended {state!r}\n{self.log()}"
        return state

    def _find_leader(self) -> int:
        assert self._proc is not None
        pid = self._proc.pid
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                for child in (task / "children").read_text().split():
                    exe = Path(f"/proc/{child}/comm").read_text().strip()
                    if exe == "systemd":
                        return int(child)
        return 0

    def shutdown(self, timeout: float = 60.0) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        # nspawn turns SIGTERM into an orderly poweroff of the container.
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=10)

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    # -- commands inside -------------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 60.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        assert self.leader, "not booted"
        cmd = [
            "nsenter",
            "-t",
            str(self.leader),
            "-m",
            "-u",
            "-i",
            "-n",
            "-p",
            "-r",
            "-w",
            "--",
            "env",
            "-i",
            f"PATH={PATH}",
            "HOME=/root",
            "LANG=C.UTF-8",
            *argv,
        ]
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, input=input
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"in the container: {shlex.join(argv)} exited {done.returncode}\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def sh(self, script: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return self.run(["sh", "-c", script], **kw)  # type: ignore[arg-type]

    def path(self, inside: str) -> Path:
        """The host path of a file inside (the root is a plain directory on the host)."""
        return self.root / inside.lstrip("/")

    def read(self, inside: str) -> str:
        """A file as the container sees it (/run and /tmp are its own tmpfs, not on the host)."""
        return self.run(["cat", inside]).stdout

    def write(self, inside: str, text: str, mode: int = 0o644) -> None:
        p = self.path(inside)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        Path(tmp).chmod(mode)
        Path(tmp).replace(p)

    # -- systemd ---------------------------------------------------------------------------------

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run(["systemctl", "show", unit, *(f"-p{p}" for p in props)]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def is_active(self, unit: str) -> str:
        return self.run(["systemctl", "is-active", unit], check=False).stdout.strip()

    def journal(self, unit: str, since: str | None = None) -> str:
        argv = ["journalctl", "--no-pager", "-o", "cat", "-u", unit]
        if since:
            argv += ["--since", since]
        return self.run(argv, check=False).stdout

    def wait_for(self, what: str, pred: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.25)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")
