"""automl.tracking._outbox: calls wait, in order, while the server is unreachable.

The calls here are plain functions standing in for MLflow requests, so the queueing rules
are checked exactly; `test_mlflow_outage.py` takes a real MLflow server away mid-search.
"""

from __future__ import annotations

import logging

import pytest
import requests
from mlflow.exceptions import MlflowException, RestException

from automl.tracking._outbox import Outbox, is_unreachable


class FlakyServer:
    """Records delivered calls; raises a connection error while `down`."""

    def __init__(self) -> None:
        self.down = False
        self.delivered: list[str] = []

    def call(self, label: str):
        def run(resolve):
            if self.down:
                raise requests.ConnectionError("Connection refused")
            self.delivered.append(label.format(run=resolve("pending-run-1")))

        return run


def test_calls_run_at_once_while_the_server_answers():
    server, outbox = FlakyServer(), Outbox("http://mlflow")
    outbox.send(server.call("a"))
    outbox.send(server.call("b"))
    assert server.delivered == ["a", "b"] and outbox.pending == 0


def test_calls_wait_in_order_and_catch_up_with_one_warning(caplog):
    server, outbox = FlakyServer(), Outbox("http://mlflow", retry_every=0)
    caplog.set_level(logging.WARNING, logger="automl")
    outbox.send(server.call("before"))
    server.down = True
    for label in ("m1", "m2", "m3"):
        outbox.send(server.call(label))
    assert server.delivered == ["before"] and outbox.pending == 3
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 1  # warned once, not per call
    server.down = False
    outbox.send(server.call("after"))
    assert server.delivered == ["before", "m1", "m2", "m3", "after"]
    assert any("caught up on 4" in r.getMessage() for r in caplog.records)


def test_local_run_keys_resolve_to_the_id_the_server_gave():
    server, outbox = FlakyServer(), Outbox("http://mlflow", retry_every=0)
    server.down = True
    key = outbox.new_key()

    def create_run(_):
        if server.down:
            raise requests.ConnectionError("Connection refused")
        outbox.bind(key, "real-id")

    outbox.send(create_run)
    outbox.send(server.call("metric on {run}"))
    assert outbox.resolve(key) == key  # not created yet
    server.down = False
    assert outbox.flush()
    assert server.delivered == ["metric on real-id"]


def test_refused_calls_are_dropped_with_a_warning_not_retried(caplog):
    outbox, done = Outbox("sqlite:///x.db"), []

    def bad(_):
        raise MlflowException("INVALID_PARAMETER_VALUE: param changed")

    caplog.set_level(logging.WARNING, logger="automl")
    outbox.send(bad)
    outbox.send(lambda _: done.append(1))
    assert done == [1] and outbox.pending == 0
    assert "refused" in caplog.text


def test_drain_gives_up_after_its_patience_and_says_how_many_were_lost(caplog):
    server, outbox = FlakyServer(), Outbox("http://mlflow", retry_every=0.05)
    server.down = True
    outbox.send(server.call("x"))
    caplog.set_level(logging.WARNING, logger="automl")
    assert outbox.drain(patience=0.2) is False
    assert "1 calls were not delivered" in caplog.text


@pytest.mark.parametrize(
    ("error", "unreachable"),
    [
        (requests.ConnectionError("refused"), True),
        (requests.Timeout("slow"), True),
        (
            MlflowException(
                "API request to http://h/api/2.0/mlflow/runs/log-batch failed with exception "
                "HTTPConnectionPool(host='h', port=5000): Max retries exceeded"
            ),
            True,
        ),
        (RestException({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "x"}), True),
        (RestException({"error_code": "INVALID_PARAMETER_VALUE", "message": "x"}), False),
        (ValueError("bad"), False),
    ],
)
def test_only_connection_failures_count_as_unreachable(error, unreachable):
    assert is_unreachable(error) is unreachable
