"""TCP echo: asyncio, uvloop, rloop and mioloop as servers, over three APIs and two sizes.

The server runs in its own process (this file, `--serve LOOP API`), on one of the loops, with one of
three APIs: an asyncio.Protocol (`protocol`), asyncio streams (`streams`), or the loop's sock_*
coroutines (`sock`). The client is a separate process too, `echo-client` (examples/echo-client, in
Rust): 10 connections, each sending SIZE bytes and reading them back, again and again, with every
echoed byte compared. Reported per loop: requests per second, MB/s, and the server's CPU time per
request (from /proc/PID/stat), as the median of the rounds; every variant runs once per round,
interleaved (the loops in forward order one round, backward the next), and ratios are to asyncio.
Two last tables compare mioloop with each other loop round by round: the number of rounds in which
it served more requests, and the median of the rounds' ratios with a 95% interval.

    python benchmarks/echo.py [--rounds 3] [--seconds 2] [--quick] [--svg DIR]
                              [--apis protocol,streams,sock] [--sizes 1,64]

`--apis` and `--sizes` (in KiB) measure some of the cells only, for a closer look at one.
"""

import argparse
import asyncio
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
APIS = ("protocol", "streams", "sock")
SIZES = (1 << 10, 64 << 10)
CONNECTIONS = 10


# ---- The server (runs in a child process) -------------------------------------------------------


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def stream_echo(reader, writer):
    try:
        while data := await reader.read(256 << 10):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def sock_echo(loop, client):
    try:
        while data := await loop.sock_recv(client, 256 << 10):
            await loop.sock_sendall(client, data)
    except ConnectionError:
        pass
    client.close()


async def serve(api):
    import socket

    loop = asyncio.get_running_loop()
    if api == "protocol":
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
    elif api == "streams":
        server = await asyncio.start_server(stream_echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
    else:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        listener.setblocking(False)
        port = listener.getsockname()[1]

        async def accept_forever():
            while True:
                client, _ = await loop.sock_accept(listener)
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                client.setblocking(False)
                loop.create_task(sock_echo(loop, client))

        loop.create_task(accept_forever())
    print(port, flush=True)
    await asyncio.Event().wait()  # until killed


def settle_heap():
    """Frees one block of 8 MiB, as a long-running process sooner or later does. glibc's malloc then
    raises its mmap threshold past the 256 KiB that asyncio's transport (and Python's socket.recv)
    allocates for every read, and serves those from the heap. Without it, whether a server maps,
    faults in and unmaps 256 KiB per read depends on where the free space of its heap happens to
    lie, which an unrelated import can change: it once moved asyncio's Protocol server at 1 KiB from
    about 32,000 requests per second to 115,000. Every loop's server starts this way."""
    block = bytearray(8 << 20)
    del block


def run_server(loop_name, api):
    import loop_core

    settle_heap()
    with asyncio.Runner(loop_factory=loop_core.loop_factories()[loop_name]) as runner:
        runner.run(serve(api))


# ---- The measurement ---------------------------------------------------------------------------------


def client_binary():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "echo-client"], cwd=ROOT, check=True)
    return ROOT / "target" / "release" / "echo-client"


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def measure_one(client, loop_name, api, size, seconds):
    server = subprocess.Popen([sys.executable, __file__, "--serve", loop_name, api], stdout=subprocess.PIPE, text=True, cwd=ROOT / "benchmarks")
    try:
        port = int(server.stdout.readline())
        before = cpu_seconds(server.pid)
        start = time.perf_counter()
        out = subprocess.run([client, f"127.0.0.1:{port}", str(CONNECTIONS), str(size), str(seconds)], check=True, capture_output=True, text=True).stdout
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds(server.pid) - before
    finally:
        server.kill()
        server.wait()
    requests, echoed = map(int, out.split())
    return requests / elapsed, echoed / elapsed / 1e6, cpu / max(requests, 1) * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", nargs=2, metavar=("LOOP", "API"), help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true", help="a smoke run: one round of 0.2 s each")
    parser.add_argument("--svg", type=pathlib.Path, help="write the charts into this folder")
    parser.add_argument("--apis", type=lambda text: text.split(","), default=list(APIS), help="comma-separated, of: " + ", ".join(APIS))
    parser.add_argument("--sizes", type=lambda text: [int(kib) << 10 for kib in text.split(",")], default=list(SIZES), help="comma-separated, in KiB (default 1,64)")
    args = parser.parse_args()
    if args.serve:
        return run_server(*args.serve)
    import loop_core

    rounds, seconds = (1, 0.2) if args.quick else (args.rounds, args.seconds)
    apis, sizes = args.apis, args.sizes
    if unknown := set(apis) - set(APIS):
        parser.error(f"unknown API {', '.join(sorted(unknown))}: choose from {', '.join(APIS)}")
    client = client_binary()
    loops = list(loop_core.loop_factories())
    runs = {(loop, api, size): [] for loop in loops for api in apis for size in sizes}
    for index in range(rounds):
        for api in apis:
            for size in sizes:
                for loop in loop_core.round_order(loops, index):
                    runs[loop, api, size].append(measure_one(client, loop, api, size, seconds))
    median = {key: tuple(statistics.median(r[i] for r in values) for i in range(3)) for key, values in runs.items()}

    print(f"TCP echo, {CONNECTIONS} connections, client in a separate process (median of {rounds} x {seconds} s)")
    print(f"  {'api':<9}{'size':>7}  " + "".join(f"{loop:>22}" for loop in loops))
    for label, index, unit in (("req/s", 0, ""), ("MB/s", 1, ""), ("server CPU µs/request", 2, "")):
        print(f"  {label}")
        for api in apis:
            for size in sizes:
                base = median["asyncio", api, size][index]
                cells = "".join(f"{median[loop, api, size][index]:>14,.1f} ({median[loop, api, size][index] / base:4.2f}x)" for loop in loops)
                print(f"  {api:<9}{size >> 10:>5}Ki  {cells}")
    print()
    rows = [(f"  {api:<9}{size >> 10:>5}Ki", {loop: [r[0] for r in runs[loop, api, size]] for loop in loops}, True) for api in apis for size in sizes]
    loop_core.print_round_by_round(rows, loops, rounds)
    if args.svg:
        import futures_bridge

        args.svg.mkdir(parents=True, exist_ok=True)
        for size in sizes:
            rows = [(f"{api} {loop}", median[loop, api, size][0]) for api in apis for loop in loops]
            futures_bridge.svg_bars(f"TCP echo, {size >> 10} KiB requests: requests per second (higher is better)", rows, "/s", args.svg / f"echo-{size >> 10}k.svg")


if __name__ == "__main__":
    main()
