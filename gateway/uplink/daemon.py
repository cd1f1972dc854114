"""The uplink daemon: drains the spool to the upstream MQTT broker. Wiring only."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gateway.core.backoff import Backoff
from gateway.core.supervisor import LoopFactory
from gateway.uplink.config import UplinkConfig
from gateway.uplink.encode import JsonEncoder
from gateway.uplink.forwarder import Forwarder
from gateway.uplink.mqtt import MqttSettings

if TYPE_CHECKING:
    from gateway.core.runtime import DaemonContext

log = logging.getLogger(__name__)

NAME = "uplink"
_BACKOFF_INITIAL = 1.0
_BACKOFF_CAP = 60.0
_CONNECT_TIMEOUT = 10.0


def mqtt_settings(cfg: UplinkConfig) -> MqttSettings:
    tls = cfg.tls
    return MqttSettings(
        host=cfg.host,
        port=cfg.port,
        protocol="5" if cfg.protocol == "5" else "3.1.1",
        client_id=cfg.client_id,
        keepalive=cfg.keepalive,
        username=cfg.username,
        password=cfg.password.reveal() if cfg.password is not None else None,
        ca_file=str(tls.ca_file) if tls and tls.ca_file else None,
        cert_file=str(tls.cert_file) if tls and tls.cert_file else None,
        key_file=str(tls.key_file) if tls and tls.key_file else None,
        tls_insecure=bool(tls and tls.insecure),
        use_tls=tls is not None,
        connect_timeout=_CONNECT_TIMEOUT,
    )


class UplinkDaemon:
    name = NAME

    def __init__(self, ctx: DaemonContext) -> None:
        cfg = ctx.config.section("uplink", UplinkConfig)
        assert cfg is not None  # parsed for the uplink's own process
        self._ctx = ctx
        self._cfg = cfg
        if cfg.tls is None:
            # Once per start (and per reload): the config says so, but nobody should forget it.
            secret = " and the password" if cfg.password is not None else ""
            log.warning(
                "uplink: TLS is off (tls = false): messages%s go to %s:%d in clear text",
                secret,
                cfg.host,
                cfg.port,
            )
        self.forwarder = Forwarder(
            ctx.spool,
            mqtt_settings(cfg),
            JsonEncoder(),
            ctx.config.gateway.site,
            ctx.config.gateway.gateway_id,
            inflight=cfg.inflight,
            backoff=Backoff(_BACKOFF_INITIAL, _BACKOFF_CAP),
            on_progress=lambda _event: ctx.beats.beat(f"{NAME}.forward"),
        )

    def loops(self) -> dict[str, tuple[LoopFactory, float]]:
        # Progress comes at least once per backoff wait, per connect attempt, per acknowledged
        # batch, or per idle poll; a broker that stops acking is noticed by the keepalive.
        allowance = max(_BACKOFF_CAP, 1.5 * self._cfg.keepalive) + _CONNECT_TIMEOUT + 10.0
        return {"forward": (self.forwarder.run, allowance)}

    def status(self) -> dict[str, Any]:
        f = self.forwarder
        problem = f.last_error
        return {
            "summary": f"{f.state}, {f.published} published",
            "broker": f"{self._cfg.host}:{self._cfg.port}",
            "uplink_state": f.state,
            "published": f.published,
            "last_error": problem,
            "lines": [
                f"broker {self._cfg.host}:{self._cfg.port}: {f.state}, {f.published} published"
                + (f" (last error: {problem})" if problem else "")
            ],
        }

    async def drain(self, grace: float) -> None:
        """At a stop, after the field daemons flushed: deliver what they spooled, bounded."""
        if await self.forwarder.drain(grace):
            log.info("uplink: delivered everything spooled before the stop")
        else:
            log.warning(
                "uplink: stopping before everything spooled was delivered (%s, grace %.0f s); "
                "the rest stays in the spool for the next start",
                self.forwarder.state,
                grace,
            )

    async def close(self) -> None:
        """The forwarder stops gracefully on cancellation; rows not acked stay in the spool."""


def build(ctx: DaemonContext) -> UplinkDaemon:
    return UplinkDaemon(ctx)
