"""Subscribing to the configured nodes: one subscription, one monitored item per node."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.common.subscription import Subscription, SubscriptionHandler
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.uaerrors import UaStatusCodeError

from drivers.opcua.config import NodeConfig, OpcUaConfig
from drivers.opcua.errors import SubscriptionUnsupportedError
from drivers.opcua.quality import status_name

# Keep-alives at least every 10 s, so a silent server is noticed even with slow publishing.
_KEEPALIVE_S: Final = 10.0


async def subscribe(
    client: Client,
    nodes: list[Node | None],
    cfg: OpcUaConfig,
    handler: SubscriptionHandler,
    handles: dict[int, int],
    node_problem: Callable[[NodeConfig, str], None],
) -> Subscription:
    """Subscribe to every resolved node; ``handles`` gets client handle -> point index.

    A node the server refuses to monitor is reported to ``node_problem`` and stays BAD; a server
    that refuses the subscription itself raises :class:`SubscriptionUnsupportedError`.
    """
    keepalive = max(1, math.ceil(_KEEPALIVE_S / cfg.publishing_interval))
    params = ua.CreateSubscriptionParameters(
        RequestedPublishingInterval=cfg.publishing_interval * 1000.0,
        RequestedMaxKeepAliveCount=keepalive,
        RequestedLifetimeCount=keepalive * 3,
        MaxNotificationsPerPublish=0,
        PublishingEnabled=True,
        Priority=0,
    )
    try:
        subscription = await client.create_subscription(params, handler)
    except UaStatusCodeError as exc:
        raise SubscriptionUnsupportedError(
            f"server refused a subscription ({status_name(exc.code)})"
        ) from exc
    requests = []
    indices = []
    for index, (node, node_cfg) in enumerate(zip(nodes, cfg.nodes, strict=True)):
        if node is None:
            continue
        handle = index + 1
        handles[handle] = index
        requests.append(_item_request(node, node_cfg, handle, cfg))
        indices.append(index)
    results = await subscription.create_monitored_items(requests) if requests else []
    for index, result in zip(indices, results, strict=True):
        if isinstance(result, ua.StatusCode):
            node_problem(cfg.nodes[index], result.name)
    return subscription


def _item_request(
    node: Node, node_cfg: NodeConfig, handle: int, cfg: OpcUaConfig
) -> ua.MonitoredItemCreateRequest:
    params = ua.MonitoringParameters()
    params.ClientHandle = handle
    params.SamplingInterval = cfg.sampling_interval * 1000.0
    params.QueueSize = cfg.queue_size
    params.DiscardOldest = True
    if node_cfg.deadband > 0:
        mfilter = ua.DataChangeFilter()
        mfilter.Trigger = ua.DataChangeTrigger.StatusValue
        mfilter.DeadbandType = ua.DeadbandType.Absolute
        mfilter.DeadbandValue = node_cfg.deadband
        params.Filter = mfilter
    request = ua.MonitoredItemCreateRequest()
    request.ItemToMonitor = ua.ReadValueId(NodeId=node.nodeid, AttributeId=AttributeIds.Value)
    request.MonitoringMode = ua.MonitoringMode.Reporting
    request.RequestedParameters = params
    return request


__all__ = ["subscribe"]
