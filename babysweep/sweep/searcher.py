"""The sweep layer's Optuna searcher. Imports Ray at import time, like sweep/callback.py: sweep/driver.py loads it
only when a sweep starts."""

from ray.tune.search.optuna import OptunaSearch


class FinalResultOptunaSearch(OptunaSearch):
    """Optuna learns from each trial's final result. Ray's OptunaSearch also reads every epoch's result
    by the metric, which fails for a metric measured at a trial's end only (blimp/overall)."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self.metric in result:
            super().on_trial_result(trial_id, result)
