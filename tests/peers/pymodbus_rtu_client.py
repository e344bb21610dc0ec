"""A Modbus RTU client written with pymodbus 3.16 (its synchronous client, the one most scripts
use), for plcprobe's integration tests and benchmark: COUNT reads of one register block from one
unit, either

  --serial PTY             on a serial port, 19200 baud 8N1 (Linux ptys refuse even parity)
  --rtu-tcp HOST:PORT      RTU over TCP (pymodbus's TCP client with the RTU framer)

then one JSON line on stdout:
  {"ok": n_ok, "errors": n_err, "seconds": elapsed, "first": [registers of the first good read],
   "timeouts": n_no_answer, "exceptions": [Modbus exception codes received], "error": first
   error text or null}
`seconds` covers the reads only (not connecting). Exit status 1 when any read failed, 2 when the
port cannot be opened or connected.
pymodbus's serial client polls the port every 4 character times (~2 ms at 19200 baud) until
the answer stops growing, so it needs at least two polls per read whatever the peer does.
Usage: python pymodbus_rtu_client.py (--serial PTY | --rtu-tcp HOST:PORT) --unit U
       --count N --read hr:START+N|ir:START+N [--timeout SECONDS]
"""

import argparse
import json
import logging
import sys
import time

from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient, ModbusTcpClient


def block(text: str) -> tuple[str, int, int]:
    """`hr:0+10` -> ("hr", 0, 10)."""
    kind, _, rest = text.partition(":")
    start, _, count = rest.partition("+")
    if kind not in ("hr", "ir") or not start.isdigit() or not count.isdigit():
        raise argparse.ArgumentTypeError(f"expected hr:START+N or ir:START+N, got {text!r}")
    return kind, int(start), int(count)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--serial", metavar="PTY", help="serial port, 19200 8N1")
    where.add_argument("--rtu-tcp", metavar="HOST:PORT", help="RTU over TCP")
    ap.add_argument("--unit", type=int, default=1)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--read", type=block, default=("hr", 0, 1), metavar="hr:START+N")
    ap.add_argument("--timeout", type=float, default=1.0, help="per read, seconds")
    args = ap.parse_args()
    # pymodbus logs every timeout at ERROR level; the JSON line reports them.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

    if args.serial:
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
    else:
        host, _, port = args.rtu_tcp.rpartition(":")
        client = ModbusTcpClient(
            host, port=int(port), framer=FramerType.RTU, timeout=args.timeout, retries=0
        )
    if not client.connect():
        print(f"cannot open {args.serial or args.rtu_tcp}", file=sys.stderr)
        return 2

    kind, start, count = args.read
    read = client.read_holding_registers if kind == "hr" else client.read_input_registers
    unit = args.unit
    ok = timeouts = 0
    first = None
    exceptions: list[int] = []
    error = None
    t0 = time.perf_counter()
    for _ in range(args.count):
        try:
            rr = read(start, count=count, device_id=unit)
        except Exception as exc:  # noqa: BLE001 - pymodbus raises ModbusIOException on timeout
            timeouts += 1
            error = error or f"{type(exc).__name__}: {exc}"
            continue
        if rr.isError():
            exceptions.append(getattr(rr, "exception_code", 0))
            error = error or str(rr)
            continue
        ok += 1
        if first is None:
            first = rr.registers
    seconds = time.perf_counter() - t0
    client.close()

    errors = args.count - ok
    print(
        json.dumps(
            {
                "ok": ok,
                "errors": errors,
                "seconds": round(seconds, 6),
                "first": first,
                "timeouts": timeouts,
                "exceptions": exceptions,
                "error": error,
            }
        ),
        flush=True,
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
