"""`ume serve` under load: fast searches from concurrent clients while an index job and a
reasoning search run, beside the same searches on an idle server.

    python benchmarks/serve_load.py --out benchmarks/results/serve_load-cpu.json

Builds the tiny model, indexes a gallery of random photos, starts `ume serve` on a free loopback
port (the embedded store), then, for a bounded time each:

1. idle: `--clients` threads send fast text searches (`POST /ume/search`) back to back;
2. loaded: the same, while `POST /ume/index` indexes a new folder in `both` mode (its second
   pass generates) and one reasoning search runs; a watcher thread asks, every 0.2 s, for hits
   under the new folder, to time when its first item is searchable against when the job ends.

Prints searches/s, p50/p95 latency and errors for both, side by side, and writes them as JSON.
Loopback only; every phase is bounded in time and count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from app.cli import main as ume
from model.tiny import build_tiny_model

REPO = Path(__file__).resolve().parents[1]
WORDS = ("a red square", "a harbour at dusk", "two cats", "a page of notes", "a blue circle")
START_TIMEOUT_S = 180.0
INDEX_FIELDS = {"mode": "both", "max_new_tokens": 48, "batch_size": 4}


def write_photos(folder: Path, count: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        pixels = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"photo_{index:04d}.png")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(data_dir: Path, model: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        sys.executable, "-m", "app", "serve", "--data-dir", str(data_dir), "--model", str(model),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"ume serve ended: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/ume/status", params={"collection": "media"}, timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise SystemExit(f"ume serve did not answer in {START_TIMEOUT_S:.0f} s")


class Searchers:
    """`clients` threads sending fast searches until told to stop (or `limit` each)."""

    def __init__(self, url: str, clients: int, limit: int) -> None:
        self.url, self.clients, self.limit = url, clients, limit
        self.latencies: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def run_for(self, seconds: float, during: Any = None) -> dict[str, float]:
        threads = [threading.Thread(target=self._client, args=(i,)) for i in range(self.clients)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        if during is not None:
            during()
        else:
            time.sleep(seconds)
        self._stop.set()
        for thread in threads:
            thread.join()
        return self._figures(time.perf_counter() - began)

    def _client(self, number: int) -> None:
        with httpx.Client(timeout=60) as client:
            for sent in range(self.limit):
                if self._stop.is_set():
                    return
                body = {"collection": "media", "text": WORDS[(number + sent) % len(WORDS)], "mode": "fast"}
                began = time.perf_counter()
                try:
                    ok = client.post(f"{self.url}/ume/search", json=body).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with self._lock:
                    self.latencies.append(time.perf_counter() - began)
                    self.errors += not ok

    def _figures(self, seconds: float) -> dict[str, float]:
        latencies = np.asarray(self.latencies) * 1000
        return {
            "searches": len(latencies),
            "searches_per_s": round(len(latencies) / seconds, 1),
            "p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "p95_ms": round(float(np.percentile(latencies, 95)), 1),
            "errors": self.errors,
        }


def index_alone(url: str, folder: Path) -> float:
    """Seconds to index `folder` through the server with nothing else running (the baseline)."""
    began = time.perf_counter()
    body = {"collection": "media", "roots": [str(folder)], "fields": INDEX_FIELDS}
    with httpx.stream("POST", f"{url}/ume/index", json=body, timeout=None) as response:
        for line in response.iter_lines():
            if json.loads(line).get("event") in ("done", "failed"):
                break
    return round(time.perf_counter() - began, 2)


def load_phase(url: str, new_folder: Path, timings: dict[str, float | None]) -> None:
    """Index `new_folder` through the server while a reasoning search runs; time both stages."""
    began = time.perf_counter()
    seen = threading.Event()

    def first_searchable() -> None:
        body = {"collection": "media", "text": "a photo", "mode": "fast", "folder": str(new_folder)}
        with httpx.Client(timeout=60) as client:
            while not seen.is_set():
                if client.post(f"{url}/ume/search", json=body).json().get("hits"):
                    timings["first_searchable_s"] = round(time.perf_counter() - began, 2)
                    return
                time.sleep(0.2)

    def reasoning() -> None:
        body = {"collection": "media", "text": "a red square", "mode": "reasoning", "max_new_tokens": 48}
        started = time.perf_counter()
        status = httpx.post(f"{url}/ume/search", json=body, timeout=300).status_code
        timings["reasoning_search_s"] = round(time.perf_counter() - started, 2) if status == 200 else None

    watcher, thinker = threading.Thread(target=first_searchable), threading.Thread(target=reasoning)
    watcher.start()
    body = {"collection": "media", "roots": [str(new_folder)], "fields": INDEX_FIELDS}
    with httpx.stream("POST", f"{url}/ume/index", json=body, timeout=None) as response:
        for line in response.iter_lines():
            event = json.loads(line)
            if event.get("event") == "stage" and event["line"].startswith("adding reasoning"):
                thinker.start()  # the reasoning search meets the second pass
            if event.get("event") in ("done", "failed"):
                timings["run_end_s"] = round(time.perf_counter() - began, 2)
                break
    seen.set()
    watcher.join()
    if thinker.ident is None:  # the job had no second pass: search after it instead
        thinker.start()
    thinker.join()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--photos", type=int, default=40, help="photos indexed before serving")
    parser.add_argument("--new-photos", type=int, default=24, help="photos of the folder indexed under load")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--limit", type=int, default=2000, help="searches per client at most, per phase")
    parser.add_argument("--note", default="", help="what else the machine was doing, for the JSON")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ume-serve-load-"))
    model = build_tiny_model(work / "model")
    write_photos(work / "library", args.photos, seed=0)
    write_photos(work / "new", args.new_photos, seed=1)
    write_photos(work / "alone", args.new_photos, seed=2)
    data = ["--data-dir", str(work / "data")]
    fields = ["--max-new-tokens", "48", "--no-progress"]
    if ume(["index", str(work / "library"), *data, "--model", str(model), *fields]) not in (0, 1):
        raise SystemExit("the first index failed")
    process, url = start_server(work / "data", model, work / "serve.log")
    try:
        idle = Searchers(url, args.clients, args.limit).run_for(args.idle_seconds)
        timings: dict[str, float | None] = {"index_alone_s": index_alone(url, work / "alone")}
        loaded = Searchers(url, args.clients, args.limit).run_for(
            0, during=lambda: load_phase(url, work / "new", timings)
        )
    finally:
        process.terminate()
        process.wait(30)
    print(f"{'':24}{'idle':>12}{'while indexing':>16}")
    for key in ("searches_per_s", "p50_ms", "p95_ms", "errors"):
        print(f"fast search {key:<12}{idle[key]:>12}{loaded[key]:>16}")
    print(f"new folder: first item searchable after {timings.get('first_searchable_s')} s, "
          f"whole run ended after {timings.get('run_end_s')} s (alone: {timings['index_alone_s']} s); "
          f"reasoning search took {timings.get('reasoning_search_s')} s")  # fmt: skip
    if args.out is not None:
        result = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "command": "python benchmarks/serve_load.py " + " ".join(sys.argv[1:]),
            "model": "tiny (built by the project), CPU",
            "clients": args.clients,
            "idle": idle,
            "while_indexing": loaded,
            **timings,
            "note": args.note,
        }
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
