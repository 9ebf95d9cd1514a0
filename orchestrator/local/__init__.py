"""Tooling, not in the Lambda package: local stand-ins for AWS and the local runner.

`wire` checks parameters against botocore's CodePipeline service model, `emulator` serves
the JSON 1.1 job APIs over HTTP so a real boto3 client can talk to it, and `driver` plays
CodePipeline's part of a Lambda invoke action (invoke, wait for a result, re-invoke on a
continuation token, time out) around an in-process handler. `runner` rehearses gates and
pipelines (`pipeline`: CodePipeline's declaration shapes) for the CLI; `dynamodb_local`
installs and starts DynamoDB Local; `schema` creates the runs table from template.yaml;
`gatefiles` checks gate files and serves local artifacts.
"""
