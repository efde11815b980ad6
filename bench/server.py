"""banana serve on loopback: time from start to first answer, requests/s and p50/p99 latency for a cheap edit
with 1 and 8 concurrent clients, and the server's memory (RSS) after 10 and after 500 requests.

    python -m bench.server [--requests-1 100] [--requests-8 400] [--json]

The server is a real ``banana serve`` process (its defaults: planner preloaded, web page mounted), with
``--cache-mb 0`` so every edit really runs (no result is cached; memory that grows would be a leak).
The cheap edit is ``POST /v1/run``: one ``adjust`` node on a 256x170 PNG, a different brightness each time.
Bounded: a fixed number of requests, loopback only, the process is stopped at the end.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image as PILImage

from banana.agent.samples import sample
from tests.serving import free_port


def picture() -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(sample("coffee").pixels).resize((256, 170)).save(buf, "PNG")
    return buf.getvalue()


def program(i: int) -> str:
    amount = round(-0.5 + (i * 0.6180339887) % 1.0, 4)  # a new brightness each request: the node always runs
    return json.dumps({"version": 1, "nodes": [{"id": "b", "tool": "adjust", "args": {"image": "$input", "brightness": amount}}],
                       "output": "$b"})


def edit(client: httpx.Client, base: str, png: bytes, i: int) -> float:
    t = time.perf_counter()
    r = client.post(f"{base}/v1/run", data={"program": program(i)}, files=[("images", ("p.png", png, "image/png"))], timeout=120)
    if r.status_code != 200:
        raise RuntimeError(f"request {i}: {r.status_code} {r.text[:300]}")
    return time.perf_counter() - t


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(base: str, png: bytes, clients: int, total: int, start: int) -> dict[str, float]:
    per = total // clients
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        with httpx.Client() as c:
            mine = [edit(c, base, png, start + k * per + j) for j in range(per)]
        with lock:
            latencies.extend(mine)

    t = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    q = np.percentile(latencies, [50, 99])
    return {"clients": clients, "requests": len(latencies), "rps": round(len(latencies) / wall, 1),
            "p50_ms": round(float(q[0]) * 1000, 1), "p99_ms": round(float(q[1]) * 1000, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests-1", type=int, default=100)
    ap.add_argument("--requests-8", type=int, default=400)
    ap.add_argument("--more", type=int, default=500, help="then this many more (8 clients), to see whether memory keeps growing")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    png = picture()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        env.pop("BANANA_API_KEY", None)
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "banana.agent.cli", "serve", "--port", str(port), "--store", f"{tmp}/store",
                                 "--cache-mb", "0", "--queue", "16"], env=env, stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/log", "w"))
        try:
            with httpx.Client() as c:
                while True:
                    if proc.poll() is not None:
                        raise SystemExit(f"the server exited with {proc.returncode}: {Path(tmp, 'log').read_text()[-2000:]}")
                    try:
                        edit(c, base, png, 0)
                        break
                    except (httpx.TransportError, RuntimeError):
                        time.sleep(0.05)
                first_program = time.perf_counter() - t0
                r = c.post(f"{base}/v1/images/edits", data={"prompt": "make it warmer"}, files={"image": ("p.png", png, "image/png")},
                           timeout=300)
                r.raise_for_status()
                first_instruction = time.perf_counter() - t0
                for i in range(1, 10):
                    edit(c, base, png, i)
            rss10 = rss_mb(proc.pid)
            one = load(base, png, 1, args.requests_1, 10)
            eight = load(base, png, 8, args.requests_8, 10 + args.requests_1)
            done = 10 + one["requests"] + eight["requests"]
            rss_end = rss_mb(proc.pid)
            more = load(base, png, 8, args.more, done) if args.more else {"requests": 0}
            done_more = done + more["requests"]
            rss_more = rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
            graceful = "Application shutdown complete" in Path(tmp, "log").read_text()
    result = {"start_to_first_program_answer_s": round(first_program, 2),
              "start_to_first_instruction_answer_s": round(first_instruction, 2),
              "load": [one, eight], "rss_mb_after_10": round(rss10, 1), f"rss_mb_after_{done}": round(rss_end, 1),
              f"rss_mb_after_{done_more}": round(rss_more, 1),
              "requests": done, "graceful_shutdown": graceful, "cpus": os.cpu_count(), "loadavg": os.getloadavg()[0]}
    if args.json:
        print(json.dumps(result))
        return
    print(f"start -> first answer: program {first_program:.2f} s, instruction {first_instruction:.2f} s "
          "(planner preloaded, web page mounted)")
    print("| clients | requests | requests/s | p50 ms | p99 ms |\n|---|---|---|---|---|")
    for row in (one, eight):
        print(f"| {row['clients']} | {row['requests']} | {row['rps']} | {row['p50_ms']} | {row['p99_ms']} |")
    print(f"RSS after 10 requests: {rss10:.1f} MB; after {done}: {rss_end:.1f} MB ({rss_end - rss10:+.1f} MB); "
          f"after {done_more}: {rss_more:.1f} MB ({rss_more - rss_end:+.1f} MB more)")
    how = "graceful shutdown (jobs finished, store closed)" if graceful else "NOT graceful"
    print(f"SIGTERM: {how}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
