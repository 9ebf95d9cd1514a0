"""Persistence of gate runs: the DynamoDB table declared in template.yaml, through pynamodb."""
