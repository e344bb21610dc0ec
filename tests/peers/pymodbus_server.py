"""A Modbus TCP server written with pymodbus (an independent implementation), for plcprobe's
integration tests. Serves a fixed, known register map on 127.0.0.1:PORT for unit IDs 1 and 2;
other unit IDs are answered with exception 0x04 Server Device Failure (pymodbus's choice).

Map (0-based PDU addresses), the same for both units except hr:0 (= the unit ID):
  hr:0            unit ID
  hr:1..100       hr[i] = 3*i + 1
  hr:100..102     f32 123.456, big-endian words (abcd)
  hr:102..104     f32 123.456, word-swapped (cdab)
  hr:104..106     i32 -123456 (abcd)
  hr:110..114     ascii "PYMODBUS"
  hr:120..200     zeros (writable scratch space)
  ir:0..50        ir[i] = 1000 + i
  co:0..32        co[i] = (i % 3 == 0)
  di:0..32        di[i] = (i % 2 == 1)
Anything past those blocks answers exception 0x02 Illegal Data Address.
Usage: python pymodbus_server.py PORT
"""

import asyncio
import struct
import sys

from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import StartAsyncTcpServer


def holding(unit: int) -> list[int]:
    hr = [0] * 200
    hr[0] = unit
    for i in range(1, 100):
        hr[i] = 3 * i + 1
    a, b = struct.unpack(">HH", struct.pack(">f", 123.456))
    hr[100], hr[101] = a, b
    hr[102], hr[103] = b, a
    c, d = struct.unpack(">HH", struct.pack(">i", -123456))
    hr[104], hr[105] = c, d
    for k, (hi, lo) in enumerate(zip(b"PYMODBUS"[::2], b"PYMODBUS"[1::2])):
        hr[110 + k] = hi << 8 | lo
    return hr


def device(unit: int) -> ModbusDeviceContext:
    # pymodbus 3.16 blocks start at 1 (its device context adds 1 to every PDU address).
    return ModbusDeviceContext(
        hr=ModbusSequentialDataBlock(1, holding(unit)),
        ir=ModbusSequentialDataBlock(1, [1000 + i for i in range(50)]),
        co=ModbusSequentialDataBlock(1, [i % 3 == 0 for i in range(32)]),
        di=ModbusSequentialDataBlock(1, [i % 2 == 1 for i in range(32)]),
    )


async def main() -> None:
    port = int(sys.argv[1])
    context = ModbusServerContext(devices={1: device(1), 2: device(2)}, single=False)
    print(f"pymodbus server on 127.0.0.1:{port}", flush=True)
    await StartAsyncTcpServer(context=context, address=("127.0.0.1", port))


if __name__ == "__main__":
    asyncio.run(main())
