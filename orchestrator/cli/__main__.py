"""`python -m orchestrator.cli` is the CLI."""

from orchestrator.cli.app import main

main()
