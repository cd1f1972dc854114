"""The footprint reference: a bare pymodbus + paho loop, no spool, no summaries, no health.

Every second: read 100 holding registers from each of N unit ids, decode 50 float32 (ABCD), and
publish the readings as one JSON message per device (QoS 0) to ``bare/DEVICE``.

    python bench/ref_bare_loop.py MODBUS_PORT MQTT_PORT [--devices 10] [--host 127.0.0.1]
"""

import argparse
import json
import struct
import time

import paho.mqtt.client as mqtt
from pymodbus.client import ModbusTcpClient

p = argparse.ArgumentParser()
p.add_argument("modbus_port", type=int)
p.add_argument("mqtt_port", type=int)
p.add_argument("--devices", type=int, default=10)
p.add_argument("--host", default="127.0.0.1")
args = p.parse_args()

mq = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bare-loop")
mq.connect(args.host, args.mqtt_port)
mq.loop_start()
clients = {u: ModbusTcpClient(args.host, port=args.modbus_port) for u in range(1, args.devices + 1)}
next_at = time.monotonic()
while True:
    for unit, client in clients.items():
        try:
            rr = client.read_holding_registers(0, count=100, device_id=unit)
        except Exception as exc:  # a reference loop: log and go on, like the 40-liners out there
            print(f"unit {unit}: {exc}", flush=True)
            continue
        if rr.isError():
            continue
        values = struct.unpack(">50f", struct.pack(">100H", *rr.registers))
        doc = {"ts": time.time(), "device": f"m{unit:02d}", "values": values}
        mq.publish(f"bare/m{unit:02d}", json.dumps(doc))
    next_at += 1.0
    time.sleep(max(0.0, next_at - time.monotonic()))
