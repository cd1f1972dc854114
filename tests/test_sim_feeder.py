"""The feeder model: physically consistent, realistic in shape, deterministic for a seed.

Reference values are computed here from first principles (Kirchhoff's laws, I^2 R, the shipped
profile CSV read with the csv module), not through the model's own helpers.
"""

from __future__ import annotations

import csv
import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from gateway.core.errors import ConfigError
from gateway.sim.feeder import (
    Cabinet,
    FeederConfig,
    FeederModel,
    FeederTruth,
    House,
    default_feeder,
)
from gateway.sim.profiles_data import DEFAULT_PATH, load_profiles

JUNE = datetime(2024, 6, 21, tzinfo=UTC).timestamp()
JANUARY = datetime(2024, 1, 15, tzinfo=UTC).timestamp()
H = 3600.0


def hours(day: float, h: float) -> float:
    return day + h * H


def quiet(config: FeederConfig, **changes: float) -> FeederConfig:
    """No noise, no clouds: shapes can be checked exactly."""
    return replace(config, load_noise=0.0, cloudiness=0.0, **changes)


def scaled(config: FeederConfig, *, load: float = 1.0, pv_kwp: float | None = None) -> FeederConfig:
    cabinets = tuple(
        replace(
            cab,
            houses=tuple(
                replace(h, load_scale=load, pv_kwp=h.pv_kwp if pv_kwp is None else pv_kwp)
                for h in cab.houses
            ),
        )
        for cab in config.cabinets
    )
    return replace(config, cabinets=cabinets)


def house_node(config: FeederConfig) -> dict[str, int]:
    return {h.name: k for k, cab in enumerate(config.cabinets, start=1) for h in cab.houses}


def mean_voltage(reading: dict[str, float]) -> float:
    return sum(reading[f"voltage_l{p}"] for p in (1, 2, 3)) / 3


# ---- physics ------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [hours(JUNE, 2.5), hours(JUNE, 12.2), hours(JANUARY, 18.7)])
def test_kirchhoff_current_law_holds_at_every_segment(t: float) -> None:
    model = FeederModel(11, JUNE)
    truth = model.truth(t)
    node_of = house_node(model.config)
    n_seg = len(model.config.cabinets)
    expected = np.zeros((n_seg, 3), dtype=complex)
    for house in truth.houses:
        node = node_of[house.name]
        u = truth.node_voltage[node, house.phase - 1]
        current = (complex(house.p_w, house.q_var) / u).conjugate()
        expected[:node, house.phase - 1] += current  # every segment up to the house carries it
    np.testing.assert_allclose(truth.segment_current, expected, atol=1e-9)
    np.testing.assert_allclose(truth.neutral_current, expected.sum(axis=1), atol=1e-9)


def test_head_power_per_phase_is_houses_plus_losses() -> None:
    model = FeederModel(5, JUNE)
    cfg = model.config
    for t in (hours(JUNE, 3.0), hours(JUNE, 13.0), hours(JUNE, 19.5)):
        truth = model.truth(t)
        reading = model.step(t)["head"]
        losses = truth.segment_losses_w()
        for p in (1, 2, 3):
            houses = sum(h.p_w for h in truth.houses if h.phase == p)
            assert reading[f"power_l{p}"] == pytest.approx(
                houses + losses[:, p - 1].sum(), abs=1e-6
            )
        # The losses the attribution distributes are exactly R|I|^2 of phases and neutral, with
        # R taken from the cable data and the currents from the cabinet meters.
        km = np.array([c.length_m for c in cfg.cabinets]) / 1000.0
        meters = model.readings(truth)
        for k, cab in enumerate(cfg.cabinets):
            i_phase = [meters[cab.name][f"current_l{p}"] for p in (1, 2, 3)]
            i_n = meters[cab.name]["current_neutral"]
            r, rn = km[k] * cfg.cable.r_ohm_km, km[k] * cfg.cable.rn_ohm_km
            expected = r * sum(i * i for i in i_phase) + rn * i_n * i_n
            assert losses[k].sum() == pytest.approx(expected, rel=1e-9)
            assert expected > 0 or max(i_phase) == 0


