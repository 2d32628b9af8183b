"""Screenshots of MLflow's UI on a babysweep store, taken by headless Chromium through `babysweep ui`'s deep links.

    python scripts/ui_screenshots.py --project docs/example-study/project teachers students --out docs/ui
    python scripts/ui_screenshots.py --tracking-uri sqlite:////tmp/ui-store/mlruns/mlflow.db tiny pupils

For each sweep it writes <sweep>-runs.png (the trials sorted by the sweep's metric, with its columns),
<sweep>-charts.png (the same trials in the chart view) and <sweep>-compare.png (MLflow's compare page:
parallel coordinates and metric plots); then sweeps.png (the sweeps side by side, one parent row
each with its summary). No click is needed: each page is a URL. Needs Debian's `chromium` package
(`apt-get install -y chromium`). Starts `mlflow server` on 127.0.0.1:--port and stops it at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTH, HEIGHT = 1600, 1000
SETTLE_MS = 20000  # virtual time Chromium gives the page to fetch runs and draw its plots


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("error: no Chromium found; install Debian's package with `apt-get install -y chromium`.")


def screenshot(chrome: str, url: str, out: Path, width: int, height: int, settle_ms: int) -> None:
    """One page, fresh browser profile (no remembered UI state), after `settle_ms` of virtual time."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        cmd = [chrome, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
               "--no-first-run", "--no-proxy-server", f"--window-size={width},{height}",
               f"--virtual-time-budget={settle_ms}", f"--screenshot={out}", url]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if done.returncode != 0 or not out.is_file():
        sys.exit(f"error: Chromium could not capture {url}: {done.stderr.strip()[-500:]}")
    print(f"{out}  <-  {url}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweeps", nargs="*", help="sweep names (default: every sweep in the store)")
    parser.add_argument("--project", type=Path, help="a babysweep project folder (its mlruns/ store)")
    parser.add_argument("--tracking-uri", help="an MLflow store; default: the project's")
    parser.add_argument("--out", type=Path, default=Path("docs/ui"), help="folder for the PNGs (default docs/ui)")
    parser.add_argument("--port", type=int, default=5050)
    parser.add_argument("--width", type=int, default=WIDTH)
    parser.add_argument("--height", type=int, default=HEIGHT)
    parser.add_argument("--settle-ms", type=int, default=SETTLE_MS)
    args = parser.parse_args()
    if args.project:
        os.environ["BABYSWEEP_PROJECT"] = str(args.project.resolve())

    from babysweep.core import paths
    from babysweep.core.errors import UserError
    from babysweep.tracking.ui import serve_ui, ui_address, stop_ui, wait_until_up
    from babysweep.tracking.links import sweeps_link, ui_links

    chrome = browser()
    uri = paths.tracking_uri(args.tracking_uri)
    address = ui_address("127.0.0.1", args.port)
    try:
        links = [link for name in (args.sweeps or [None]) for link in ui_links(uri, address, name)]
    except UserError as exc:
        sys.exit(f"error: {exc}")
    args.out.mkdir(parents=True, exist_ok=True)
    log = Path(tempfile.gettempdir()) / "ui_screenshots-mlflow.log"
    proc, address = serve_ui(uri, port=args.port, log_path=log)
    try:
        if not wait_until_up(address, timeout=120, process=proc):
            sys.exit(f"error: MLflow's UI did not start on {address}; see {log}")
        shot = lambda url, name: screenshot(chrome, url, args.out / name, args.width, args.height, args.settle_ms)
        for link in links:
            shot(link.runs, f"{link.sweep}-runs.png")
            shot(link.charts, f"{link.sweep}-charts.png")
            shot(link.compare, f"{link.sweep}-compare.png")
        if len(links) > 1:  # the sweeps side by side: their parent rows and summary columns
            shot(sweeps_link(address, links), "sweeps.png")
        (args.out / "store.txt").write_text(f"store: {uri}\nsweeps: {', '.join(l.sweep for l in links)}\n")
    finally:
        stop_ui(proc)


if __name__ == "__main__":
    main()
