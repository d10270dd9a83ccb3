"""Run the real WorkerClient the way the app does -- eventlet monkey-patched, green Popen, green spawn -- and report
what happened, as JSON on stdout. A separate process, because monkey-patching the test runner would leak into
every other test. Usage: python -m tests.green_worker_job STATE_DIR."""

from __future__ import annotations

import json
import sys
import time

from ryu.lib import hub

hub.patch(thread=False)

from eventlet.green import subprocess as green_subprocess  # noqa: E402

from mud_ryu.fetch.client import WorkerClient  # noqa: E402
from mud_ryu.fetch.wire import WireResult  # noqa: E402

NOW = 1_767_225_600.0
GAP_S = 0.3  # long enough for a worker reading a non-blocking stdin to see "no data" between requests


def main(state_dir: str) -> int:
    results: list[WireResult] = []
    settings = {"cache_path": f"{state_dir}/cache.sqlite3", "signature_policy": "off", "deadline_s": 2.0}
    client = WorkerClient(settings, f"{state_dir}/worker.json", results.append, popen=green_subprocess.Popen,
                          spawn=hub.spawn, sleep=hub.sleep, restart_delay_s=0.05)  # fmt: skip
    client.start()
    first_pid = client._proc.pid
    try:
        for i, url in enumerate(("http://mud.test/a.json", "http://mud.test/b.json", "http://mud.test/c.json")):
            client.request(url, NOW)
            deadline = time.monotonic() + 30
            while len(results) <= i and time.monotonic() < deadline:
                hub.sleep(0.005)
            hub.sleep(GAP_S)
        report = {"answered": [r.reason for r in results], "restarts": client.restarts,
                  "same_worker": client._proc is not None and client._proc.pid == first_pid}  # fmt: skip
    finally:
        client.stop()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
