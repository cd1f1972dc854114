"""`gridgate scan modbus` as a technician types it (a process), against real peers on loopback:
the grid simulator's meters (unit-id sweep, probe), a SunSpec meter simulator (discovery, the
written map, which `check-config` accepts and the driver then reads correctly), RTU slaves on a
pty (sweep), and hostile peers sending junk (one clear line, never a traceback)."""

from __future__ import annotations

import asyncio
import os
import re
import struct
import subprocess
import sys
import tty
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from drivers.modbus.device import DeviceConnection
from drivers.modbus.plan import compile_plan
from drivers.modbus.regmap import load_profile
from drivers.modbus.source import ModbusTcpSource
from gateway.config.issues import IssueSink
from gateway.core.model import Quality
from gateway.sim.sunspec_server import SunSpecSimulator
from tests.raw_tcp import Reply, raw_server

CLI = [sys.executable, "-m", "gateway.cli", "scan", "modbus"]


def scan(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


async def ascan(*args: str) -> tuple[int, str, str]:
    """The same, while this test's event loop keeps serving a simulator or a pty."""
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture(scope="module")
def grid_sim() -> Iterator[tuple[int, dict[str, int]]]:
    """The grid simulator as the bench runs it: one TCP port, a unit id per meter."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.sim.grid_server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line
        port = int(line.rsplit(":", 1)[1])
        meters: dict[str, int] = {}
        while len(meters) < 4:
            m = re.fullmatch(r"meter (\S+) unit (\d+)\n", proc.stdout.readline())
            assert m is not None
            meters[m.group(1)] = int(m.group(2))
        yield port, meters
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
async def sunspec() -> AsyncIterator[SunSpecSimulator]:
    sim = SunSpecSimulator("127.0.0.1", 0, unit_id=7)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def test_sweep_finds_exactly_the_simulated_meters(grid_sim: tuple[int, dict[str, int]]) -> None:
    port, meters = grid_sim
    # The SDM630 profile the simulator serves has input registers from 0.
    out = scan("--host", "127.0.0.1", "--port", str(port), "--units", "1-30", "--input")
    assert out.returncode == 0, out.stderr
    ids = sorted(meters.values())
    assert f"found {len(ids)} unit id(s): {', '.join(map(str, ids))}" in out.stdout
    assert "timeout 0.2 s" in out.stdout  # the short default


def test_probe_shows_the_voltage_as_f32_abcd(grid_sim: tuple[int, dict[str, int]]) -> None:
    port, meters = grid_sim
    out = scan(
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--probe",
        str(meters["head"]),
        "--input",
        "--start",
        "0",
        "--count",
        "6",
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[1].split()[:4] == ["address", "hex", "u16", "i16"]
    first = lines[2].split()  # address 0: voltage_l1, f32 high word first
    assert first[0] == "0" and first[5] == "ABCD"
    assert 200 < float(first[6]) < 260
    # every register has a row per order; the last has no 32-bit reading
    assert sum(1 for r in lines if r.split()[:1] == ["DCBA"]) == 6
    assert lines[-1].split() == ["DCBA", "-", "-", "-"]


async def test_sunspec_models_and_the_map_check_config_accepts(
    sunspec: SunSpecSimulator, tmp_path: Path
) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    written = profiles / "pv_meter.toml"
    code, out, err = await ascan(
        "--host",
        "127.0.0.1",
        "--port",
        str(sunspec.port),
        "--sunspec",
        "7",
        "--write-map",
        str(written),
    )
    assert code == 0, err
    assert "marker at holding register 40000" in out
    rows = re.findall(r"^\s+(\d+)\s+(\d+)\s+(\d+)  (.+)$", out, re.M)
    assert [(int(a), int(m), int(n)) for a, m, n, _ in rows] == [
        (40002, 1, 66),
        (40070, 64001, 4),
        (40076, 203, 105),
    ]
    assert [name for *_, name in rows] == [
        "common",
        "vendor-specific",
        "meter (wye-connect three phase)",
    ]
    assert "manufacturer   gridgate" in out and "serial number  SIM0001" in out
    assert "unit_id = 7" in out
    assert await _map_passes_check_config_and_reads(sunspec, tmp_path, out) == 31


async def test_a_single_phase_meter_maps_only_what_it_implements(tmp_path: Path) -> None:
    sim = SunSpecSimulator("127.0.0.1", 0, unit_id=3, meter=201, vendor_model=False)
    await sim.start()
    try:
        (tmp_path / "profiles").mkdir()
        written = tmp_path / "profiles" / "house.toml"
        code, out, err = await ascan("--host", "127.0.0.1", "--port", str(sim.port),
                                     "--sunspec", "3", "--write-map", str(written))  # fmt: skip
        assert code == 0, err
        assert "40070    201     105  meter (single phase)" in out
        assert "left out: AphB: not implemented (0x8000)" in out
        assert await _map_passes_check_config_and_reads(sim, tmp_path, out) == 15
    finally:
        await sim.stop()


async def _map_passes_check_config_and_reads(
    sim: SunSpecSimulator, tmp_path: Path, out: str
) -> int:
    """The written profile, named in a config: check-config accepts it (as a process), and the
    driver reads the simulator's values with it. The number of points."""
    profile = re.search(r'profile = "(\S+)"', out)
    gap = re.search(r"max_gap = (\d+)", out)
    assert profile is not None and gap is not None
    config = tmp_path / "gridgate.toml"
    config.write_text(
        f'[gateway]\nsite = "s"\nid = "gw"\nstate_dir = "{tmp_path / "state"}"\n\n'
        f'[grid.meters.pv]\nprofile = "{profile.group(1)}"\ntransport = "tcp"\n'
        f'host = "127.0.0.1"\nport = {sim.port}\nunit_id = {sim.unit_id}\n'
        f"max_gap = {gap.group(1)}\n"
    )
    check = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "check-config", "-c", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    cout, cerr = await check.communicate()
    assert check.returncode == 0, cerr.decode()
    assert re.search(r"meter pv: \d+ points in 1 request\(s\)", cout.decode()), cout.decode()

    # The map reads the simulator's values through the driver, scale factors applied.
    sink = IssueSink("test")
    points = load_profile(profile.group(1), sink, "profile", [tmp_path / "profiles"])
    assert not sink.issues
    source = ModbusTcpSource(
        DeviceConnection("pv", "tcp", sim.unit_id, 1.0, 1.0, host="127.0.0.1", port=sim.port)
    )
    try:
        frame = await source.read(compile_plan(points, max_gap=int(gap.group(1))))
    finally:
        source.close()
    assert (frame.quality == Quality.GOOD).all()
    got = dict(zip((p.name for p in points), frame.values.tolist(), strict=True))
    assert got == pytest.approx(sim.expected, rel=1e-9)
    return len(points)


async def test_no_sunspec_marker_is_one_line(sunspec: SunSpecSimulator) -> None:
    code, _out, err = await ascan(
        "--host", "127.0.0.1", "--port", str(sunspec.port), "--sunspec", "8", "--timeout", "0.2"
    )
    assert code == 1
    assert err.startswith("scan modbus: unit 8: no SunSpec marker (SunS)")
    assert "GATEWAY PATH UNAVAILABLE" in err and "Traceback" not in err


# ---- RTU: a sweep over a pty ---------------------------------------------------------------------

LIVE = {2: [0x1234], 5: [0x0042]}
BUSY = 9  # answers with an exception: a device is there
NOISY = 7  # answers with a broken CRC: not counted, but reported


def _crc(frame: bytes) -> bytes:
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return frame + struct.pack("<H", crc)


class RtuSlaves:
    """Units 2 and 5 answer FC3 reads of register 0, 9 exception 6, 7 with a bad CRC; the rest
    are silent."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.seen: list[int] = []

    def on_readable(self) -> None:
        try:
            self.buf += os.read(self.fd, 512)
        except BlockingIOError:
            return
        while len(self.buf) >= 8:
            frame, self.buf = self.buf[:8], self.buf[8:]
            if _crc(frame[:6]) != frame:
                continue
            unit, fc, address, count = struct.unpack(">BBHH", frame[:6])
            self.seen.append(unit)
            if unit == NOISY:
                os.write(self.fd, bytes([unit, fc, 2, 0x12, 0x34, 0x00, 0x00]))
            elif unit == BUSY:
                os.write(self.fd, _crc(bytes([unit, fc | 0x80, 6])))
            elif unit in LIVE and fc == 3:
                regs = LIVE[unit][address : address + count]
                os.write(
                    self.fd, _crc(struct.pack(f">BBB{len(regs)}H", unit, fc, 2 * len(regs), *regs))
                )


async def test_rtu_sweep_finds_the_slaves_on_the_line() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    loop = asyncio.get_running_loop()
    slaves = RtuSlaves(master)
    loop.add_reader(master, slaves.on_readable)
    try:
        code, out, err = await ascan(
            "--serial",
            os.ttyname(slave),
            "--baud",
            "19200",
            "--parity",
            "N",
            "--units",
            "1-10",
            "--timeout",
            "0.1",
        )
    finally:
        loop.remove_reader(master)
        os.close(master)
        os.close(slave)
    assert code == 0, err
    assert "1 at a time" in out
    assert "found 3 unit id(s): 2, 5, 9" in out
    assert "unit   2: answered: 0 = 4660 (0x1234)" in out
    assert "SERVER DEVICE BUSY (0x06)" in out
    assert "unusable replies at 7: check the baud rate and parity" in out
    assert slaves.seen == list(range(1, 11))  # one id at a time, in order


# ---- hostile peers and bad options ---------------------------------------------------------------


def _reply(request: bytes, pdu: bytes) -> bytes:
    tid, _proto, _len, unit = struct.unpack(">HHHB", request[:7])
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def _registers(request: bytes, image: dict[int, int]) -> bytes:
    fc, address, count = struct.unpack(">BHH", request[7:12])
    regs = [image.get(address + i, 0) for i in range(count)]
    return _reply(request, struct.pack(f">BB{count}H", fc, 2 * count, *regs))


ENDLESS = {40000: 0x5375, 40001: 0x6E53} | {a: 64001 for a in range(40002, 40300, 2)}


@pytest.mark.parametrize(
    ("name", "reply", "args", "expect"),
    [
        ("junk bytes", lambda r: b"\xde\xad\xbe\xef" * 8, ("--probe", "1"), "scan modbus: unit 1"),
        ("junk pdu", lambda r: _reply(r, b"\x03\xff\x01"), ("--probe", "1"), "scan modbus: unit 1"),
        (
            "model past 65535",
            lambda r: _registers(r, {40000: 0x5375, 40001: 0x6E53, 40002: 1, 40003: 65000}),
            ("--sunspec", "1"),
            "model list incomplete: model 1 at 40002: length 65000 runs past 65535",
        ),
        (
            "endless chain",
            lambda r: _registers(r, ENDLESS),  # vendor model, length 0, forever
            ("--sunspec", "1"),
            "model list incomplete: more than 64 models without an end marker",
        ),
        (
            "zeros after the marker",
            lambda r: _registers(r, {40000: 0x5375, 40001: 0x6E53}),
            ("--sunspec", "1"),
            "model header at 40002: id 0 is not a model",
        ),
        (
            "junk names",
            lambda r: _registers(
                r,
                {
                    40000: 0x5375,
                    40001: 0x6E53,
                    40002: 1,
                    40003: 66,
                    40004: 0x1B5B,
                    40005: 0x3241,
                    40070: 0xFFFF,
                },
            ),
            ("--sunspec", "1"),
            r"manufacturer   \x1b[2A",
        ),
    ],
)
async def test_a_hostile_device_gets_a_clear_line_not_a_traceback(
    name: str, reply: Reply, args: tuple[str, ...], expect: str
) -> None:
    async with raw_server(reply) as port:
        _code, out, err = await ascan(
            "--host", "127.0.0.1", "--port", str(port), "--timeout", "0.3", *args
        )
    assert "Traceback" not in out + err, name
    assert "\x1b" not in out + err
    assert expect in out + err, (name, out, err)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--host", "127.0.0.1", "--units", "0-3"), "--units: 0-3 is not within 1-247"),
        (("--host", "127.0.0.1", "--units", "x"), "--units: 'x' is not an id"),
        (("--host", "127.0.0.1", "--probe", "1", "--count", "126"), "--count: must be 1 to 125"),
        (("--host", "127.0.0.1", "--probe", "1", "--timeout", "0"), "--timeout: "),
        (("--host", "127.0.0.1", "--probe", "300"), "UNIT: "),
        (
            ("--host", "127.0.0.1", "--sunspec", "1", "--write-map", "Bad Name.toml"),
            "--write-map: 'Bad Name.toml' must be a profile name",
        ),
        (("--serial", "/dev/ttyUSB0", "--baud", "1234", "--units", "1"), "--baud: "),
    ],
)
def test_bad_options_are_refused_before_any_io(args: tuple[str, ...], message: str) -> None:
    out = scan(*args)
    assert out.returncode == 64, out.stdout + out.stderr
    assert out.stderr.startswith("scan modbus: ") and message in out.stderr


def test_help_names_every_option_in_plain_text() -> None:
    out = subprocess.run([*CLI, "--help"], capture_output=True, text=True, check=True)
    for option in (
        "--host",
        "--serial",
        "--units",
        "--probe",
        "--sunspec",
        "--write-map",
        "--timeout",
        "--input",
        "--concurrency",
        "--baud",
        "--parity",
    ):
        assert option in out.stdout
    assert "``" not in out.stdout
