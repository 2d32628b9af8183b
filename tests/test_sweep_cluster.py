"""A sweep on a two-node Ray cluster made on this machine: trials run on both nodes."""

import pytest

from babysweep.spec.load import load_spec

from helpers import write_spec

pytestmark = pytest.mark.slow


def test_two_node_cluster(tmp_path, monkeypatch, cache_dir):
    import ray
    from ray.cluster_utils import Cluster

    from babysweep.sweep.driver import run_sweep
    from babysweep.sweep.state import sweep_status

    monkeypatch.setenv("BABYSWEEP_PROJECT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    ray.shutdown()  # the cluster brings its own head node
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 100 * 1024**2,
                                                            "include_dashboard": False})
    cluster.add_node(num_cpus=1, object_store_memory=100 * 1024**2)
    try:
        cluster.wait_for_nodes()
        spec = write_spec(tmp_path, cache_dir, name="cluster", samples=2, epochs=1)
        result = run_sweep(load_spec(spec), address=cluster.address, live=False)
        assert result.counts["finished"] == 2
        nodes = {row["metrics_raw"]["node_id"] for row in sweep_status("cluster")}
        assert len(nodes) == 2, nodes  # one CPU per node and one per trial: each node ran one
    finally:
        ray.shutdown()
        cluster.shutdown()
