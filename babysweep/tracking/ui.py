"""MLflow's UI on the project's store: `mlflow server` started, waited for and stopped.

    proc, address = serve_ui(uri)     # bound to 127.0.0.1 unless asked otherwise
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from babysweep.core.paths import artifact_root
from babysweep.tracking.store import _client



# ------------------------------------------------------------------------------------------- UI


def serve_ui(tracking_uri: str, host: str = "127.0.0.1", port: int = 5000, *, log_path: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Start `mlflow server` (what `mlflow ui` runs) on the store; returns (process, address).

    Terminate the process to stop it (MLflow passes SIGTERM on to its workers). Its output goes
    to the terminal, or to `log_path` when given.
    """
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
           "--host", host, "--port", str(port), "--workers", "1"]  # one user: one worker is plenty
    root = artifact_root(tracking_uri)
    if root is not None:
        _client(tracking_uri)  # a new store is created here, safely (the server would migrate it in place)
        root.mkdir(parents=True, exist_ok=True)
        cmd += ["--default-artifact-root", root.as_uri(), "--artifacts-destination", root.as_uri()]
    out = open(log_path, "ab") if log_path else None
    try:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if out else None, stdin=subprocess.DEVNULL)
    finally:
        if out:
            out.close()  # the child holds its own copy
    return proc, ui_address(host, port)


def ui_address(host: str, port: int) -> str:
    """The UI's base URL for a bind address (IPv6 addresses in brackets)."""
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def stop_ui(process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Stop a server from serve_ui: SIGTERM (MLflow passes it to its workers), SIGKILL if it lingers."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until_up(address: str, timeout: float = 60.0, process: subprocess.Popen | None = None) -> bool:
    """Poll the server's experiments API until it answers (True), `timeout` passes or `process` exits (False)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # local: never via a proxy
    url = f"{address}/api/2.0/mlflow/experiments/search?max_results=1"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with opener.open(url, timeout=5) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    return False


