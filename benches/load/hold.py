"""Opens COUNT keep-alive connections to HOST:PORT, makes one request on each (AUTH as the
Authorization header) and holds them all open; then prints the resident memory of PID (KiB) and
closes them. Bounded: each step has a deadline. Usage: hold.py HOST PORT COUNT AUTH PID"""
import asyncio, resource, sys

host, port, count, auth, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
request = f"GET /v1/x HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n\r\n".encode()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))

async def one(streams, gate):
    async with gate:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")), 0)
        await reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.split(b"\r\n")[0].decode())
        streams.append(writer)

async def main():
    streams, gate = [], asyncio.Semaphore(256)
    try:
        await asyncio.wait_for(asyncio.gather(*(one(streams, gate) for _ in range(count))), 120)
        await asyncio.sleep(1)  # let the gateway settle what the last requests left behind
        print(rss_kib())
    finally:
        for w in streams:
            w.close()

asyncio.run(main())