def test_cabinet_powers_are_nested() -> None:
    model = FeederModel(2, JANUARY)
    t = hours(JANUARY, 19.0)  # dark: every house draws
    truth = model.truth(t)
    meters = model.readings(truth)
    losses = truth.segment_losses_w()
    node_of = house_node(model.config)
    names = model.meter_names
    for k, name in enumerate(names):
        # Head and cabinet 1 both measure segment 1 (index 0), but the head also pays its loss.
        node = max(k, 1)
        for p in (1, 2, 3):
            downstream = sum(
                h.p_w for h in truth.houses if h.phase == p and node_of[h.name] >= node
            )
            expected = downstream + losses[k:, p - 1].sum()
            assert meters[name][f"power_l{p}"] == pytest.approx(expected, abs=1e-6)
    # Summed over phases each meter sees at least what the next one sees (losses are >= 0) when
    # nothing downstream exports.
    totals = [meters[n]["power_total"] for n in names]
    assert all(h.p_w > 0 for h in truth.houses)
    assert totals == sorted(totals, reverse=True)


def test_meter_quantities_agree_with_each_other() -> None:
    model = FeederModel(4, JUNE)
    for name, r in model.step(hours(JUNE, 10.0)).items():
        for p in (1, 2, 3):
            s = math.hypot(r[f"power_l{p}"], r[f"reactive_power_l{p}"])
            assert r[f"apparent_power_l{p}"] == pytest.approx(s, rel=1e-12), name
            assert r[f"current_l{p}"] == pytest.approx(s / r[f"voltage_l{p}"], rel=1e-12), name
        assert r["power_total"] == pytest.approx(sum(r[f"power_l{p}"] for p in (1, 2, 3)))
        # Line-to-line voltages of a near-symmetric system are about sqrt(3) times phase voltages.
        assert r["voltage_l1_l2"] == pytest.approx(math.sqrt(3) * 230 * 1.02, rel=0.03)


def test_voltages_drop_downstream_at_high_load() -> None:
    cfg = quiet(scaled(default_feeder(), load=6.0, pv_kwp=0.0))
    model = FeederModel(8, JANUARY, cfg)
    r = model.step(hours(JANUARY, 19.0))
    means = [mean_voltage(r[name]) for name in model.meter_names]
    assert means == sorted(means, reverse=True)
    assert means[0] - means[-1] > 3.0  # volts: a visible drop along 370 m of cable
    # L1 carries most houses: its voltage at the end of the feeder is the lowest of all.
    head, tail = r["head"], r["cab3"]
    assert tail["voltage_l1"] < head["voltage_l1"] - 3.0
    assert tail["current_l1"] > tail["current_l3"]


def test_voltage_rises_above_the_head_with_high_pv() -> None:
    cfg = quiet(scaled(default_feeder(), pv_kwp=8.0))
    model = FeederModel(8, JUNE, cfg)
    r = model.step(hours(JUNE, 12.0))
    assert r["head"]["power_total"] < -50_000  # the feeder exports
    assert mean_voltage(r["cab3"]) > mean_voltage(r["head"]) + 2.0
    assert r["cab3"]["voltage_l1"] > r["head"]["voltage_l1"] + 5.0
    assert r["head"]["energy_export"] > 0


def test_head_voltage_follows_a_slow_setpoint() -> None:
    model = FeederModel(1, JUNE)
    samples = [
        mean_voltage(model.readings(model.truth(hours(JUNE, m / 60)))["head"])
        for m in range(0, 1440, 7)
    ]
    nominal = 230 * 1.02
    assert all(abs(v / nominal - 1) < 0.01 for v in samples)
    assert max(samples) - min(samples) > 0.5  # it does move


# ---- time series --------------------------------------------------------------------------------


def test_pv_is_zero_at_night_and_bell_shaped_on_a_clear_day() -> None:
    model = FeederModel(3, JUNE, quiet(default_feeder()))

    def pv(t: float) -> float:
        return sum(h.p_pv_w for h in model.truth(t).houses)

    for h in (0.0, 1.5, 2.5, 21.5, 23.0):
        assert pv(hours(JUNE, h)) == 0.0
    winter = FeederModel(3, JANUARY, quiet(default_feeder()))
    for h in (6.0, 17.5, 22.0):
        assert sum(x.p_pv_w for x in winter.truth(hours(JANUARY, h)).houses) == 0.0
    curve = [pv(hours(JUNE, h)) for h in (6.0, 9.0, 12.0)]
    assert 0 < curve[0] < curve[1] < curve[2]
    assert pv(hours(JUNE, 12.0)) == pytest.approx(pv(hours(JUNE, 12.0)), rel=1e-12)
    # Symmetric about solar noon (longitude 0: about 12:00 UTC, off by the equation of time).
    assert pv(hours(JUNE, 9.0)) == pytest.approx(pv(hours(JUNE, 15.0)), rel=0.05)
    # Peak near kWp * performance ratio * (irradiance ~ 0.9 kW/m2 at 61 degrees sun elevation).
    kwp = sum(h.pv_kwp for cab in model.config.cabinets for h in cab.houses)
    assert 0.65 * kwp * 1000 < curve[2] < 0.85 * kwp * 1000


