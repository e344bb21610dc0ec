"""The asyncua client as an independent peer of plcprobe's OPC UA simulator.

    asyncua_client.py URL NODE...          read each node once, print one JSON line per node
    asyncua_client.py URL NODE --bench N   N sequential reads of NODE, print reads/s as JSON

Security None, anonymous. Exit 1 when a read fails.
"""

import asyncio
import json
import sys
import time

from asyncua import Client


async def main():
    url, rest = sys.argv[1], sys.argv[2:]
    bench = None
    if "--bench" in rest:
        i = rest.index("--bench")
        bench = int(rest[i + 1])
        rest = rest[:i] + rest[i + 2:]
    async with Client(url=url, timeout=5) as client:
        nodes = [client.get_node(n) for n in rest]
        if bench:
            node = nodes[0]
            await node.read_value()
            t0 = time.perf_counter()
            for _ in range(bench):
                await node.read_value()
            dt = time.perf_counter() - t0
            print(json.dumps({"reads": bench, "seconds": dt, "rate": bench / dt}))
            return
        for text, node in zip(rest, nodes):
            dv = await node.read_data_value()
            value = dv.Value.Value
            if not isinstance(value, (int, float, str, bool)) and value is not None:
                value = str(value)
            print(json.dumps({"node": text, "value": value, "status": dv.StatusCode.name,
                              "type": dv.Value.VariantType.name}))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # noqa: BLE001 - report any failure to the test
        print(f"asyncua client failed: {e!r}", file=sys.stderr)
        sys.exit(1)
