"""Ray Tune, and only here: the sweep driver, its callback, searcher, scheduler, state, clusters and object storage."""


def __getattr__(name: str):  # names pickled under this module's old flat name (core/legacy_names.py)
    from babysweep.core.legacy_names import legacy_attribute

    return legacy_attribute(__name__, name)
