"""``gridgate demo``: the whole gateway on a simulated bench (see :mod:`gateway.demo.run`)."""

from gateway.demo.run import run_demo

__all__ = ["run_demo"]
