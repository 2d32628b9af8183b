"""Errors a user can cause. The CLI prints their message as one sentence and exits with status 2."""


class UserError(Exception):
    """Bad input: a spec, a path, a corpus or a model folder the user gave. Never a bug."""
