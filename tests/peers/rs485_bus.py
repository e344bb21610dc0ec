"""A multi-drop RS-485 bus made of pseudo-terminals, for plcprobe's integration tests: N ends,
and whatever one end writes reaches every other end (not its own: an adapter that echoes is
another matter) at the line's pace: what one write put on the line arrives, whole, once its
characters (10 bits each at BAUD) have had their time on the wire, the ends taking turns as on a
half-duplex bus (a talker that starts while another talks waits for the line; no collisions are
modelled). Whole, because delivering byte by byte from Python puts scheduling gaps of
milliseconds inside frames on a loaded machine, and a slave that keeps t3.5 (plcprobe's
simulator) then rightly drops the request.

Each end is the slave side of a pty, in raw mode, held open here so that it survives its users
opening and closing it. Prints one line per end, `rs485 bus end /dev/pts/N`, then `rs485 bus
ready`, then relays until killed (or until stdin closes, when the test that started it ends).
Usage: python rs485_bus.py --ends N [--baud 19200]
"""

import argparse
import os
import select
import sys
import time
import tty


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ends", type=int, default=4)
    ap.add_argument("--baud", type=int, default=19200)
    args = ap.parse_args()
    char_s = 10.0 / args.baud

    masters = []
    slaves = []
    for _ in range(args.ends):
        m, s = os.openpty()
        tty.setraw(s)
        os.set_blocking(m, False)
        masters.append(m)
        slaves.append(s)
        print(f"rs485 bus end {os.ttyname(s)}", flush=True)
    print("rs485 bus ready", flush=True)

    watch = masters + [sys.stdin.fileno()]
    line_free = time.monotonic()
    while True:
        ready, _, _ = select.select(watch, [], [], 1.0)
        for fd in ready:
            if fd == sys.stdin.fileno():
                if not os.read(fd, 4096):
                    return 0
                continue
            try:
                data = os.read(fd, 4096)
            except (BlockingIOError, OSError):
                continue
            # The talker's bytes take the line once it is free, for their time on the wire,
            # and reach the other ends when their last character has arrived (as a UART's
            # FIFO delivers them): no gap inside what was written at once.
            start = max(time.monotonic(), line_free)
            line_free = start + len(data) * char_s
            delay = line_free - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for other in masters:
                if other != fd:
                    try:
                        os.write(other, data)
                    except (BlockingIOError, OSError):
                        pass  # nobody reads that end and its buffer is full: lost, as on a wire


if __name__ == "__main__":
    sys.exit(main())
