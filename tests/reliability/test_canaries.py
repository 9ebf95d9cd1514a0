"""The secret canaries themselves: the scanner finds what it must, and the session feeds it.

(The session-wide check runs at the end of every test session: tests/conftest.py.)
"""

from __future__ import annotations

import io
import json
import logging
import secrets

import click
import typer
from click.testing import CliRunner
from typer.testing import CliRunner as TyperRunner

from orchestrator.local.emulator import CodePipelineEmulator, fake_credentials
from orchestrator.metrics import Metrics
from tests.reliability.canaries import SCANNER, Scanner


def test_the_scanner_finds_a_canary_wherever_it_is_written() -> None:
    scanner = Scanner()
    keys = fake_credentials()
    for value in keys.values():
        scanner.add(value, "job j-1")
    odd = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # '/' and all
    scanner.add(odd, "the fixture")
    texts = {
        "plain": f"key {keys['accessKeyId']} end",
        "json": json.dumps({"headers": {"X-Amz-Security-Token": keys["sessionToken"]}}),
        "glued": f"Credential={keys['accessKeyId']}/20240101/us-east-1/s3",
        "inside a longer run": f"xx{keys['secretAccessKey']}yy",
        "with slashes": f"'{odd}'",
        "clean": "nothing to see: " + secrets.token_urlsafe(64),
    }
    for where, text in texts.items():
        scanner.scan(text, where)
    assert sorted(leak.where for leak in scanner.leaks) == sorted(set(texts) - {"clean"})
    assert all(leak.origin in ("job j-1", "the fixture") for leak in scanner.leaks)
    for leak in scanner.leaks:  # a report names the place, never the value
        assert not any(value in leak.hint for value in (*keys.values(), odd))


def test_weak_values_are_not_canaries_and_late_canaries_are_found_in_kept_texts() -> None:
    scanner = Scanner(retained_chars=1000)
    scanner.add("short", "x")
    scanner.add("0" * 40, "x")  # too few distinct characters: would match by chance
    assert scanner.canaries == 0
    late = "LATE" + secrets.token_hex(16)
    scanner.scan(f"before its job existed: {late}", "early text")
    scanner.scan("x" * 2000, "a long text that pushes older ones out of the budget")
    scanner.scan(f"again: {late}", "kept text")
    scanner.add(late, "a job registered late")
    scanner.rescan()
    assert [leak.where for leak in scanner.leaks] == ["kept text"]


def test_the_session_registers_every_emulator_job_and_scans_its_sources() -> None:
    texts = SCANNER.texts
    with CodePipelineEmulator() as emulator:
        job = emulator.create_job({"FunctionName": "f"})
        keys = job.event["CodePipeline.job"]["data"]["artifactCredentials"]
        assert all(SCANNER.knows(value) for value in keys.values())
        logging.getLogger("orchestrator.probe").debug("a debug line is scanned too")
        Metrics("Orchestrator", io.StringIO()).emit({"Ticks": 1})
        emulator.handle("/", {}, b"{}")
    result = CliRunner().invoke(echo, [])
    assert result.output == "hello\n"
    typer_app = typer.Typer()
    typer_app.command()(hello)
    assert TyperRunner().invoke(typer_app, []).output == "hello\n"
    assert SCANNER.texts >= texts + 5


def test_every_role_assumed_through_moto_is_a_canary(moto_endpoint: str, aws_env: None) -> None:
    """The credentials a cross-account step acts with (orchestrator.assume) are secrets too:
    their secret key and session token are registered before anyone reads the response."""
    import boto3

    sts = boto3.client("sts", endpoint_url=moto_endpoint)
    role = "arn:aws:iam::222233334444:role/canary"
    found = sts.assume_role(RoleArn=role, RoleSessionName="canary")["Credentials"]
    assert SCANNER.knows(found["SecretAccessKey"]) and SCANNER.knows(found["SessionToken"])
    assert not SCANNER.knows(found["AccessKeyId"])  # in every Authorization header, as on AWS


def hello() -> None:
    click.echo("hello")


echo = click.command()(hello)
