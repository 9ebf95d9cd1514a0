"""A step that never answers, and a Lambda invocation about to time out: the job is still
answered, and the handler returns before the invocation's deadline (measured)."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from orchestrator.local.driver import LambdaContext
from tests.reliability.figures import FIGURES
from tests.reliability.rig import Function, Rig

if TYPE_CHECKING:
    from types import TracebackType


class SilentServer:
    """Accepts TCP connections and never answers (or, `trickle`, answers one byte at a time,
    forever: each read gets a byte before any read timeout)."""

    def __init__(self, trickle: float | None = None) -> None:
        self.trickle = trickle
        self.connections: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._listener.settimeout(0.05)
        self._stop = threading.Event()
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/health"
        self._threads = [threading.Thread(target=self._accept, daemon=True)]

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections.append(connection)
            if self.trickle is not None:
                thread = threading.Thread(target=self._drip, args=(connection,), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _drip(self, connection: socket.socket) -> None:
        assert self.trickle is not None
        try:
            connection.recv(65536)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000000\r\n\r\n"
            )
            while not self._stop.wait(self.trickle):
                connection.sendall(b" ")
        except OSError:
            return  # the client gave up

    def __enter__(self) -> SilentServer:
        self._threads[0].start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        for connection in self.connections:
            connection.close()
        self._listener.close()


def hanging_gate(url: str) -> dict[str, Any]:
    return {
        "steps": [
            {
                "name": "health",
                "http": {"url": url, "request_timeout": "10m"},
                "every": "30s",
                "timeout": "5m",
            }
        ]
    }


class Delivery:
    """One delivery of a first job with `seconds` left in the invocation, in a thread, so
    that a handler that does not return cannot hang the test: `wait()` gives up on it a
    second after the deadline (the server's exit then ends its connection)."""

    def __init__(
        self, rig: Rig, function: Function, definition: dict[str, Any], seconds: float
    ) -> None:
        self.job = rig.emulator.create_job(
            {"FunctionName": "orchestrator", "UserParameters": json.dumps(definition)}
        )
        function.app()  # warm: the deadline is about the tick, not about creating clients
        self.seconds = seconds
        self.context = LambdaContext(seconds)
        self.elapsed: float | None = None
        self._function = function
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()
        self._thread.start()

    def _run(self) -> None:
        self._function(self.job.event, self.context)
        self.elapsed = time.monotonic() - self._started

    def wait(self) -> float:
        """Seconds the handler took; infinity if it had not returned a second past the deadline."""
        self._thread.join(self.seconds + 1.0)
        if self.elapsed is None:
            return float("inf")
        FIGURES.add("checked", {"deadline_margin_ms": int((self.seconds - self.elapsed) * 1000)})
        return self.elapsed

    def finish(self) -> None:
        self._thread.join(30)


def test_a_step_that_never_answers_is_given_up_before_the_lambda_deadline(rig: Rig) -> None:
    function = Function(rig, reserve=1.0)
    with SilentServer() as server:
        delivery = Delivery(rig, function, hanging_gate(server.url), seconds=4.0)
        elapsed = delivery.wait()
        FIGURES.add("faults", {"step_hang": len(server.connections)})
    delivery.finish()
    job = delivery.job
    assert server.connections  # it was polled, and it hung
    assert elapsed < 4.0 and function.returned_late == []
    assert job.answer is not None and "continuationToken" in job.answer["params"]
    summary = job.answer["params"]["executionDetails"]["summary"]
    assert "no response" in summary


def test_a_hanging_step_fails_by_its_own_timeout_with_every_job_answered(rig: Rig) -> None:
    """The whole action: each tick waits out the hang within its budget, until the step's
    5-minute timeout fails the gate with a message naming the step."""
    function = Function(rig, reserve=1.0)
    with SilentServer() as server:
        result = rig.run(hanging_gate(server.url), function, lambda_timeout=3.0)
        FIGURES.add("faults", {"step_hang": len(server.connections)})
    assert result.status == "Failed" and result.failure_type == "JobFailed"
    assert (result.failure_message or "").startswith("step 'health' timed out after 5m")
    assert all(job.answer is not None for job in result.jobs)
    assert function.returned_late == [] and result.invocations == result.rounds


def test_an_invocation_about_to_time_out_answers_without_polling(rig: Rig) -> None:
    """Half a second left: less than the reserve, so nothing is polled; the job is answered."""
    function = Function(rig, reserve=1.0)
    with SilentServer() as server:
        delivery = Delivery(rig, function, hanging_gate(server.url), seconds=0.5)
        elapsed = delivery.wait()
        FIGURES.add("faults", {"lambda_near_timeout": 1})
        assert server.connections == []
    delivery.finish()
    job = delivery.job
    assert elapsed < 0.5 and function.returned_late == []
    assert job.answer is not None and "continuationToken" in job.answer["params"]


def test_a_step_that_answers_one_byte_at_a_time_is_given_up_before_the_deadline(
    rig: Rig,
) -> None:
    """Headers at once, then a byte every 0.2s: no single read times out. (The reserve kept
    for the write and the answer is 2s here: a first tick also links the run to its
    pipeline execution's action before it polls, and DynamoDB Local on a loaded 2-core
    machine can take a second for a write.)"""
    function = Function(rig, reserve=2.0)
    with SilentServer(trickle=0.2) as server:
        delivery = Delivery(rig, function, hanging_gate(server.url), seconds=4.0)
        elapsed = delivery.wait()
        FIGURES.add("faults", {"step_trickle": len(server.connections)})
    delivery.finish()
    assert server.connections
    assert elapsed < 4.0, f"the handler had not returned {elapsed:.1f}s after the deadline"
    assert delivery.job.answer is not None
