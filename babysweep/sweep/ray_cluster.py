"""Starting or joining Ray for a sweep, with one-sentence errors when a cluster cannot be joined.

    init_ray(None)               # a new local Ray sized to this machine (never a leftover cluster)
    init_ray("10.0.0.5:6379")    # join a cluster started by `ray start --head --port 6379`

`ray start --head` (Ray 2.60) turns token authentication on when RAY_AUTH_MODE is unset and a token is at
hand (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token); `ray.init(address=...)` with an explicit
address does not, so a driver on the head's own machine was refused by the head it started. With
RAY_AUTH_MODE unset, a first attempt goes without a token (one try, about a second); when the head refuses
it, token authentication is turned on by Ray's own rule and the driver connects again. Not the other way
round: a cluster without authentication accepts a driver that sends a token, but a driver in token mode
then refuses that cluster's workers, which send none.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile

from babysweep.core.errors import UserError

CONNECT_ATTEMPTS = "5"  # Ray's GCS connection attempts, about one second each (Ray's default is 20)
PROBE_TIMEOUT_S = 5.0  # a silent firewall fails here, long before Ray's own retries would


def init_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        join_cluster(address)
    else:
        # address="local": always a new local Ray. Without it, ray.init joins whatever local cluster
        # Ray's temp folder points at (a leftover `ray start` head, another user's sweep) and then refuses num_cpus.
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 object_store_memory=300 * 1024**2)


def join_cluster(address: str) -> None:
    import ray

    where = f"the Ray cluster at {address} (--address or RAY_ADDRESS)"
    host_port = _host_port(address)
    if host_port:
        _probe(*host_port, where)
    try:
        with _quiet_stderr():  # Ray's warning per failed attempt, and its notice that token auth is on
            try:
                with _bounded_attempts("1" if "RAY_AUTH_MODE" not in os.environ else CONNECT_ATTEMPTS):
                    ray.init(address=address, log_to_driver=False, logging_level="ERROR")
            except Exception as exc:  # noqa: BLE001
                # Refused without a token: the head runs with token authentication, as `ray start --head` turns
                # it on when its machine has a token. Enable it here as Ray's CLI does, if a token is at hand.
                # Not before: a driver in token mode also demands the token of the workers calling back to it,
                # and the workers of a cluster without authentication have none.
                if not _auth_refused(exc) or "RAY_AUTH_MODE" in os.environ or not _enable_token_auth_like_ray_start():
                    raise
                with _bounded_attempts(CONNECT_ATTEMPTS):
                    ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    except Exception as exc:  # noqa: BLE001 - every cause becomes one sentence below
        raise UserError(_explain(exc, address, where, _token_auth_on())) from None


def _auth_refused(exc: Exception) -> bool:
    text = f"{exc} {exc.__cause__ or ''}"
    return "InvalidAuthToken" in text or "Unauthenticated" in text or type(exc).__name__ == "AuthenticationError"


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a plain GCS address; None for "auto" or ray:// (Ray resolves those itself)."""
    if "://" in address or ":" not in address:
        return None
    host, _, port = address.rpartition(":")
    return (host.strip("[]"), int(port)) if port.isdigit() else None


def _probe(host: str, port: int, where: str) -> None:
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__).lower()
        raise UserError(
            f"Could not reach {where}: {reason}; start the head there with `ray start --head --port {port}`, "
            "or give the address that `ray start --head` printed."
        ) from None


def _enable_token_auth_like_ray_start() -> bool:
    """Turn token authentication on as `ray start --head` does (Ray's own function, so its token lookup:
    RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token); False when no token is at hand."""
    try:
        from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
    except ImportError:  # a Ray without token authentication (before 2.52)
        return False
    return maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _token_auth_on() -> bool:
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled
    except ImportError:
        return False
    return is_token_auth_enabled()


@contextlib.contextmanager
def _bounded_attempts(attempts: str):
    """Ray retries a refused connection for about 20 s; a handful of attempts tells the same."""
    key = "RAY_gcs_server_port_wait_time_s"  # read by ray.init when it connects to the GCS
    given = os.environ.get(key)
    os.environ[key] = given or attempts
    try:
        yield
    finally:
        if given is None:
            os.environ.pop(key, None)


@contextlib.contextmanager
def _quiet_stderr():
    """Ray's C++ client prints a warning line per failed attempt straight to file descriptor 2."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _explain(exc: Exception, address: str, where: str, token_sent: bool) -> str:
    text = f"{exc} {exc.__cause__ or ''}"
    if _auth_refused(exc):
        if token_sent:
            return (f"{where[0].upper()}{where[1:]} refused this machine's authentication token; use the head's token (`ray get-auth-token` "
                    "on the head) in ~/.ray/auth_token, RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH.")
        return (f"{where[0].upper()}{where[1:]} requires an authentication token and none was found; copy the head's ~/.ray/auth_token "
                "(`ray get-auth-token` on the head) to this machine, or set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH.")
    if "version mismatch" in text.lower():
        import ray

        return (f"{where[0].upper()}{where[1:]} runs another Ray version than this machine's {ray.__version__}; "
                f"install ray=={ray.__version__} on every node (or this machine's Ray to match the cluster's).")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"Could not join {where}: {first}; check the head with `ray status --address {address}`."
