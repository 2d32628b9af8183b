"""Warm workers across a wave's end: keep every finished trial's worker while the next wave is on its way.

    with keeping_workers(spec.search.concurrent if spec.search.reuse_workers else 0):
        tuner.fit()

Ray Tune (search.reuse_workers, its reuse_actors) keeps a finished trial's worker only for a trial already
waiting for one, or one worker when none waits. Trials of a wave (sweep.driver.in_waves) end one after the other
before the searcher releases the next wave, so the first to end kept its worker and every later one lost it:
the next wave started all but one of its trials in a new process, paying Ray's worker start and the imports of
torch and transformers (7 to 8 s per trial measured in the default study's teacher sweep, 2026-12-05) while
the other cores trained. Here up to `keep` workers (the sweep's trials at once) wait. They hold no more than
the trials that just ended held, and Ray stops them all when no trial is left to come.
"""

from __future__ import annotations

import contextlib
import functools


def keep_up_to(keep: int, may_keep_one: bool = True):
    """Ray's actor cache, with `keep` objects (not one) kept while no pending trial has asked for any."""
    from ray.tune.utils.object_cache import _ObjectCache  # here: importing the driver stays free of ray.tune

    class KeepUpTo(_ObjectCache):
        def _none_wanted(self) -> bool:
            return not any(v for v in self._max_num_objects.values())

        def cache_object(self, key, obj) -> bool:
            if self._may_keep_one and self._none_wanted() and self._num_cached_objects < keep:
                self._cached_objects[key].append(obj)
                self._num_cached_objects += 1
                return True
            return super().cache_object(key, obj)

        def flush_cached_objects(self, force_all: bool = False):
            if not force_all and self._none_wanted() and self._num_cached_objects <= keep:
                return  # the next wave will want them
            yield from super().flush_cached_objects(force_all)

    return KeepUpTo(may_keep_one=may_keep_one)


@contextlib.contextmanager
def keeping_workers(keep: int):
    """Within it, Tune's trial loop keeps up to `keep` idle workers (Ray's own behaviour for keep <= 1)."""
    if keep <= 1:
        yield
        return
    from ray.tune.execution import tune_controller

    original = tune_controller._ObjectCache
    tune_controller._ObjectCache = functools.partial(keep_up_to, keep)
    try:
        yield
    finally:
        tune_controller._ObjectCache = original
