"""A Modbus RTU master written with pymodbus 3.16 (its synchronous serial client), for
plcprobe's RS-485 tests: ROUNDS rounds over a serial port at 19200 8N1, each reading hr:0+4 from
every unit of --units in turn and writing one register (FC 6) to the first unit, no retries.
Then one JSON line on stdout, per unit: {"UNIT": {"sent": n, "ok": n, "no_answer": n,
"exceptions": n}, ...} and "seconds".
A unit that does not answer, or answers with a bad CRC (pymodbus discards it), is `no_answer`.
Usage: python pymodbus_rtu_master.py --serial PTY --units 1,5,9 [--rounds 10] [--timeout 0.3]
"""

import argparse
import json
import logging
import sys
import time

from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--serial", required=True, metavar="PTY")
    ap.add_argument("--units", required=True, help="comma-separated unit IDs")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=0.3, help="per request, seconds")
    args = ap.parse_args()
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    units = [int(u) for u in args.units.split(",")]
    client = ModbusSerialClient(
        args.serial,
        framer=FramerType.RTU,
        baudrate=19200,
        bytesize=8,
        parity="N",
        stopbits=1,
        timeout=args.timeout,
        retries=0,
    )
    if not client.connect():
        print(f"cannot open {args.serial}", file=sys.stderr)
        return 2
    counts = {u: {"sent": 0, "ok": 0, "no_answer": 0, "exceptions": 0} for u in units}

    def ask(unit, call):
        counts[unit]["sent"] += 1
        try:
            rr = call()
        except Exception:  # noqa: BLE001 - ModbusIOException: no (good) answer in time
            counts[unit]["no_answer"] += 1
            return
        if rr.isError():
            counts[unit]["exceptions"] += 1
        else:
            counts[unit]["ok"] += 1

    t0 = time.perf_counter()
    for r in range(args.rounds):
        for u in units:
            ask(u, lambda u=u: client.read_holding_registers(0, count=4, device_id=u))
            # A master leaves the line quiet between requests (and the bus model's pace).
            time.sleep(0.02)
        ask(units[0], lambda: client.write_register(3, 100 + r, device_id=units[0]))
        time.sleep(0.02)
    client.close()
    out = {str(u): c for u, c in counts.items()}
    out["seconds"] = round(time.perf_counter() - t0, 3)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
