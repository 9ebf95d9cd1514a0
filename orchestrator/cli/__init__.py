"""The `orchestrator` command (the `cli` extra: typer, rich); not part of the Lambda package.

app.py       the commands
view.py      how `run` shows its progress (console or JSON lines)
__main__.py  `python -m orchestrator.cli`
"""

from orchestrator.cli.app import app, main

__all__ = ["app", "main"]
