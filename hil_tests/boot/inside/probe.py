"""What a gridgate unit's sandbox lets it do, seen from inside the unit.

Installed by the boot test as ``ExecStartPost=`` of each unit (a drop-in), so it runs with the
unit's user, namespaces, cgroup, seccomp filter and credentials, exactly as the daemon does. It
writes one JSON object to STATE/boot-probe/UNIT.json: for each check the errno name of the
failure, or "ok". Credentials are checked from the daemon's own mount namespace instead (the
test): systemd 252 gives the first ExecStartPost= of the uplink a credential directory it cannot
read, though the daemon and later ExecStartPost= lines can.
"""

from __future__ import annotations

import errno
import json
import mmap
import os
import sys
from pathlib import Path


def attempt(fn: object) -> str:
    try:
        fn()  # type: ignore[operator]
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return "ok"


def write(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    os.unlink(path)


def open_dev(path: str) -> None:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    os.close(fd)


def wx_map() -> None:
    m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    m.close()


def read(path: str) -> None:
    Path(path).read_bytes()


def main(unit: str, devices_file: str) -> None:
    state = os.environ.get("STATE_DIRECTORY", "/var/lib/gridgate")
    here = str(Path(__file__).parent)
    cg = Path("/proc/self/cgroup").read_text().strip().rpartition("::")[2]
    memory_max = Path(f"/sys/fs/cgroup{cg}/memory.max")
    result: dict[str, object] = {
        "unit": unit,
        "uid": os.getuid(),
        "groups": sorted(os.getgroups()),
        "write_usr": attempt(lambda: write("/usr/local/boot-probe")),
        "write_etc_gridgate": attempt(lambda: write("/etc/gridgate/boot-probe")),
        # World-writable directories the test made under /usr and /etc: only a read-only mount
        # (ProtectSystem=strict) stops a write there.
        "write_usr_rw": attempt(lambda: write(f"{here}/rw/boot-probe")),
        "write_etc_rw": attempt(lambda: write("/etc/gridgate-boot-rw/boot-probe")),
        "write_state_dir": attempt(lambda: write(f"{state}/boot-probe.tmp")),
        "wx_mmap": attempt(wx_map),
        "cgroup": cg,
        "memory_max": memory_max.read_text().strip() if memory_max.exists() else None,
        "credential_env": os.environ.get("CREDENTIALS_DIRECTORY"),
        # the machine's key that decrypts /etc/credstore.encrypted
        "host_key": attempt(lambda: read("/var/lib/systemd/credential.secret")),
        "devices": {},
    }
    devices: dict[str, str] = {}
    for line in Path(devices_file).read_text().split():
        devices[line] = attempt(lambda line=line: open_dev(line))
    result["devices"] = devices
    out = Path(state) / "boot-probe"
    out.mkdir(exist_ok=True)
    tmp = out / f"{unit}.tmp"
    tmp.write_text(json.dumps(result))
    tmp.replace(out / f"{unit}.json")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
