"""Celery app of the kombu client's `celery_task_roundtrip` scenario (broker: kombu/py-amqp,
result backend rpc://). The broker URL, task queue and exchange come from the environment so each
run uses its own names."""

import os

from celery import Celery

app = Celery("conformance", broker=os.environ.get("CONF_BROKER_URL"), backend="rpc://")
app.conf.update(
    task_default_queue=os.environ.get("CONF_QUEUE", "celery"),
    task_default_exchange=os.environ.get("CONF_EXCHANGE", "celery"),
    task_default_routing_key=os.environ.get("CONF_QUEUE", "celery"),
    worker_enable_remote_control=False,  # no celery.pidbox exchange/queues
    worker_send_task_events=False,
    broker_connection_retry_on_startup=False,
    broker_heartbeat=0,
    worker_hijack_root_logger=False,
    result_expires=None,
)


@app.task(name="conformance.add")
def add(x, y):
    return {"sum": x + y, "pid": os.getpid()}
