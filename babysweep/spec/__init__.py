"""Sweep specs: YAML -> a validated, typed search space; distributions and the Optuna sampler."""


def __getattr__(name: str):  # names pickled under this module's old flat name (core/legacy_names.py)
    from babysweep.core.legacy_names import legacy_attribute

    return legacy_attribute(__name__, name)
