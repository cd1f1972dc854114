"""The simulated plant PLC: a :class:`~gateway.sim.plant.PlantModel` behind an asyncua server.

Address space: ``Objects/<Profile>/<tag>`` (``GasTurbine`` or ``BiogasChp``), one Double
variable per tag, node ids ``ns=2;s=<profile>.<tag>`` in namespace ``urn:gridgate:sim:plant``.
The model advances every ``tick`` seconds by ``tick * speed`` model seconds.

``python -m gateway.sim.plant_server --port 0 --profile gas_turbine`` prints
``listening on opc.tcp://HOST:PORT`` once it accepts connections.

Security modes as the driver: with a certificate and key the server offers the given
(policy, mode) pairs, and the None endpoint only when asked to; with ``users`` it wants a user
name and password instead of anonymous logins.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from asyncua import ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.binary_server_asyncio import BinaryServer
from asyncua.server.internal_server import InternalServer
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.status_codes import StatusCodes

from drivers.opcua.security import server_policy_type
from gateway.sim.plant import FAULT_KINDS, PROFILES, Fault, PlantModel

_log = logging.getLogger(__name__)

NAMESPACE = "urn:gridgate:sim:plant"
APPLICATION_URI = "urn:gridgate:sim:plant-server"
FOLDERS = {"gas_turbine": "GasTurbine", "biogas_chp": "BiogasChp"}


@dataclass(frozen=True)
class ServerSecurity:
    """Server-side security: its certificate, the endpoints it offers, who may log in."""

    certificate: Path | None = None  # DER or PEM; its SAN URI should be APPLICATION_URI
    private_key: Path | None = None
    policies: tuple[tuple[str, str], ...] = (("Basic256Sha256", "SignAndEncrypt"),)
    allow_none: bool = True
    users: Mapping[str, str] = field(default_factory=dict)  # name -> password; empty: anonymous


class _UserManager:
    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = dict(users)

    def get_user(
        self,
        iserver: InternalServer,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is not None and self._users.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


class PlantServer:
    """Serves one plant; :meth:`stop` and :meth:`start` again restart it on the same port."""

    def __init__(
        self,
        profile: str = "gas_turbine",
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        tick: float = 0.5,
        security: ServerSecurity | None = None,
        faults: Sequence[Fault] = (),
        max_subscriptions: int | None = None,
        model: PlantModel | None = None,
    ) -> None:
        self.model = model or PlantModel(profile, seed, faults=faults)
        self.profile = self.model.profile
        self.host = host
        self.port = port
        self.speed = speed
        self.tick = tick
        self.security = security or ServerSecurity()
        self.max_subscriptions = max_subscriptions
        self._server: Server | None = None
        self._nodes: dict[str, ua.NodeId] = {}
        self._status: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}"

    def node_id(self, tag: str) -> str:
        return f"ns=2;s={self.profile}.{tag}"

    def browse_path(self, tag: str) -> str:
        return f"0:Objects/2:{FOLDERS[self.profile]}/2:{tag}"

    def set_status(self, tag: str, status: int | None) -> None:
        """Report ``tag`` with this status code from the next tick on (None: Good again)."""
        if tag not in self.model.tag_names:
            raise KeyError(tag)
        if status is None:
            self._status.pop(tag, None)
        else:
            self._status[tag] = status

    def subscription_count(self) -> int:
        """Subscriptions the server holds right now (for leak checks)."""
        if self._server is None:
            return 0
        return len(self._server.iserver.subscription_service.subscriptions)

    def session_count(self) -> int:
        if self._server is None:
            return 0
        return len(self._server.iserver.asyncio_transports)

    async def start(self) -> None:
        sec = self.security
        user_manager = _UserManager(sec.users) if sec.users else None
        server = Server(user_manager=user_manager)  # type: ignore[arg-type]
        await server.init()
        server.set_endpoint(f"opc.tcp://{self.host}:{self.port}")
        server.set_server_name(f"gridgate plant simulator ({self.profile})")
        await server.set_application_uri(APPLICATION_URI)
        if self.max_subscriptions is not None:
            server.iserver.max_subscriptions = self.max_subscriptions
        policies = [server_policy_type(p, m) for p, m in sec.policies] if sec.certificate else []
        if sec.allow_none or not sec.certificate:
            policies.append(ua.SecurityPolicyType.NoSecurity)
        server.set_security_policy(policies)
        if sec.certificate is not None and sec.private_key is not None:
            await server.load_certificate(str(sec.certificate))
            await server.load_private_key(str(sec.private_key))
        if sec.users:
            server.set_identity_tokens([ua.UserNameIdentityToken])
        ns = await server.register_namespace(NAMESPACE)
        folder = await server.nodes.objects.add_object(ns, FOLDERS[self.profile])
        values = self.model.last or self.model.step(self.tick * self.speed)
        self._nodes.clear()
        for spec in self.model.tags:
            node = await folder.add_variable(
                ua.NodeId(ua.String(f"{self.profile}.{spec.name}"), ua.Int16(ns)),
                ua.QualifiedName(spec.name, ns),
                ua.Variant(values[spec.name], ua.VariantType.Double),
            )
            await node.write_attribute(
                AttributeIds.Description,
                ua.DataValue(ua.Variant(ua.LocalizedText(f"{spec.description} [{spec.unit}]"))),
            )
            self._nodes[spec.name] = node.nodeid
        await server.start()
        bserver = server.bserver
        if bserver is not None and bserver.port:
            self.port = int(bserver.port)
        self._server = server
        await self._publish(values)
        self._task = asyncio.create_task(self._run(), name="plant-sim")
        _log.info("plant sim %s: listening on %s", self.profile, self.url)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._server is not None:
            await self._server.stop()
            await _drop_sessions(self._server.iserver)
            self._server = None

    async def interrupt(self, down_for: float = 0.0) -> None:
        """Cut every connection and stop listening for ``down_for`` s: a network loss.

        Unlike :meth:`stop` + :meth:`start` (a PLC reboot, which re-initialises the address
        space and takes seconds) the server keeps its sessions, so subscriptions of the cut
        connections live on until their session times out, as on a real PLC.
        """
        server = self._server
        if server is None or server.bserver is None:
            raise RuntimeError("plant server is not running")
        await server.bserver.stop()
        if down_for > 0:
            await asyncio.sleep(down_for)
        bserver = BinaryServer(server.iserver, self.host, self.port, server.limits)
        bserver.set_policies(server._policies)
        await bserver.start()
        server.bserver = bserver

    async def __aenter__(self) -> PlantServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            await self._publish(self.model.step(self.tick * self.speed))

    async def _publish(self, values: Mapping[str, float]) -> None:
        server = self._server
        if server is None:
            return
        for tag, node_id in self._nodes.items():
            status = ua.StatusCode(ua.UInt32(self._status.get(tag, StatusCodes.Good)))
            variant = ua.Variant(values[tag], ua.VariantType.Double)
            await server.write_attribute_value(node_id, ua.DataValue(variant, StatusCode=status))


async def _drop_sessions(iserver: InternalServer) -> None:
    """Close the sessions a stopped server still holds, and wait for their tasks to end.

    asyncua keeps an activated session that has subscriptions when its connection is lost, so
    that the client can reactivate it (Part 4 6.7), and ``Server.stop()`` closes connections
    but not those sessions: each one's timeout watchdog and its subscriptions' publish loops
    would stay pending on the loop until the session timed out, or be destroyed pending when
    the loop closed. A stopped PLC keeps no sessions. asyncua offers no public list of them.
    """
    sessions = list(iserver._external_sessions.values())
    for session in sessions:
        await session.close_session(delete_subs=True)  # also awaits its subscriptions' loops
    watchdogs = [s._timeout_task for s in sessions if s._timeout_task is not None]
    await asyncio.gather(*watchdogs, return_exceptions=True)


def _fault(text: str) -> Fault:
    parts = text.split(":")
    if len(parts) not in (3, 4):
        raise argparse.ArgumentTypeError(f"{text!r}: expected KIND:ONSET_S:RATE_PER_H[:CHANNEL]")
    try:
        channel = int(parts[3]) if len(parts) == 4 else 1
        return Fault(parts[0], float(parts[1]), float(parts[2]), channel)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from exc


def _policy(text: str) -> tuple[str, str]:
    policy, _, mode = text.partition(":")
    return policy, mode or "SignAndEncrypt"


def _parser() -> argparse.ArgumentParser:
    kinds = sorted({k for kinds in FAULT_KINDS.values() for k in kinds})
    p = argparse.ArgumentParser(prog="python -m gateway.sim.plant_server", description=__doc__)
    p.add_argument("--profile", choices=PROFILES, default="gas_turbine")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4840)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--speed", type=float, default=1.0, help="model seconds per wall second")
    p.add_argument("--tick", type=float, default=0.5, help="update period in wall seconds")
    p.add_argument("--cert", type=Path, help="server certificate (DER or PEM)")
    p.add_argument("--key", type=Path, help="server private key (PEM)")
    p.add_argument(
        "--security",
        type=_policy,
        action="append",
        metavar="POLICY[:MODE]",
        help="offer this endpoint (repeatable), e.g. Aes256_Sha256_RsaPss:Sign",
    )
    p.add_argument(
        "--running",
        action="store_true",
        help="the unit runs from the start and keeps running (no daily dispatch schedule)",
    )
    p.add_argument(
        "--warm",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="run the model this many model seconds before serving (a warm unit)",
    )
    p.add_argument("--no-none", action="store_true", help="do not offer the None endpoint")
    p.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD_FILE")
    p.add_argument(
        "--fault", type=_fault, action="append", default=[], help=f"one of {', '.join(kinds)}"
    )
    return p


async def _serve(args: argparse.Namespace) -> int:
    users = {}
    for entry in args.user:
        name, _, file = entry.partition(":")
        users[name] = Path(file).read_text(encoding="utf-8").rstrip("\r\n")
    security = ServerSecurity(
        certificate=args.cert,
        private_key=args.key,
        policies=tuple(args.security or [("Basic256Sha256", "SignAndEncrypt")]),
        allow_none=not args.no_none,
        users=users,
    )
    model = PlantModel(
        args.profile,
        args.seed,
        faults=args.fault,
        dispatch=not args.running,
        running=True if args.running else None,
    )
    if args.warm > 0:
        model.run(round(args.warm))
    server = PlantServer(
        host=args.host,
        port=args.port,
        speed=args.speed,
        tick=args.tick,
        security=security,
        model=model,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    print(f"listening on {server.url}", flush=True)
    await stop.wait()
    await server.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(_serve(args))
    except OSError as exc:
        print(f"plant_server: {exc}", file=sys.stderr)
        return 71


if __name__ == "__main__":
    sys.exit(main())
