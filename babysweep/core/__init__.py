"""The bottom layer: the config schema, metric names, paths, errors, durable writes, run-record rules. Imports nothing of babysweep above it."""
