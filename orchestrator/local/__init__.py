"""Local stand-ins for AWS: a wire-faithful CodePipeline job emulator and the job loop.

`wire` checks parameters against botocore's CodePipeline service model, `emulator` serves
the JSON 1.1 job APIs over HTTP so a real boto3 client can talk to it, and `driver` plays
CodePipeline's part of a Lambda invoke action (invoke, wait for a result, re-invoke on a
continuation token, time out) around an in-process handler.
"""
