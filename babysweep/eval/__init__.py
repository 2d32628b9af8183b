"""Evaluation of trained models, scored as the community's tools score them: BLiMP (and the BabyLM suite)."""
