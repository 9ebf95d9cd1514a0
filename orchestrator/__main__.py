"""`python -m orchestrator` is the CLI."""

from orchestrator.cli import main

main()
