#!/usr/bin/env python3
"""TCP forwarding between the host's loopback and a bed node's own network namespace.

A bed node (containerd, the kubelet and its pods) lives in a network namespace of its own, so
its bridge, veths, pod addresses and routes never appear on the host. What must cross is
forwarded here, and only between loopback addresses on the host side:

  --in  LISTEN=TARGET   listen inside the node namespace, connect on the host
                        (the node reaching the API server and the registries on 127.0.0.1, and
                        pods reaching the `kubernetes` Service address)
  --out LISTEN=TARGET   listen on the host, connect inside the node namespace
                        (the API server reaching the kubelet for logs, exec, port-forward)

A socket belongs to the network namespace its creator was in when it was made: this one process
makes each socket after setns(2) into the right namespace, then pumps bytes with asyncio.

usage: netbridge.py NETNS_FILE READY_FILE [--in A:P=B:Q]... [--out A:P=B:Q]...
"""

import asyncio
import ctypes
import os
import socket
import sys

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


class Namespaces:
    def __init__(self, node_path: str) -> None:
        self.host = os.open("/proc/self/ns/net", os.O_RDONLY)
        self.node = os.open(node_path, os.O_RDONLY)

    def socket_in(self, fd: int) -> socket.socket:
        _setns(fd)
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            _setns(self.host)


def addr(text: str) -> tuple:
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(1 << 18)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def serve(ns: Namespaces, listen_fd: int, listen: tuple, connect_fd: int, target: tuple):
    loop = asyncio.get_running_loop()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = ns.socket_in(connect_fd)
        s.setblocking(False)
        try:
            await loop.sock_connect(s, target)
            r2, w2 = await asyncio.open_connection(sock=s)
        except OSError:
            s.close()
            writer.close()
            return
        await asyncio.gather(pump(reader, w2), pump(r2, writer))
        for w in (w2, writer):
            w.close()

    ls = ns.socket_in(listen_fd)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(listen)
    ls.listen(256)
    ls.setblocking(False)
    return await asyncio.start_server(handle, sock=ls)


async def main(argv: list) -> None:
    ns = Namespaces(argv[0])
    ready = argv[1]
    servers = []
    rest = argv[2:]
    while rest:
        flag, spec = rest[0], rest[1]
        rest = rest[2:]
        listen, target = (addr(x) for x in spec.split("=", 1))
        if flag == "--in":
            servers.append(await serve(ns, ns.node, listen, ns.host, target))
        elif flag == "--out":
            servers.append(await serve(ns, ns.host, listen, ns.node, target))
        else:
            raise SystemExit(f"netbridge: unknown flag {flag}")
    with open(ready, "w") as f:
        f.write("ready\n")
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
