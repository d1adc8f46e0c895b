#!/usr/bin/env python3
"""Whole-process benchmarks for tlsrpt-pipe, each compared in the same run against a
floor measured on the same input and the same machine.

  python3 bench/bench.py            full run (writes bench/out/results.md)
  python3 bench/bench.py --quick    a few iterations, no parsedmarc (CI: it still works)
  --no-build                        use target/release and bench/out/inputs as they are

Measures, per input (a small real Google report email, a real Microsoft one, and a
generated 60,000-row report gzipped in a mail):
  * wall time per message: `cat msg > /dev/null` (the floor) vs tlsrpt-pipe with fsync
    off and on, each delivery into a fresh spool;
  * for the 60k report, decompressed-JSON throughput vs `gzip -dc` on the same attachment;
  * peak resident memory of each process (wait4's ru_maxrss);
  * parsedmarc (PyPI, in a venv this script creates) on the same messages, as the ratio.
"""
import os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
BIN = os.path.join(ROOT, "target", "release", "tlsrpt-pipe")
QUICK = "--quick" in sys.argv
NO_PARSEDMARC = QUICK or "--no-parsedmarc" in sys.argv
NO_BUILD = "--no-build" in sys.argv  # the binaries and inputs are already built


TIME = "/usr/bin/time"  # GNU time: peak RSS of the program itself


def run(argv, stdin_path=None, env=None):
    """Runs argv once; returns (seconds, peak RSS KiB, exit status).

    Wall time is measured around a plain spawn. Peak RSS comes from a second run under
    GNU time: wait4's ru_maxrss on a child forked from this Python process would count
    the interpreter's own pages (exec keeps the pre-exec high-water mark).
    """
    fin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdin=fin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    p.wait()
    dt = time.perf_counter() - t
    if stdin_path:
        fin.close()
    return dt, 0, p.returncode


def peak_rss(argv, stdin_path=None):
    """Peak RSS in KiB of one run of argv, as GNU time reports it."""
    with tempfile.NamedTemporaryFile("r") as out:
        fin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
        subprocess.run([TIME, "-f", "%M", "-o", out.name] + argv, stdin=fin, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)
        if stdin_path:
            fin.close()
        return int(out.read().split()[-1])


def measure(cmds, stdin_path, n):
    """cmds: list of (argv_fn, after). Runs them interleaved, n rounds, so that drift in
    the machine's speed hits every command alike. argv_fn(i) gives the i-th command
    line; `after` runs untimed after each run (removing the run's spool, so that dirty
    pages from earlier runs do not throttle later ones). Returns [(median s, peak RSS
    KiB)] in the order of cmds."""
    times = [[] for _ in cmds]
    for i in range(n):
        for k, (argv_fn, after) in enumerate(cmds):
            argv = argv_fn(i)
            dt, _, rc = run(argv, stdin_path)
            if rc != 0:
                sys.exit(f"{argv} exited {rc}")
            times[k].append(dt)
            after()
    out = []
    for k, (argv_fn, after) in enumerate(cmds):
        rss = peak_rss(argv_fn(n), stdin_path)
        after()
        out.append((statistics.median(times[k]), rss))
    return out


