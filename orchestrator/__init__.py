"""orchestrator: long-running CodePipeline Lambda invoke actions (gates).

The Lambda entry point is `orchestrator.handler.lambda_handler`. The pure engine is
`orchestrator.engine`; the definition language is `orchestrator.definition`.
"""

__version__ = "0.1.0"
