"""A Modbus RTU server written with pymodbus 3.16 (an independent implementation), for plcprobe's
integration tests: the register map of pymodbus_server.py (its `device()`), units 1 and 2, framed
as RTU, either

  --serial /dev/pts/N   on a serial port, 19200 baud 8N1. 8N1 and not the serial-line spec's 8E1
                        because Linux ptys refuse even parity (pyserial: termios.error 22); a pty
                        ignores baud and parity anyway.
  --rtu-tcp PORT        RTU over TCP on 127.0.0.1:PORT (pymodbus's TCP server with the RTU
                        framer: RTU frames, CRC included, no MBAP header), as a serial device
                        server in transparent mode would carry them.

Unknown units. Read in pymodbus 3.16.1's source: the server accepts a frame for any unit (its
framer has no expected unit on the server side), then looks the unit up in the datastore. The
ModbusServerContext is converted to a SimCore, whose lookup falls back to device 0 and, without
one, raises KeyError; the request handler turns that into exception 0x04 Server Device Failure.
pymodbus's `ignore_missing_devices=True` does NOT help: it only catches NoSuchIdException, which
the old ModbusServerContext raised and SimCore never does (so 0x0B Gateway Target Failed to
Respond, its other branch, is unreachable too). That is the same on serial and over RTU over TCP:
by default pymodbus answers every unit.
A real absent device on a bus stays silent, so by default this server drops requests for units
other than 1 and 2 before they reach the datastore (a `trace_pdu` hook returning None for them:
the frame is consumed, nothing is answered, the client times out), on serial and over TCP alike
(a transparent serial device server passes the request to a bus where nobody answers).
`--answer-unknown` keeps pymodbus's own behaviour (exception 0x04 for unknown units).
Unit 0 is broadcast (`broadcast_enable=True`): writes go to both units and nothing is answered,
as on a real bus.

Prints `pymodbus rtu server on SERIAL-PORT` or `pymodbus rtu server on 127.0.0.1:PORT` once it
is listening (serial: once the port is open), then serves until killed.
Usage: python pymodbus_rtu_server.py (--serial PTY | --rtu-tcp PORT) [--answer-unknown]
"""

import argparse
import asyncio
import logging
import os
import sys

sys.dont_write_bytecode = True  # importing pymodbus_server.py must not leave tests/peers/__pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pymodbus import FramerType  # noqa: E402
from pymodbus.datastore import ModbusServerContext  # noqa: E402
from pymodbus.server import ModbusSerialServer, ModbusTcpServer  # noqa: E402

from pymodbus_server import device  # noqa: E402

UNITS = (1, 2)


def drop_unknown_units(sending: bool, pdu):
    """trace_pdu hook: a received request for a unit we do not serve is dropped (no answer)."""
    if not sending and pdu.dev_id not in UNITS and pdu.dev_id != 0:
        return None
    return pdu


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--serial", metavar="PTY", help="serial port, 19200 8N1")
    where.add_argument("--rtu-tcp", metavar="PORT", type=int, help="RTU over TCP port")
    ap.add_argument(
        "--answer-unknown",
        action="store_true",
        help="let pymodbus answer units it does not serve (exception 0x04)",
    )
    args = ap.parse_args()
    # pymodbus warns that ModbusServerContext is deprecated, and logs every dropped request.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

    context = ModbusServerContext(devices={u: device(u) for u in UNITS}, single=False)
    common = {
        "framer": FramerType.RTU,
        "broadcast_enable": True,
        "trace_pdu": None if args.answer_unknown else drop_unknown_units,
    }
    if args.serial:
        server = ModbusSerialServer(
            context,
            port=args.serial,
            baudrate=19200,
            bytesize=8,
            parity="N",
            stopbits=1,
            **common,
        )
        where_text = args.serial
    else:
        server = ModbusTcpServer(context, address=("127.0.0.1", args.rtu_tcp), **common)
        where_text = f"127.0.0.1:{args.rtu_tcp}"
    await server.serve_forever(background=True)
    print(f"pymodbus rtu server on {where_text}", flush=True)
    await server.serving


if __name__ == "__main__":
    asyncio.run(main())
