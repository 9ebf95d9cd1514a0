"""Benchmarks of the orchestrator as ratios against a floor measured in the same run.

`python -m bench.run` (or `make bench`) measures, against DynamoDB Local and the CodePipeline
emulator on loopback: calls per tick counted on the wire, what a gate referenced from a file
costs per tick against an inline one (calls, bytes, capacity units), the handler's per-tick
overhead against raw boto3 making the same calls, cold start against importing the libraries
alone, latency as the number of live runs grows, and the wall time of a 24-hour rehearsal.
See docs/BENCHMARKS.md for the method.
"""
