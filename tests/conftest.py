"""Test-suite configuration: hypothesis runs a fixed set of examples unless asked to explore.

The property tests are deterministic by default (derandomize), so CI cannot turn red on a random
draw; `HYPOTHESIS_PROFILE=explore pytest tests/test_properties.py` searches new examples.
"""

import os

from hypothesis import settings

settings.register_profile("default", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False, max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
