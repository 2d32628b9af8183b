"""Deep links into MLflow's UI: each sweep's trials by metric, its charts and its compare page.

    links = ui_links(uri, address, "teachers")   # -> [UiLinks(sweep, runs=URL, charts=URL, compare=URL, ...)]
"""

from __future__ import annotations

import hashlib

import json
import re
from urllib.parse import quote
from dataclasses import dataclass
from mlflow.entities import ViewType
from babysweep.core import records as R
from babysweep.core.metrics import BLIMP_OVERALL, EVAL_LOSS, TRAIN_LOSS
from babysweep.core.errors import UserError
from babysweep.tracking.runs import REPORTS_EXPERIMENT, _children, _parent
from babysweep.tracking.store import _reader
from babysweep.tracking.values import _mark_model_training



# ------------------------------------------------------------------------------------ deep links

VIEW_KEY = "babysweep-trials"  # the shared view state babysweep writes on each sweep's experiment
SHARED_VIEW_TAG = "mlflow.sharedViewState."  # MLflow's UI reads `?viewStateShareKey=K` from this tag + K


@dataclass(frozen=True)
class UiLinks:
    """Deep links into MLflow's UI for one sweep."""

    sweep: str
    experiment_id: str
    runs: str  # the experiment's runs table: trials only, sorted by the sweep's metric, its columns shown
    charts: str  # the same trials in the chart view, showing the sweep's metrics first
    compare: str  # the chart view of the fully trained trials, opening on parallel coordinates of the metric
    trials: int  # how many trials the compare link shows
    compare_page: str = ""  # MLflow's compare page of the same trials (its axes are MLflow's choice: see docs/ui.md)
    params: list = ()  # the varying keys in the order the views show them (most important first, where known)


# MLflow's sidebar shows its model-training pages (not GenAI's) for this URL parameter.
WORKFLOW = "workflowType=machine_learning"


def sweeps_link(address: str, links: list[UiLinks]) -> str:
    """Several sweeps side by side in the chart view: one parent run each, a chart per summary metric
    (best/..., trials/...), each line the metric's value as the sweep's trials ended."""
    ids = quote(json.dumps([link.experiment_id for link in links]))
    parents = quote(f"tags.{R.KIND} = 'sweep'")
    return f"{address}/#/compare-experiments/s?experiments={ids}&searchFilter={parents}&{WORKFLOW}&compareRunsMode=CHART"


def _view_state(metric: str, mode: str, varying: list[str], run_ids: list[str] | None = None) -> dict:
    """A runs-table view as MLflow's "Share" button stores it: a filter, a sort, the columns, and the chart
    view's first section: parallel coordinates of `metric` over `varying` (most important first), the metric
    against the first of them, and the metric's curve. With `run_ids`, only those runs are listed."""
    def column(kind: str, key: str) -> str:
        return f"{kind}.`{key}`"

    metrics = list(dict.fromkeys([metric, EVAL_LOSS, BLIMP_OVERALL]))
    only = f" and attributes.run_id IN ({', '.join(repr(str(r)) for r in run_ids)})" if run_ids else ""
    section = "babysweep-" + hashlib.sha1(f"{metric}|{','.join(varying)}".encode()).hexdigest()[:12]
    base = {"metricSectionId": section, "deleted": False, "isGenerated": False, "runsCountToCompare": 100}
    charts = [{**base, "uuid": section + "-parallel", "type": "PARALLEL", "displayName": f"{metric} by parameter",
               "selectedMetrics": [metric], "selectedParams": list(varying), "showAllRuns": True}]
    if varying:
        charts.append({**base, "uuid": section + "-scatter", "type": "SCATTER", "displayName": f"{metric} against {varying[0]}",
                       "xaxis": {"key": varying[0], "type": "PARAM"}, "yaxis": {"key": metric, "type": "METRIC"}})
    charts.append({**base, "uuid": section + "-line", "type": "LINE", "displayName": metric, "metricKey": metric,
                   "selectedMetricKeys": [metric], "lineSmoothness": 0, "xAxisScaleType": "linear", "scaleType": "linear",
                   "range": {}, "xAxisKey": "step", "selectedXAxisMetricKey": "", "yAxisKey": "metric",
                   "yAxisExpressions": [], "ignoreOutliers": False, "useGlobalXaxisKey": True, "useGlobalLineSmoothing": True})
    return {"searchFilter": f"tags.{R.KIND} = 'trial'{only}", "orderByKey": column("metrics", metric), "orderByAsc": mode == "min",
            "selectedColumns": [*(column("metrics", m) for m in metrics), *(column("params", k) for k in varying),
                                *(column("tags", t) for t in (R.ROLE, R.ARCH, R.SCHEDULE))],
            # the chart view: the section above first, then MLflow's own chart per metric
            "compareRunCharts": charts,
            "compareRunSections": [{"uuid": section, "name": f"babysweep: {metric} and the parameters that vary",
                                    "display": True, "isReordered": False, "deleted": False, "isGenerated": False}],
            # the chart view's search box, a case-insensitive regular expression on metric names
            "chartsSearchFilter": "|".join(re.escape(m) for m in [*metrics, TRAIN_LOSS]),
            "runListHidden": False}


