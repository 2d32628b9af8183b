"""One training run: the trainer (no Ray, no MLflow), its checkpoints, progress, model cards and the teacher-output cache."""
