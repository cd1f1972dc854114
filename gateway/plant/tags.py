"""The process values (tags) each plant profile publishes: names, units, descriptions.

Production (the plant config's default OPC UA nodes) and the simulator (gateway.sim.plant, which
publishes exactly these) share this one list, so production never imports the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass

GAS_TURBINE = "gas_turbine"
BIOGAS_CHP = "biogas_chp"
PROFILES = (GAS_TURBINE, BIOGAS_CHP)


@dataclass(frozen=True)
class TagSpec:
    """One process value the plant publishes."""

    name: str
    unit: str
    description: str


_GT_TAGS: tuple[TagSpec, ...] = (
    TagSpec("state", "", "operating state (0 off, 1 starting, 2 running, 3 stopping, 4 tripped)"),
    TagSpec("load_setpoint", "%", "load setpoint in percent of rated power"),
    TagSpec("shaft_speed", "rpm", "shaft speed"),
    TagSpec("power", "kW", "generator active power"),
    TagSpec("fuel_flow", "kg/h", "fuel gas mass flow"),
    TagSpec("cdp", "bar", "compressor discharge pressure (absolute)"),
    *(TagSpec(f"exhaust_temp_{i}", "°C", f"exhaust thermocouple {i}") for i in range(1, 7)),
    TagSpec("bearing_vibration", "mm/s", "bearing vibration velocity (RMS)"),
    TagSpec("lube_oil_temp", "°C", "lube oil header temperature"),
    TagSpec("lube_oil_pressure", "bar", "lube oil header pressure (gauge)"),
    TagSpec("inlet_temp", "°C", "compressor inlet temperature"),
    TagSpec("starts", "", "start counter"),
    TagSpec("trips", "", "trip counter"),
)

_CHP_TAGS: tuple[TagSpec, ...] = (
    TagSpec("state", "", "operating state (0 off, 1 starting, 2 running, 3 stopping, 4 tripped)"),
    TagSpec("power_setpoint", "%", "power setpoint in percent of rated power"),
    TagSpec("engine_speed", "rpm", "engine speed"),
    TagSpec("engine_power", "kW", "generator active power"),
    TagSpec("heat_power", "kW", "heat delivered to the heating circuit"),
    TagSpec("gas_flow", "m³/h", "biogas flow to the engine"),
    TagSpec("methane_content", "%", "methane content of the biogas"),
    TagSpec("gas_holder_level", "%", "gas holder filling level"),
    TagSpec("coolant_supply_temp", "°C", "heating circuit supply (flow) temperature"),
    TagSpec("coolant_return_temp", "°C", "heating circuit return temperature"),
    TagSpec("exhaust_temp", "°C", "exhaust temperature after the turbocharger"),
    TagSpec("bearing_vibration", "mm/s", "crankshaft bearing vibration velocity (RMS)"),
    TagSpec("lube_oil_temp", "°C", "lube oil temperature"),
    TagSpec("lube_oil_pressure", "bar", "lube oil pressure (gauge)"),
    TagSpec("ambient_temp", "°C", "outdoor temperature"),
    TagSpec("starts", "", "start counter"),
    TagSpec("trips", "", "trip counter"),
)

TAGS: dict[str, tuple[TagSpec, ...]] = {GAS_TURBINE: _GT_TAGS, BIOGAS_CHP: _CHP_TAGS}

__all__ = ["BIOGAS_CHP", "GAS_TURBINE", "PROFILES", "TAGS", "TagSpec"]
