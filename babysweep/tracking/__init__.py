"""MLflow, and only here: the store, the sweep tracker, reading runs back, the UI and its links."""


def __getattr__(name: str):  # names pickled under this module's old flat name (core/legacy_names.py)
    from babysweep.core.legacy_names import legacy_attribute

    return legacy_attribute(__name__, name)
