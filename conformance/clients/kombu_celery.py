"""kombu scenario: a Celery task round trip (worker subprocess, rpc:// result backend)."""

import os
import sys

from kombu import Connection, Exchange, Queue

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pyharness import Fail, eq, scenario, unique  # noqa: E402


@scenario("celery_task_roundtrip")
def celery_task_roundtrip(url):
    """A Celery worker (a subprocess, kombu/py-amqp underneath) consumes a task sent with
    apply_async and the caller gets its result through the rpc:// backend."""
    import signal
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    queue, exchange = unique("q-celery"), unique("ex-celery")
    env = dict(os.environ, CONF_BROKER_URL=url, CONF_QUEUE=queue, CONF_EXCHANGE=exchange,
               PYTHONPATH=here)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool=solo",
         "--concurrency=1", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "--loglevel=WARNING", "-Q", queue, "-n", f"{queue}@localhost"],
        env=env, cwd=here, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        os.environ.update(CONF_BROKER_URL=url, CONF_QUEUE=queue, CONF_EXCHANGE=exchange)
        sys.path.insert(0, here)
        from celery_app import add  # noqa: E402
        res = add.apply_async((2, 3))
        try:
            out = res.get(timeout=14)
        except Exception as e:  # noqa: BLE001
            worker.send_signal(signal.SIGTERM)
            log = worker.communicate(timeout=5)[0].decode(errors="replace").strip().splitlines()
            raise Fail(f"no result: {e!r}; worker log: {' | '.join(log[-5:])}")
        eq(out["sum"], 5, "task result")
        eq(out["pid"], worker.pid, "task ran in the worker subprocess")
        eq(res.state, "SUCCESS", "task state")
        add.app.close()
        return f"result {out['sum']} from worker pid {out['pid']}"
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(5)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        try:
            with Connection(url, connect_timeout=10) as c:
                ch = c.channel()
                Queue(queue, channel=ch).delete()
                Exchange(exchange, channel=ch).delete()
        except Exception:  # noqa: BLE001
            pass
