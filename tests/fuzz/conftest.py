"""Hypothesis profiles for the property tests in this folder.

`ci` (the default, what `make test` runs): a fixed, bounded set of examples per property, the same on
every run, so the suite stays fast and never flakes. `long`: many more, freshly random each run, for
whoever wants to search harder (`make fuzz`, i.e. `HYPOTHESIS_PROFILE=long pytest tests/fuzz`); a
failure it finds is printed with the example and a `@reproduce_failure` blob to paste into the test.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=20_000, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