def test_clouds_dip_pv_and_are_seeded() -> None:
    cloudy = replace(default_feeder(), cloudiness=1.0, load_noise=0.0)
    clear = quiet(default_feeder())
    times = [hours(JUNE, 6.0 + m / 60) for m in range(0, 12 * 60, 2)]

    def pv_series(model: FeederModel) -> np.ndarray:
        return np.array([sum(h.p_pv_w for h in model.truth(t).houses) for t in times])

    base = pv_series(FeederModel(1, JUNE, clear))
    dipped = pv_series(FeederModel(1, JUNE, cloudy))
    assert np.all(dipped <= base + 1e-9)
    assert dipped.sum() < 0.9 * base.sum()
    assert np.min(dipped / np.maximum(base, 1.0)) < 0.5  # at least one deep dip
    assert np.array_equal(dipped, pv_series(FeederModel(1, JUNE, cloudy)))
    assert not np.array_equal(dipped, pv_series(FeederModel(2, JUNE, cloudy)))


def test_load_follows_the_shipped_profile_interpolated_within_the_minute() -> None:
    with DEFAULT_PATH.open(newline="") as fh:
        rows = list(csv.reader(fh))
    column = {int(name[1:]): i for i, name in enumerate(rows[0]) if name.startswith("p")}
    watts = {pid: [float(r[col]) for r in rows[1:]] for pid, col in column.items()}
    cfg = quiet(default_feeder())
    model = FeederModel(6, JUNE, cfg)
    houses = [h for cab in cfg.cabinets for h in cab.houses]
    for minute in (0, 417, 1082, 1439):
        at = model.truth(JUNE + 60 * minute)
        mid = model.truth(JUNE + 60 * minute + 15)
        for spec, truth, halfway in zip(houses, at.houses, mid.houses, strict=True):
            series = watts[spec.profile]
            assert truth.p_load_w == pytest.approx(series[minute], abs=1e-9)
            nxt = series[(minute + 1) % 1440]
            assert halfway.p_load_w == pytest.approx(0.75 * series[minute] + 0.25 * nxt, abs=1e-9)
            assert truth.q_load_var == pytest.approx(
                truth.p_load_w * math.tan(math.acos(0.95)), rel=1e-12
            )


def test_load_noise_is_small_and_changes_each_second() -> None:
    model = FeederModel(9, JUNE)
    quiet_model = FeederModel(9, JUNE, quiet(default_feeder()))
    ratios = []
    for s in range(0, 200):
        t = hours(JUNE, 19.0) + s
        noisy = model.truth(t).houses[0].p_load_w
        clean = quiet_model.truth(t).houses[0].p_load_w
        ratios.append(noisy / clean)
    ratios_arr = np.array(ratios)
    assert 0.005 < ratios_arr.std() < 0.06
    assert abs(ratios_arr.mean() - 1) < 0.01
    assert len(set(ratios)) > 190


def test_frequency_near_50_hz() -> None:
    model = FeederModel(4, JUNE)
    f = np.array([model.truth(JUNE + 37.0 * k).frequency_hz for k in range(300)])
    assert np.all(np.abs(f - 50.0) < 0.05)
    assert f.std() > 0.005


def test_deterministic_for_a_seed_and_independent_of_call_order() -> None:
    a, b, c = FeederModel(42, JUNE), FeederModel(42, JUNE), FeederModel(43, JUNE)
    times = [JUNE + 60.0 * k for k in range(0, 1440, 97)]
    ra = [a.step(t) for t in times]
    rb = [b.step(t) for t in times]
    assert ra == rb
    assert [c.step(t) for t in times] != ra
    # truth is a pure function of t: asking in another order or twice changes nothing.
    back = [a.truth(t) for t in reversed(times)][::-1]
    fresh = FeederModel(42, JUNE)
    for t, truth in zip(times, back, strict=True):
        assert_same_truth(truth, fresh.truth(t))


