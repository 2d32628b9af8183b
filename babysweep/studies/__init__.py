"""The research question in order: studies, finalists, ablations (built from sweeps and reports)."""
