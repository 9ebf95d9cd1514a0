"""Where runs live: the DynamoDB table declared in template.yaml, through pynamodb
(`orchestrator.store.dynamodb`). The table's creation for tests and the local runner is
tooling, in `orchestrator.local.schema`."""
