"""Test-suite configuration: hypothesis runs a fixed set of examples unless asked to explore; the Dask cluster.

The property tests are deterministic by default (derandomize), so CI cannot turn red on a random
draw; `HYPOTHESIS_PROFILE=explore pytest tests/test_properties.py` searches new examples.
"""

import os

import pytest
from hypothesis import settings

settings.register_profile("default", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False, max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="module")
def client(request):
    """A distributed.LocalCluster of two worker processes, one thread each, for the Dask test modules."""
    import cloudpickle
    import distributed

    # the module's bad-partition helpers travel to the worker processes by value
    cloudpickle.register_pickle_by_value(request.module)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()