def assert_same_truth(x: FeederTruth, y: FeederTruth) -> None:
    assert x.houses == y.houses
    assert np.array_equal(x.node_voltage, y.node_voltage)
    assert x.frequency_hz == y.frequency_hz


# ---- energy counters ----------------------------------------------------------------------------


def test_energy_counters_integrate_power() -> None:
    cfg = quiet(default_feeder())
    fine = FeederModel(7, JANUARY, cfg)
    start = hours(JANUARY, 18.0)
    readings = [fine.step(start + 10.0 * k) for k in range(361)]  # one hour, night: import only
    for name in fine.meter_names:
        first, last = readings[0][name], readings[-1][name]
        power = np.array([r[name]["power_total"] for r in readings])
        kwh = float(np.sum(0.5 * (power[1:] + power[:-1])) * 10.0 / 3.6e6)
        assert last["energy_import"] - first["energy_import"] == pytest.approx(kwh, rel=1e-9)
        assert last["energy_export"] == first["energy_export"]
        assert last["energy_total"] == pytest.approx(last["energy_import"] + last["energy_export"])
        reactive = np.array([r[name]["reactive_power_total"] for r in readings])
        kvarh = float(np.sum(0.5 * (reactive[1:] + reactive[:-1])) * 10.0 / 3.6e6)
        assert last["reactive_energy_import"] - first["reactive_energy_import"] == pytest.approx(
            kvarh, rel=1e-9
        )
    # One big step integrates in sub-steps and lands close to the fine integration.
    coarse = FeederModel(7, JANUARY, cfg)
    c0 = coarse.step(start)["head"]["energy_import"]
    c1 = coarse.step(start + 3600.0)["head"]["energy_import"]
    f_delta = readings[-1]["head"]["energy_import"] - readings[0]["head"]["energy_import"]
    assert c1 - c0 == pytest.approx(f_delta, rel=0.02)
    # Time never runs backwards for a counter.
    assert coarse.step(start)["head"]["energy_import"] == c1


def test_export_counts_while_pv_exceeds_load() -> None:
    model = FeederModel(7, JUNE, quiet(scaled(default_feeder(), pv_kwp=6.0)))
    first = model.step(hours(JUNE, 12.0))["cab3"]
    last = model.step(hours(JUNE, 12.5))["cab3"]
    assert last["energy_export"] - first["energy_export"] > 1.0  # kWh in half an hour
    assert last["energy_import"] == first["energy_import"]


# ---- config and data ----------------------------------------------------------------------------


def test_bad_config_reports_every_issue() -> None:
    cfg = FeederConfig(
        cabinets=(Cabinet("head", 0.0, (House("x", 4, 999), House("x", 1, 1, pv_kwp=-1.0))),),
        power_factor=1.5,
    )
    with pytest.raises(ConfigError) as err:
        FeederModel(1, JUNE, cfg)
    text = str(err.value)
    for fragment in (
        "cabinets[0].name: duplicate meter name 'head'",
        "cabinets[0].length_m: must be > 0",
        "cabinets[0].houses[0].phase: must be 1, 2 or 3",
        "cabinets[0].houses[0].profile: no load profile 999",
        "cabinets[0].houses[1].name: duplicate name 'x'",
        "cabinets[0].houses[1]: pv_kwp and load_scale must be >= 0",
        "power_factor: must be in (0, 1]",
    ):
        assert fragment in text
    with pytest.raises(ValueError, match="seed"):
        FeederModel(-1, JUNE)


def test_shipped_profiles_are_the_ieee_originals() -> None:
    shipped = load_profiles()
    assert shipped.kw.shape == (30, 1440)
    assert shipped.ids == tuple(range(1, 31))
    source = Path("/work/shared/data/ieee-eu-lv/Daily_1min_100profiles")
    if not source.is_dir():
        pytest.skip("original IEEE EU LV profiles not present on this machine")
    for pid in (1, 17, 30):
        original = [float(x) for x in (source / f"load_profile_{pid}.txt").read_text().split()]
        np.testing.assert_allclose(shipped.kw[shipped.index(pid)], original, atol=1e-12)
