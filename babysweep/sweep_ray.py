"""Starting or joining Ray for a sweep, with one-sentence errors when a cluster cannot be joined.

    init_ray(None)               # a new local Ray sized to this machine (never a leftover cluster)
    init_ray("10.0.0.5:6379")    # join a cluster started by `ray start --head --port 6379`

Joining follows the rule `ray start --head` itself applies (Ray 2.60): when RAY_AUTH_MODE is unset and a
token is at hand (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token), token authentication is on.
`ray.init(address=...)` with an explicit address does not apply that rule, so without it a driver on the
head's own machine is refused by the head it started. A cluster without authentication accepts a
client that sends a token, so turning it on costs nothing there.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile

from babysweep.errors import UserError

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
        with _bounded_attempts(), _quiet_stderr():  # Ray's own notice that token auth is on goes too
            _enable_token_auth_like_ray_start()
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    except Exception as exc:  # noqa: BLE001 - every cause becomes one sentence below
        raise UserError(_explain(exc, address, where, _token_auth_on())) from None


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


def _enable_token_auth_like_ray_start() -> None:
    """Turn token authentication on as `ray start --head` does (Ray's own function, so its token lookup)."""
    try:
        from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
    except ImportError:  # a Ray without token authentication (before 2.52)
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _token_auth_on() -> bool:
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled
    except ImportError:
        return False
    return is_token_auth_enabled()


@contextlib.contextmanager
def _bounded_attempts():
    """Ray retries a refused connection for about 20 s; a handful of attempts tells the same."""
    key = "RAY_gcs_server_port_wait_time_s"  # read by ray.init when it connects to the GCS
    given = os.environ.get(key)
    os.environ.setdefault(key, CONNECT_ATTEMPTS)
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
    if "InvalidAuthToken" in text or "Unauthenticated" in text or type(exc).__name__ == "AuthenticationError":
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
