#!/usr/bin/env python3
"""HTTPS reports through a real web server: lighttpd + tlsrpt-pipe as CGI, measured.

  python3 bench/cgi.py [--requests N]      (needs lighttpd; skips with a reason without)

Starts lighttpd on 127.0.0.1 (a free port, a temporary directory, the settings of
contrib/lighttpd/tlsrpt.conf with the binary of this build), POSTs distinct small
reports (the RFC 8460 example, a new report-id each), first one at a time, then from
50 concurrent clients, and prints requests per second and latency percentiles, next
to the mail path's per-message cost (bench/bench.py measures that: whole process,
fsync on). Every answer must be 201; the spool must hold each report once.
"""
import http.client, json, os, pathlib, shutil, socket, statistics, subprocess, sys, tempfile, threading, time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "tlsrpt-pipe"
N = int(sys.argv[sys.argv.index("--requests") + 1]) if "--requests" in sys.argv else 1000
LIGHTTPD = shutil.which("lighttpd") or "/usr/sbin/lighttpd"
if not os.path.exists(LIGHTTPD):
    print("bench/cgi.py: skipped: lighttpd not installed (apt-get install lighttpd)")
    sys.exit(0)
subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "tlsrpt-pipe"], cwd=ROOT, check=True)

work = pathlib.Path(tempfile.mkdtemp(prefix="tlsrpt-cgi-bench."))
os.chmod(work, 0o755)
root = os.geteuid() == 0
spool = work / "spool"
spool.mkdir(mode=0o750)
if root:
    shutil.chown(spool, "nobody", "nogroup")
    shutil.chown(work, "nobody", "nogroup")
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
(work / "www").mkdir()
conf = work / "lighttpd.conf"
conf.write_text(f"""
server.document-root = "{work}/www"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{work}/error.log"
server.pid-file = "{work}/lighttpd.pid"
server.max-worker = 0
{'server.username = "nobody"' + chr(10) + 'server.groupname = "nogroup"' if root else ''}
server.modules += ( "mod_alias", "mod_cgi", "mod_setenv" )
$HTTP["url"] == "/v1/tlsrpt" {{
    alias.url += ( "/v1/tlsrpt" => "{BIN}" )
    cgi.assign = ( "" => "" )
    server.max-request-size = 10240
    setenv.add-environment = ( "TLSRPT_SPOOL" => "{spool}" )
}}
""")
proc = subprocess.Popen([LIGHTTPD, "-D", "-f", str(conf)], stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 1).close(); break
        except OSError:
            time.sleep(0.05)
    doc = json.loads((ROOT / "tests/fixtures/stalwartlabs_mail-auth/rpt01.json").read_text())
    counter = iter(range(10**9))
    lock = threading.Lock()

    def one():
        with lock:
            i = next(counter)
        d = dict(doc, **{"report-id": f"bench-{i}"})
        body = json.dumps(d).encode()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        t = time.perf_counter()
        c.request("POST", "/v1/tlsrpt", body, {"Content-Type": "application/tlsrpt+json"})
        r = c.getresponse(); r.read(); c.close()
        return r.status, time.perf_counter() - t

    def run(total, clients):
        lat, statuses = [], []
        def worker(k):
            for _ in range(k):
                st, dt = one()
                with lock:
                    statuses.append(st); lat.append(dt)
        per = total // clients
        th = [threading.Thread(target=worker, args=(per,)) for _ in range(clients)]
        t = time.perf_counter()
        for x in th: x.start()
        for x in th: x.join()
        wall = time.perf_counter() - t
        lat.sort()
        q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
        return dict(requests=len(lat), rps=len(lat) / wall, p50=q(0.5), p99=q(0.99),
                    all_201=all(s == 201 for s in statuses))

    seq = run(max(N // 5, 20), 1)
    par = run(N, 50)
    lines = sum(1 for f in spool.glob("*.jsonl") for _ in open(f))
    print(f"lighttpd + CGI on {os.cpu_count()} cores, small reports ({len(json.dumps(doc))} bytes), fsync on:")
    print("| clients | requests | requests/s | p50 ms | p99 ms | all 201 |")
    print("|---:|---:|---:|---:|---:|---|")
    for name, r in (("1", seq), ("50", par)):
        print(f"| {name} | {r['requests']} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['all_201']} |")
    print(f"records in the spool: {lines} (expected {seq['requests'] + par['requests']})")
    if lines != seq["requests"] + par["requests"] or not (seq["all_201"] and par["all_201"]):
        sys.exit("lost or duplicated reports")
finally:
    proc.terminate(); proc.wait()
    shutil.rmtree(work, ignore_errors=True)
