"""Deep links into MLflow's UI: each sweep's trials by metric, its charts and its compare page.

    links = ui_links(uri, address, "teachers")   # -> [UiLinks(sweep, runs=URL, charts=URL, compare=URL, ...)]
"""

from __future__ import annotations

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
    compare: str  # the compare page of the fully trained trials: parallel coordinates, scatter and metric plots
    trials: int  # how many trials the compare page shows


# MLflow's sidebar shows its model-training pages (not GenAI's) for this URL parameter.
WORKFLOW = "workflowType=machine_learning"


def sweeps_link(address: str, links: list[UiLinks]) -> str:
    """Several sweeps side by side in the chart view: one parent run each, a chart per summary metric
    (best/..., trials/...), each line the metric's value as the sweep's trials ended."""
    ids = quote(json.dumps([link.experiment_id for link in links]))
    parents = quote(f"tags.{R.KIND} = 'sweep'")
    return f"{address}/#/compare-experiments/s?experiments={ids}&searchFilter={parents}&{WORKFLOW}&compareRunsMode=CHART"


def _view_state(metric: str, mode: str, varying: list[str]) -> dict:
    """A runs-table view as MLflow's "Share" button stores it: a filter, a sort and the columns."""
    def column(kind: str, key: str) -> str:
        return f"{kind}.`{key}`"

    metrics = list(dict.fromkeys([metric, EVAL_LOSS, BLIMP_OVERALL]))
    return {"searchFilter": f"tags.{R.KIND} = 'trial'", "orderByKey": column("metrics", metric), "orderByAsc": mode == "min",
            "selectedColumns": [*(column("metrics", m) for m in metrics), *(column("params", k) for k in varying),
                                *(column("tags", t) for t in (R.ROLE, R.ARCH, R.SCHEDULE))],
            # the chart view's search box, a case-insensitive regular expression on metric names
            "chartsSearchFilter": "|".join(re.escape(m) for m in [*metrics, TRAIN_LOSS]),
            "runListHidden": False}


def ui_links(tracking_uri: str, address: str, sweep: str | None = None) -> list[UiLinks]:
    """Deep links for `sweep` (or for every sweep in the store), oldest experiment first.

    Writes on each sweep's experiment the shared view state its runs link names, and the
    experiment kind of the model-training view where a store from an older babysweep lacks it."""
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
        runs = [{"run_id": r.info.run_id, "status": r.info.status, "tags": r.data.tags, "params": r.data.params}
                for r in _children(client, experiment_id, parent.info.run_id)]
        finished = [r for r in runs if R.fully_trained(r)]
        varying = R.varying_keys([{k: r["params"].get(k) for k in R.sampled_keys(r, with_seed=True)} for r in runs])
        state = json.dumps(_view_state(metric, mode, varying), sort_keys=True)
        client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + VIEW_KEY, state)
        ids = json.dumps([r["run_id"] for r in finished], separators=(",", ":"))
        compare = f"{address}/#/compare-runs?runs={quote(ids)}&experiments={quote(json.dumps([experiment_id]))}&{WORKFLOW}"
        runs_url = f"{address}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}&{WORKFLOW}"
        out.append(UiLinks(name, experiment_id, runs_url, runs_url + "&compareRunsMode=CHART", compare, len(finished)))
    return out
