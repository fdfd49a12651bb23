"""Sends COUNT GET requests to URL over CONNS keep-alive connections (threads), with AUTH as
the Authorization header when given; fails on any answer but 200. Usage:
requests.py URL AUTH COUNT CONNS"""
import http.client, sys, threading, urllib.parse

url, auth, count, conns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
u = urllib.parse.urlsplit(url)
headers = {"Authorization": auth} if auth else {}
failures = []

def run(n):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    for _ in range(n):
        c.request("GET", u.path, headers=headers)
        r = c.getresponse()
        r.read()
        if r.status != 200:
            failures.append(r.status)
    c.close()

threads = [threading.Thread(target=run, args=(count // conns + (i < count % conns),)) for i in range(conns)]
for t in threads: t.start()
for t in threads: t.join()
if failures:
    sys.exit(f"{len(failures)} answers were not 200: {sorted(set(failures))}")