# The compare link's shared view: the same, listing the fully trained trials only.
COMPARE_VIEW_KEY = "babysweep-compare"


def ui_links(tracking_uri: str, address: str, sweep: str | None = None, rank=None) -> list[UiLinks]:
    """Deep links for `sweep` (or for every sweep in the store), oldest experiment first.

    `rank(runs, metric, mode)`, when given, returns the varying keys most important first (a report's
    PED-ANOVA; tracking computes none itself), or None when that is not known; else the keys with the
    most distinct values come first. Writes on each sweep's experiment the shared view states its links
    name, and the experiment kind of the model-training view where a store from an older babysweep lacks it."""
    client = _reader(tracking_uri, sweep)
    if sweep is not None:
        names = [sweep]
    else:
        names = [e.name for e in client.search_experiments(ViewType.ACTIVE_ONLY, order_by=["creation_time ASC"])
                 if e.name != REPORTS_EXPERIMENT]
    out = []
    for name in names:
        try:
            experiment_id, parent = _parent(client, tracking_uri, name)
        except UserError:
            if sweep is not None:
                raise
            continue  # an experiment that is not a sweep
        _mark_model_training(client, client.get_experiment(experiment_id))
        metric, mode = R.objective(parent.data.tags, EVAL_LOSS)
        runs = [{"run_id": r.info.run_id, "status": r.info.status, "tags": r.data.tags, "params": r.data.params,
                 "metrics": r.data.metrics} for r in _children(client, experiment_id, parent.info.run_id)]
        finished = [r for r in runs if R.fully_trained(r)]
        varying = R.varying_keys([{k: r["params"].get(k) for k in R.sampled_keys(r, with_seed=True)} for r in runs], most=1000)
        ranked = rank(runs, metric, mode) if rank is not None and varying else None
        if ranked:
            varying = [k for k in ranked if k in varying] + [k for k in varying if k not in ranked]
        for key, ids in ((VIEW_KEY, None), (COMPARE_VIEW_KEY, [r["run_id"] for r in finished])):
            state = json.dumps(_view_state(metric, mode, varying, ids), sort_keys=True)
            client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + key, state)
        ids = json.dumps([r["run_id"] for r in finished], separators=(",", ":"))
        page = f"{address}/#/compare-runs?runs={quote(ids)}&experiments={quote(json.dumps([experiment_id]))}&{WORKFLOW}"
        runs_url = f"{address}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}&{WORKFLOW}"
        compare = f"{address}/#/experiments/{experiment_id}/runs?viewStateShareKey={COMPARE_VIEW_KEY}&{WORKFLOW}&compareRunsMode=CHART"
        out.append(UiLinks(name, experiment_id, runs_url, runs_url + "&compareRunsMode=CHART", compare, len(finished),
                           page, varying))
    return out
