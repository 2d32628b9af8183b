"""Print the verdict and its decisions rebuilt from report.json files (babysweep/verdict_offline.py).

    python scripts/verdict_from_report.py tests/fixtures/old_reports/example-study.json   # a report.json older than its decisions
"""

import sys
from pathlib import Path

from babysweep.report.verdict_offline import verdict_from_report

for arg in sys.argv[1:]:
    text, decided = verdict_from_report(Path(arg))
    print(f"## {arg}\n\n{text}\n")
    for c in decided["comparisons"]:
        digits = 2 if c["metric"] == "blimp" else 3
        ci = "no interval" if c["low"] is None else f"[{c['low']:+.{digits}f}, {c['high']:+.{digits}f}]"
        mdd = "–" if c["mdd"] is None else f"{c['mdd']:.{digits}f}"
        print(f"- {c['metric']} vs {c['vs']}{'' if c['in_family'] else ' (outside the family)'}: {c['outcome']}, "
              f"{c['diff']:+.{digits}f} {ci}, {c['method']}, p {c['p']:.3g}"
              + (f", Holm p {c['p_holm']:.3g}" if c["p_holm"] is not None else "")
              + f"; smallest detectable (80% power) {mdd}; seeds per arm for the observed difference {c['seeds_needed']}")
    print()
