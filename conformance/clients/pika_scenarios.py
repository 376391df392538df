"""Conformance scenarios written with pika (BlockingConnection): the entry point.

    python pika_scenarios.py URL SCENARIO|all|list

The scenarios live in topic modules that register them on import, in this order (the order of
the report): topology, messaging, publishing, errors, claims (issue 12), then the queue features of issue 6
(ttl_limits, dead_letter, consumers). Helpers: pika_common.py.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pyharness import main  # noqa: E402

import pika_topology  # noqa: E402,F401
import pika_messaging  # noqa: E402,F401
import pika_publishing  # noqa: E402,F401
import pika_errors  # noqa: E402,F401
import pika_claims  # noqa: E402,F401
import pika_fairness  # noqa: E402,F401
import pika_ttl_limits  # noqa: E402,F401
import pika_dead_letter  # noqa: E402,F401
import pika_x_death  # noqa: E402,F401
import pika_consumers  # noqa: E402,F401
import pika_compat  # noqa: E402,F401

if __name__ == "__main__":
    main()
