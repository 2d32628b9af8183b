"""babysweep: hyperparameter sweeps and ablations for small-data language-model pretraining."""

__version__ = "0.1.0"

from babysweep.core import legacy_names as _legacy_names

_legacy_names.install()  # sweep folders made before the package move name the old flat modules
