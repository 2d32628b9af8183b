"""babysweep: hyperparameter sweeps and ablations for small-data language-model pretraining."""

__version__ = "0.1.0"
