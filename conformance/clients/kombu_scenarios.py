"""Conformance scenarios written with kombu (py-amqp transport), limited to what kombu's own API
(Connection, Exchange, Queue, Producer, Consumer, Message) expresses: no nack, no transactions,
no consumer-cancel callback, no basic.return handling.

    python kombu_scenarios.py URL SCENARIO|all|list

The entry point: the scenarios live in topic modules that register them on import, in the order
of the report (topology, messaging, publishing, errors, celery). Helpers: kombu_common.py.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pyharness import main  # noqa: E402

import kombu_topology  # noqa: E402,F401
import kombu_messaging  # noqa: E402,F401
import kombu_publishing  # noqa: E402,F401
import kombu_errors  # noqa: E402,F401
import kombu_celery  # noqa: E402,F401
import kombu_compat  # noqa: E402,F401

if __name__ == "__main__":
    main()