def main():
    inputs = os.path.join(OUT, "inputs")
    if NO_BUILD:
        # bench/quick.sh built the binaries and wrote the inputs on the host (cargo is
        # not in the disposable root this then runs in).
        if not os.path.exists(os.path.join(inputs, "large-60k.eml")):
            sys.exit(f"--no-build: no inputs in {inputs} (cargo bench --bench stages -- --write-inputs {inputs})")
    else:
        subprocess.run(["cargo", "build", "--release", "--locked", "-q"], cwd=ROOT, check=True)
        os.makedirs(inputs, exist_ok=True)
        subprocess.run(["cargo", "bench", "-q", "--bench", "stages", "--", "--write-inputs", inputs], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)
    work = tempfile.mkdtemp(prefix="tlsrpt-bench.")
    os.chmod(work, 0o755)
    user = ["--user", "nobody"] if os.geteuid() == 0 else []
    rows, notes = [], []
    spool_n = [0]

    def pipe_argv(fsync):
        def argv(_i):
            spool_n[0] += 1
            d = os.path.join(work, f"s{spool_n[0]}")
            return [BIN, "--create-spool", "--spool", d, "--log-stderr"] + user + ([] if fsync else ["--no-fsync"])
        return argv

    small_n = 20 if QUICK else 300
    large_n = 3 if QUICK else 31
    results = {}
    for name in ["google-small.eml", "microsoft.eml", "large-60k.eml"]:
        path = os.path.join(inputs, name)
        n = large_n if name.startswith("large") else small_n
        clean = lambda: shutil.rmtree(os.path.join(work, f"s{spool_n[0]}"), ignore_errors=True)
        nothing = lambda: None
        cmds = [(lambda i: ["cat"], nothing), (pipe_argv(False), clean), (pipe_argv(True), clean)]
        if name.startswith("large"):
            # gzip -dc on the same attachment, interleaved with the rest.
            cmds.append((lambda i: ["gzip", "-dc", os.path.join(inputs, "large-60k.json.gz")], nothing))
        (floor, _), (nofs, nofs_rss), (fs, fs_rss), *gz = measure(cmds, path, n)
        if gz:
            gzip_t = gz[0][0]
        results[name] = (floor, nofs, fs, max(nofs_rss, fs_rss))
        rows.append(f"| {name} | {os.path.getsize(path):,} | {floor*1e3:.2f} | {nofs*1e3:.2f} | {nofs/floor:.2f}x "
                    f"| {fs*1e3:.2f} | {max(nofs_rss, fs_rss)/1024:.1f} |")

    gz = os.path.join(inputs, "large-60k.json.gz")
    json_bytes = len(subprocess.run(["gzip", "-dc", gz], capture_output=True, check=True).stdout)
    floor, nofs, fs, rss = results["large-60k.eml"]
    ours_tp = json_bytes / nofs / 1e6
    gzip_tp = json_bytes / gzip_t / 1e6

    pm_rows = []
    if not NO_PARSEDMARC:
        venv = os.path.join(OUT, "parsedmarc-venv")
        if not os.path.exists(os.path.join(venv, "bin", "parsedmarc")):
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
            subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "parsedmarc"], check=True)
        pm = os.path.join(venv, "bin", "parsedmarc")
        for name in ["google-small.eml", "microsoft.eml", "large-60k.eml"]:
            path = os.path.join(inputs, name)
            n = 3 if name.startswith("large") else 5
            ((t, r),) = measure([(lambda i: [pm, "--offline", path], lambda: None)], None, n)
            ours = results[name][1]
            pm_rows.append(f"| {name} | {t*1e3:.0f} | {ours*1e3:.2f} | {t/ours:.0f}x | {r/1024:.1f} |")

    lines = [
        f"Machine: {os.cpu_count()} cores; `nproc`={os.cpu_count()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{'quick mode' if QUICK else 'full mode'}; medians of {small_n} (small) / {large_n} (large) runs.",
        "",
        "| input | bytes | cat floor ms | tlsrpt-pipe no-fsync ms | ratio to floor | with fsync ms | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"60k-row report: {json_bytes:,} bytes of JSON. gzip -dc: {gzip_t*1e3:.1f} ms ({gzip_tp:.0f} MB/s). "
        f"tlsrpt-pipe whole process (no fsync): {nofs*1e3:.1f} ms ({ours_tp:.0f} MB/s) = "
        f"{100*ours_tp/gzip_tp:.0f}% of gzip -dc. Peak RSS {rss/1024:.1f} MiB = {rss*1024/json_bytes:.2f}x the JSON size.",
    ]
    if pm_rows:
        lines += ["", "| input | parsedmarc ms | tlsrpt-pipe ms | parsedmarc / tlsrpt-pipe | parsedmarc RSS MiB |",
                  "|---|---:|---:|---:|---:|", *pm_rows]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(OUT, "results-quick.md" if QUICK else "results.md"), "w") as f:
        f.write(text)
    shutil.rmtree(work, ignore_errors=True)
    small_ok = all(results[n][3] < 16 * 1024 for n in ["google-small.eml", "microsoft.eml"])
    print(f"targets: small ratio {results['google-small.eml'][1]/results['google-small.eml'][0]:.2f}x (<=3), "
          f"60k throughput {100*ours_tp/gzip_tp:.0f}% (>=40), 60k RSS {rss*1024/json_bytes:.2f}x (<=3), "
          f"small RSS under 16 MiB: {small_ok}")


if __name__ == "__main__":
    main()
