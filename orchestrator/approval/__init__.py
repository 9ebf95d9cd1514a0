"""Approvals: deciding `approval` steps from outside the tick (docs/APPROVALS.md).

    principals  IAM principal ARNs and the approver patterns they match
    decide      the checks the CLI and the endpoint share; counting decisions (`tally`)
    links       signed one-time links (HMAC-SHA256, key from Secrets Manager)
    notify      the "approval needed" message: SNS text and a Slack-compatible webhook body
    runtime     what the step needs at notify time besides its claim (endpoint URL, key ARN)
    pages       the endpoint's HTML, everything escaped
    web         the endpoint's Lambda handler, `orchestrator.approval.web.handler`

The step kind itself is `orchestrator.steps.approval`. Nothing here is imported by a tick
unless a step notifies.
"""
