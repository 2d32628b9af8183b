"""The generated bad-input suite, counted instead of asserted: cases per surface, and how many ended in
a traceback, a hang, a wrong exit status, a changed file, too many lines or an unnamed file.

    python bench/fuzz_inputs.py                     # 2000 cases per surface (tests/test_fuzz_inputs.py runs 20)
    python bench/fuzz_inputs.py --examples 50 --surface spec --surface model --show 3

Runs each case in process, as the tests do (tests/fuzz_cli.py); prints one table and, per problem kind,
up to --show examples. Seeded (derandomised) like the tests, so two runs draw the same cases.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from hypothesis import HealthCheck, given, settings  # noqa: E402

from fuzz_cases import SURFACES, Fixtures  # noqa: E402
from fuzz_cli import PROBLEMS, Project, check, kind  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--surface", action="append", choices=sorted(SURFACES))
    parser.add_argument("--show", type=int, default=2, help="examples printed per surface and problem kind")
    parser.add_argument("--time-limit", type=float, default=20.0)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fuzz-bench-"))
    Fixtures.setup(base)
    rows, shown, slow = [], collections.defaultdict(list), []
    for surface in args.surface or sorted(SURFACES):
        counts, mutations = collections.Counter(), collections.Counter()
        start = time.perf_counter()

        @settings(max_examples=args.examples, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=SURFACES[surface]())
        def one(case):
            with Project(base, time_limit=args.time_limit) as project:
                outcome = project.invoke(*case.build(project))
                problems = check(outcome, [*case.names, str(project.root)], case.must_fail)
            counts["cases"] += 1
            slow.append((outcome.seconds, f"{surface}/{case.mutation} {' '.join(case.args)[:80]}"))
            counts["accepted" if outcome.code == 0 else "refused" if outcome.code == 2 else "other"] += 1
            mutations[case.mutation.split(":")[0]] += 1
            for problem in problems:
                counts[kind(problem)] += 1
                if len(shown[surface, kind(problem)]) < args.show:
                    shown[surface, kind(problem)].append(f"{problem[:400]}\n    <- {surface}/{case.mutation}: babysweep {' '.join(case.args)[:200]}")

        one()
        rows.append((surface, counts, time.perf_counter() - start, mutations))
    print(f"{'surface':8} {'cases':>6} {'refused':>7} {'accepted':>8} " + " ".join(f"{p:>9}" for p in PROBLEMS) + "  seconds")
    for surface, counts, seconds, _ in rows:
        print(f"{surface:8} {counts['cases']:6} {counts['refused']:7} {counts['accepted']:8} "
              + " ".join(f"{counts[p]:9}" for p in PROBLEMS) + f"  {seconds:7.1f}")
    for surface, _, _, mutations in rows:
        print(f"{surface}: " + ", ".join(f"{m} {n}" for m, n in sorted(mutations.items())))
    print("slowest cases: " + "; ".join(f"{s:.1f} s {what}" for s, what in sorted(slow, reverse=True)[:8]))
    for (surface, problem), examples in sorted(shown.items()):
        print(f"\n== {surface} / {problem}")
        for example in examples:
            print("  " + example[:1500])


if __name__ == "__main__":
    main()
