"""BabyLM's zero-shot suite: `babysweep eval --suite babylm` against the official pipeline, on the
same model, data and CPU in one invocation: times (the suite end to end: our one process against the
pipeline's commands, one per task as eval_zero_shot.sh runs them; per task: our scoring time against
its command) and, per task, the number of items whose decision differs.

    python bench/suite.py MODEL_DIR --data DIR --pipeline CHECKOUT [--pipeline-python PY]
                          [--task NAME ...] [--work /tmp/suite_bench] [--threads N]

MODEL_DIR: a saved model folder (`babysweep train` writes one in OUT/final). DIR: the layout of the
pipeline's evaluation_data/full_eval. CHECKOUT: a clone of babylm/evaluation-pipeline-2025 (bf55c11)
outside this repository, never vendored; PY: a Python that can run it (its requirements plus
statsmodels for reading; default: this one). The pipeline's command for each task (eval_zero_shot.sh's
line for it) runs, then `babysweep eval MODEL --suite babylm --data DIR --task ... --json` once; then
per task: our time, the pipeline's, their ratio; the items whose
chosen option differs (the pipeline's predictions.json names the chosen completion: an item is right
when it equals option 0's); its printed score and ours at its precision; for WUG the largest
probability difference, for reading the largest surprisal difference. Both get the same threads.
Times are wall and CPU seconds (user + system of the process, all threads): on a shared machine the
wall time mostly measures the other jobs, the CPU time the work. --skip-pipeline reuses the
pipeline's outputs and times (pipeline_times.json) in --work, e.g. to rerun only our side.
"""

from __future__ import annotations

import sys

if sys.path and sys.path[0] and __import__("os").path.samefile(sys.path[0], __import__("os").path.dirname(__file__)):
    sys.path.pop(0)  # bench/ must not shadow the standard library (see bench/blimp.py)

import argparse
import json
import os
import re
import resource
import subprocess
import time
from pathlib import Path

from babysweep.eval import suite
PIPELINE_TASK = {  # our task -> (pipeline --task, folder under DIR); reading runs its own module
    "blimp": "blimp", "supplement": "blimp", "ewok": "ewok", "entity_tracking": "entity_tracking",
    "wug_adj": "wug_adj", "wug_past": "wug_past",
}


def run(cmd: list[str], cwd: Path | None, env: dict) -> tuple[dict, str]:
    """Wall and CPU seconds (user + system, all threads) of a command, and its stdout. On a shared
    machine the wall time mostly measures the other jobs; CPU time measures the work."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    took, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-3000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"wall": took, "cpu": cpu}, done.stdout


def pipeline_cmd(py: str, model: Path, data: Path, task: str, out: Path) -> list[str]:
    folder = data / suite.TASKS[task].folder
    if task == "reading":
        return [py, "-m", "evaluation_pipeline.reading.run", "--model_path_or_name", str(model), "--backend", "causal",
                "--data_path", str(folder / "reading_data.csv"), "--output_dir", str(out)]
    return [py, "-m", "evaluation_pipeline.sentence_zero_shot.run", "--model_path_or_name", str(model), "--backend", "causal",
            "--task", PIPELINE_TASK[task], "--data_path", str(folder), "--save_predictions", "--output_dir", str(out)]


def compare(task: str, ours: dict, model: Path, data: Path, out: Path) -> dict:
    base = out / model.stem / "main" / "zero_shot" / "causal"
    if task == "reading":
        rows = [json.loads(l) for l in (base / "reading" / "prediction.jsonl").read_text().splitlines()]
        theirs = [r["Logprob"] for r in rows]
        diff = max(abs(a - b) for a, b in zip(theirs, ours["surprisal"]))
        report = (base / "reading" / "report.txt").read_text()
        et = float(re.search(r"EYE TRACKING SCORE: (-?[\d.]+)", report).group(1))
        spr = float(re.search(r"SELF-PACED READING SCORE: (-?[\d.]+)", report).group(1))
        return {"surprisal_max_abs_diff": diff, "theirs": f"ET {et:.2f} SPR {spr:.2f}",
                "ours": f"ET {ours['eye_tracking']:.2f} SPR {ours['self_paced_reading']:.2f}",
                "same_printed": f"{et:.2f}" == f"{ours['eye_tracking']:.2f}" and f"{spr:.2f}" == f"{ours['self_paced_reading']:.2f}"}
    folder = data / suite.TASKS[task].folder
    items = suite.TASKS[task].read(folder)
    first = {}
    for it in items:
        first.setdefault(it.uid, []).append(it.completions[0])
    dataset = folder.name
    preds = json.loads((base / PIPELINE_TASK[task] / dataset / "predictions.json").read_text())
    differ = total = 0
    prob_diff = 0.0
    for uid, right in first.items():
        theirs = preds[uid]["predictions"]
        mine = ours["decisions"][uid]
        assert len(theirs) == len(mine) == len(right), (task, uid)
        for k, (p, d, r) in enumerate(zip(theirs, mine, right)):
            total += 1
            differ += (p["pred"] == r) != (d == "1")
            if "prob" in p:
                prob_diff = max(prob_diff, abs(p["prob"] - ours["probs"][total - 1]))
    report = (base / PIPELINE_TASK[task] / dataset / "best_temperature_report.txt").read_text()
    printed = float(re.search(r"### AVERAGE [A-Z' ]+\n(-?[\d.]+)", report).group(1))
    mine = ours["spearman"] if "spearman" in ours else ours["score"]
    out = {"items": total, "differ": differ, "theirs": f"{printed:.2f}", "ours": f"{mine:.2f}",
           "same_printed": f"{printed:.2f}" == f"{mine:.2f}"}
    if "spearman" in ours:
        out["prob_max_abs_diff"] = prob_diff
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--pipeline", type=Path, required=True)
    ap.add_argument("--pipeline-python", default=sys.executable)
    ap.add_argument("--task", action="append", default=[])
    ap.add_argument("--work", type=Path, default=Path("/tmp/suite_bench"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--skip-pipeline", action="store_true", help="reuse the pipeline's outputs in --work (no timing)")
    args = ap.parse_args()
    model, data = args.model.expanduser().resolve(), args.data.expanduser().resolve()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false")
    tasks = args.task or [t for t in suite.TASKS if (data / suite.TASKS[t].folder).is_dir()]
    args.work.mkdir(parents=True, exist_ok=True)
    times_file = args.work / "pipeline_times.json"  # kept, so --skip-pipeline can reuse a run's outputs and times
    times = json.loads(times_file.read_text()) if times_file.is_file() else {}
    if not args.skip_pipeline:
        for task in tasks:
            times[task], _ = run(pipeline_cmd(args.pipeline_python, model, data, task, args.work / "pipeline"),
                                 args.pipeline.resolve(), env)
            times_file.write_text(json.dumps(times))
            print(f"pipeline {task}: {times[task]}", flush=True)
    ours = [str(Path(sys.executable).with_name("babysweep"))]  # this environment's console script
    cmd = ours + ["eval", str(model), "--suite", "babylm", "--data", str(data), "--json"]
    for task in tasks:
        cmd += ["--task", task]
    whole, stdout = run(cmd, None, env)  # one process for the whole suite, as a user runs it
    results = json.loads(stdout)["tasks"]
    (args.work / "ours.json").write_text(json.dumps(results))
    nan = {"wall": float("nan"), "cpu": float("nan")}
    for task in tasks:
        mine, theirs = {"wall": results[task]["seconds"], "cpu": results[task]["cpu_seconds"]}, times.get(task, nan)
        cmp = compare(task, results[task], model, data, args.work / "pipeline")
        print(f"{task:16s} " + "  ".join(f"{k}: ours {mine[k]:7.1f} s pipeline {theirs[k]:7.1f} s ratio {theirs[k] / mine[k]:5.1f}x"
                                         for k in ("cpu", "wall")) + f"  {json.dumps(cmp)}")
    total = {k: sum(times.get(t, nan)[k] for t in tasks) for k in ("cpu", "wall")}
    print(f"{'suite':16s} " + "  ".join(f"{k}: ours {whole[k]:7.1f} s pipeline {total[k]:7.1f} s ratio {total[k] / whole[k]:5.1f}x"
                                        for k in ("cpu", "wall"))
          + f"  end to end: one `babysweep eval --suite` process against the pipeline's {len(tasks)} commands (threads {args.threads})")
    print("per task: our data reading and scoring in that process (no start-up, no model load) against the pipeline's whole command")


if __name__ == "__main__":
    main()
