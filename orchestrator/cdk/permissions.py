"""Every IAM statement of the orchestrator's two roles, as data: the one source of both stacks.

    permissions.py ──► scripts/template.py (`make template`) ──► template.yaml's two Policies
           │                                                     (between BEGIN/END markers)
           └────────► orchestrator.cdk.Orchestrator ──────────► the construct's PolicyStatements

A statement names its actions, its resources (symbolically: the stack's own table, queue,
topic, signing key or log group, this account's pipelines, "*", or the ARNs an option gives),
an optional `kms:ViaService` condition, the option that makes it exist, and the comment that
says why. tests/package/test_permissions.py fails when template.yaml is not what this
module generates; tests/package/test_cdk_orchestrator.py synthesizes the construct and
template.yaml for the same option values and finds the same statements in both.

Pure data and text (the standard library only): the generator runs without node, and the
Lambda package carries none of orchestrator/cdk.
"""

from __future__ import annotations

import enum
import re
import textwrap
from dataclasses import dataclass

# region Options: what a parameter (SAM) or keyword argument (CDK) turns on


class Kind(enum.Enum):
    """How an option is given."""

    FLAG = "flag"  # SAM: "true"/"false"; CDK: a bool
    ARN = "arn"  # SAM: a String, "" for none; CDK: str | None
    ARN_LIST = "arn list"  # SAM: a CommaDelimitedList, "" for none; CDK: a sequence of str


@dataclass(frozen=True)
class Option:
    """One template parameter and the construct keyword that mirrors it."""

    parameter: str
    """template.yaml's parameter."""
    prop: str
    """orchestrator.cdk.Orchestrator's keyword argument."""
    kind: Kind
    condition: str
    """template.yaml's condition that is true when the option is set."""
    pattern: str = ""
    """What one ARN of it looks like (a regular expression, matched whole)."""
    shape: str = ""
    """The same, for people: it goes into the error for a value that does not match."""

    def matches(self, value: str) -> bool:
        return re.fullmatch(self.pattern, value) is not None


_PARTITION = "arn:aws[a-z-]*"
_REGION_ACCOUNT = "[a-z0-9-]+:[0-9]{12}"
KMS_KEY = f"{_PARTITION}:kms:{_REGION_ACCOUNT}:key/[a-zA-Z0-9-]+"
SECRET = f"{_PARTITION}:secretsmanager:{_REGION_ACCOUNT}:secret:[A-Za-z0-9/_+=.@-]+"
TOPIC = f"{_PARTITION}:sns:{_REGION_ACCOUNT}:[A-Za-z0-9_-]+"
_TOPIC_SHAPE = "arn:aws:sns:REGION:ACCOUNT:NAME"

READ_METRICS = Option("ReadMetrics", "read_metrics", Kind.FLAG, "HasMetrics")
STATE_MACHINES = Option(
    "StateMachineArns",
    "state_machine_arns",
    Kind.ARN_LIST,
    "HasStateMachines",
    f"{_PARTITION}:states:{_REGION_ACCOUNT}:stateMachine:[A-Za-z0-9_.-]+",
    "arn:aws:states:REGION:ACCOUNT:stateMachine:NAME",
)
FUNCTIONS = Option(
    "InvokableFunctionArns",
    "invokable_function_arns",
    Kind.ARN_LIST,
    "HasInvokableFunctions",
    f"{_PARTITION}:lambda:{_REGION_ACCOUNT}:function:[A-Za-z0-9_-]+(:[A-Za-z0-9_$*-]+)?",
    "arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER or :*]",
)
SECRETS = Option(
    "SecretArns",
    "secret_arns",
    Kind.ARN_LIST,
    "HasSecrets",
    f"{_PARTITION}:secretsmanager:{_REGION_ACCOUNT}:secret:[A-Za-z0-9/_+=.@?*-]+",
    "arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-SUFFIX (or NAME-??????)",
)
PARAMETERS = Option(
    "SsmParameterArns",
    "ssm_parameter_arns",
    Kind.ARN_LIST,
    "HasSsmParameters",
    f"{_PARTITION}:ssm:{_REGION_ACCOUNT}:parameter/[A-Za-z0-9_.*/-]+",
    "arn:aws:ssm:REGION:ACCOUNT:parameter/NAME",
)
CALENDARS = Option(
    "ChangeCalendarArns",
    "change_calendar_arns",
    Kind.ARN_LIST,
    "HasChangeCalendars",
    f"{_PARTITION}:ssm:{_REGION_ACCOUNT}:document/[A-Za-z0-9_.-]+",
    "arn:aws:ssm:REGION:ACCOUNT:document/NAME",
)
GATE_BUCKETS = Option(
    "GateBucketArns",
    "gate_bucket_arns",
    Kind.ARN_LIST,
    "HasGateBuckets",
    f"{_PARTITION}:s3:::[a-z0-9][a-z0-9.-]{{1,61}}[a-z0-9]",
    "arn:aws:s3:::BUCKET (a bucket, not an object)",
)
TOPICS = Option(
    "NotificationTopicArns",
    "notification_topic_arns",
    Kind.ARN_LIST,
    "HasNotificationTopics",
    f"{TOPIC}(\\.fifo)?",
    _TOPIC_SHAPE,
)
ROLES = Option(
    "AssumableRoleArns",
    "assumable_role_arns",
    Kind.ARN_LIST,
    "HasAssumableRoles",
    f"{_PARTITION}:iam::[0-9]{{12}}:role/[A-Za-z0-9+=,.@_/-]+",
    "arn:aws:iam::ACCOUNT:role/NAME",
)
_KEY_SHAPE = "arn:aws:kms:REGION:ACCOUNT:key/KEY-ID"
TABLE_KEY = Option(
    "TableKmsKeyArn", "table_kms_key_arn", Kind.ARN, "HasTableKmsKey", KMS_KEY, _KEY_SHAPE
)
SECRET_KEY = Option(
    "SecretKmsKeyArn", "secret_kms_key_arn", Kind.ARN, "HasSecretKmsKey", KMS_KEY, _KEY_SHAPE
)
QUEUE_KEY = Option(
    "QueueKmsKeyArn", "queue_kms_key_arn", Kind.ARN, "HasQueueKmsKey", KMS_KEY, _KEY_SHAPE
)
LOG_KEY = Option("LogKmsKeyArn", "log_kms_key_arn", Kind.ARN, "HasLogKmsKey", KMS_KEY, _KEY_SHAPE)
ALARM_TOPIC = Option(
    "AlarmTopicArn", "alarm_topic_arn", Kind.ARN, "HasAlarmTopic", TOPIC, _TOPIC_SHAPE
)
_SECRET_SHAPE = "arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-SUFFIX (the full ARN)"
SLACK_SECRET = Option(
    "SlackSigningSecretArn",
    "slack_signing_secret_arn",
    Kind.ARN,
    "HasSlackSigningSecret",
    SECRET,
    _SECRET_SHAPE,
)
OIDC_SECRET = Option(
    "OidcClientSecretArn",
    "oidc_client_secret_arn",
    Kind.ARN,
    "HasOidcClientSecret",
    SECRET,
    _SECRET_SHAPE,
)

OPTIONS = (
    READ_METRICS,
    STATE_MACHINES,
    FUNCTIONS,
    SECRETS,
    PARAMETERS,
    CALENDARS,
    GATE_BUCKETS,
    TOPICS,
    ROLES,
    TABLE_KEY,
    SECRET_KEY,
    QUEUE_KEY,
    LOG_KEY,
    ALARM_TOPIC,
    SLACK_SECRET,
    OIDC_SECRET,
)
"""Every option that is either unset or an ARN (or a flag): those the statements depend on,
and the two other optional ARNs (the log group's key, the alarms' topic)."""

# endregion
# region Resources


class Own(enum.Enum):
    """A resource of the stack itself, or a fixed pattern; the value names it in template.yaml."""

    TABLE = "RunsTable"
    TABLE_INDEXES = "RunsTable/index/*"
    LOG_GROUP = "the role's own log group"
    FAILURE_QUEUE = "FailureQueue"
    NOTIFICATION_TOPIC = "NotificationTopic"
    SIGNING_KEY = "ApprovalSigningKey"
    PIPELINES = "this account's pipelines in this region"
    EVERYTHING = "*"


class Derive(enum.Enum):
    """What a statement grants on each ARN an option gives."""

    AS_GIVEN = "as given"
    EXECUTIONS = "the executions of a state machine"  # ...:stateMachine:N -> ...:execution:N:*
    OBJECTS = "the objects of a bucket"  # arn:aws:s3:::B -> arn:aws:s3:::B/*


def via_service(statement: Statement, region: str) -> str:
    """The kms:ViaService value of a statement's condition, in `region`."""
    return f"{statement.via_service}.{region}.amazonaws.com"


def derive(how: Derive, arn: str) -> str:
    """The resource ARN a statement names for one given ARN."""
    if how is Derive.EXECUTIONS:
        return arn.replace(":stateMachine:", ":execution:") + ":*"
    if how is Derive.OBJECTS:
        return f"{arn}/*"
    return arn


@dataclass(frozen=True)
class Given:
    """The ARNs an option gives (each derived as `how` says)."""

    option: Option
    how: Derive = Derive.AS_GIVEN


Resource = Own | Given

PIPELINES_PATTERN = "arn:{partition}:codepipeline:{region}:{account}:*"
"""Own.PIPELINES with the partition, region and account filled in by each side."""

# endregion
# region Statements


@dataclass(frozen=True)
class Statement:
    """One Allow statement of a role."""

    sid: str
    actions: tuple[str, ...]
    resources: tuple[Resource, ...]
    comment: str = ""
    """Why it is there, and why so wide or so narrow (a comment above it in template.yaml)."""
    when: Option | None = None
    """The option that makes it exist; None: always there."""
    via_service: str = ""
    """A kms:ViaService condition: the key is usable only through this service (its prefix)."""
    heading: str = ""
    """A comment that opens a group of statements (above this one, outside its Fn::If)."""

    def __post_init__(self) -> None:
        # A given list is a whole Resource value in template.yaml (a !Ref to a list): alone.
        given = [r for r in self.resources if isinstance(r, Given)]
        if given and (len(self.resources) > 1 or given[0].option != self.when):
            raise ValueError(f"{self.sid}: given ARNs are its only resource, from its option")


@dataclass(frozen=True)
class Role:
    """A role's single inline policy."""

    logical_id: str
    """Its logical id in template.yaml."""
    policy_name: str
    log_group: str
    """The logical id of its function's log group in template.yaml (Own.LOG_GROUP)."""
    statements: tuple[Statement, ...]


_KEY_HEADING = "Customer-managed keys, when given: used only through the service they encrypt."
USE_TABLE_KEY = Statement(
    "UseTableKey",
    ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"),
    (Given(TABLE_KEY),),
    when=TABLE_KEY,
    via_service="dynamodb",
    heading=_KEY_HEADING,
)
USE_SECRET_KEY = Statement(
    "UseSecretKey",
    ("kms:Decrypt",),
    (Given(SECRET_KEY),),
    when=SECRET_KEY,
    via_service="secretsmanager",
)

FUNCTION_ROLE = Role(
    "OrchestratorRole",
    "orchestrator",
    "OrchestratorLogGroup",
    (
        Statement(
            "AnswerCodePipelineJobs",
            (
                "codepipeline:PutJobSuccessResult",
                "codepipeline:PutJobFailureResult",
                "codepipeline:GetJobDetails",
            ),
            (Own.EVERYTHING,),
            'The job APIs accept only "*": CodePipeline refuses a pipeline ARN here.',
        ),
        Statement(
            "ReadPipelineExecutions",
            ("codepipeline:GetPipelineExecution",),
            (Own.PIPELINES,),
            "Who started an execution, for approvals with exclude_initiator: this account's"
            " pipelines in this region only (the action's own pipeline is one of them).",
        ),
        Statement(
            "RunsTable",
            ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"),
            (Own.TABLE, Own.TABLE_INDEXES),
            "Read and write runs; no Scan, no DeleteItem (the TTL removes old runs).",
        ),
        Statement(
            "OwnLogGroup",
            ("logs:CreateLogStream", "logs:PutLogEvents"),
            (Own.LOG_GROUP,),
            "The function's own log group only (the ARN ends in :*, its log streams).",
        ),
        Statement(
            "OnFailureDestination",
            ("sqs:SendMessage",),
            (Own.FAILURE_QUEUE,),
            "Lambda's on-failure destination sends with this role.",
        ),
        Statement(
            "PublishNotifications",
            ("sns:Publish",),
            (Own.NOTIFICATION_TOPIC,),
            "Approval notifications on the stack's own topic (encrypted with alias/aws/sns,"
            " whose key policy lets this account's principals use it through SNS).",
        ),
        Statement(
            "ReadApprovalSigningKey",
            ("secretsmanager:GetSecretValue",),
            (Own.SIGNING_KEY,),
            "The approval link signing key, to mint links (this one secret only).",
        ),
        Statement(
            "ReadAlarms",
            ("cloudwatch:DescribeAlarms",),
            (Own.EVERYTHING,),
            'Alarm-watching steps. "*" because AWS documents it: the DescribeAlarms API'
            " reference says composite alarms are returned only to a cloudwatch:DescribeAlarms"
            ' permission scoped to "*" (a narrower scope silently hides them).',
        ),
        Statement(
            "ReadMetrics",
            ("cloudwatch:GetMetricData",),
            (Own.EVERYTHING,),
            'metrics steps. "*" because GetMetricData has no resource-level permissions (the'
            " Service Authorization Reference lists no resource type): a narrower Resource"
            " would deny every call.",
            when=READ_METRICS,
            heading="The statements below exist only when their parameter asks for them.",
        ),
        Statement("PublishToOtherTopics", ("sns:Publish",), (Given(TOPICS),), when=TOPICS),
        Statement(
            "StartStateMachines",
            ("states:StartExecution",),
            (Given(STATE_MACHINES),),
            when=STATE_MACHINES,
        ),
        Statement(
            "DescribeStateMachineExecutions",
            ("states:DescribeExecution",),
            (Given(STATE_MACHINES, Derive.EXECUTIONS),),
            "Executions of those state machines only: each arn:...:stateMachine:NAME becomes"
            " arn:...:execution:NAME:* (CloudFormation has no map function, so: join, split,"
            " join, split).",
            when=STATE_MACHINES,
        ),
        Statement(
            "InvokeFunctions",
            ("lambda:InvokeFunction",),
            (Given(FUNCTIONS),),
            when=FUNCTIONS,
        ),
        Statement(
            "ReadSecrets",
            ("secretsmanager:GetSecretValue",),
            (Given(SECRETS),),
            when=SECRETS,
        ),
        Statement("ReadParameters", ("ssm:GetParameter",), (Given(PARAMETERS),), when=PARAMETERS),
        Statement(
            "ReadChangeCalendars",
            ("ssm:GetCalendarState",),
            (Given(CALENDARS),),
            when=CALENDARS,
        ),
        Statement(
            "ReadGateDefinitions",
            ("s3:GetObject", "s3:GetObjectVersion"),
            (Given(GATE_BUCKETS, Derive.OBJECTS),),
            "Gate definitions referenced as s3://bucket/key[?versionId=...]: the objects of"
            " those buckets only, never the bucket itself (no listing). Each"
            " arn:aws:s3:::BUCKET becomes arn:aws:s3:::BUCKET/* (join, split). A definition in"
            " an input artifact needs nothing here: it is read with the job's own artifact"
            " credentials.",
            when=GATE_BUCKETS,
        ),
        Statement(
            "AssumeTargetRoles",
            ("sts:AssumeRole",),
            (Given(ROLES),),
            "Steps with role_arn act as these roles (their trust policies must name this role,"
            " with an sts:ExternalId condition: examples/target-account-role.yaml).",
            when=ROLES,
        ),
        USE_TABLE_KEY,
        USE_SECRET_KEY,
        Statement(
            "UseQueueKey",
            ("kms:Decrypt", "kms:GenerateDataKey"),
            (Given(QUEUE_KEY),),
            when=QUEUE_KEY,
            via_service="sqs",
        ),
    ),
)
"""The gate function's role (OrchestratorRole)."""

APPROVAL_ROLE = Role(
    "ApprovalRole",
    "approval-endpoint",
    "ApprovalLogGroup",
    (
        Statement(
            "RecordDecisions",
            ("dynamodb:GetItem", "dynamodb:UpdateItem"),
            (Own.TABLE,),
            "Read a run; record one decision (a conditional UpdateItem). No Put, no Query.",
        ),
        Statement("ReadSigningKey", ("secretsmanager:GetSecretValue",), (Own.SIGNING_KEY,)),
        Statement("OwnLogGroup", ("logs:CreateLogStream", "logs:PutLogEvents"), (Own.LOG_GROUP,)),
        Statement(
            "ReadSlackSigningSecret",
            ("secretsmanager:GetSecretValue",),
            (Given(SLACK_SECRET),),
            "The Slack app's signing secret, to verify its buttons (this one secret only).",
            when=SLACK_SECRET,
        ),
        Statement(
            "ReadOidcClientSecret",
            ("secretsmanager:GetSecretValue",),
            (Given(OIDC_SECRET),),
            "The sign-in client's secret, for the token endpoint (this one secret only).",
            when=OIDC_SECRET,
        ),
        USE_TABLE_KEY,
        USE_SECRET_KEY,
    ),
)
"""The approval endpoint's role (ApprovalRole)."""

ALL_ROLES = (FUNCTION_ROLE, APPROVAL_ROLE)

# endregion
# region template.yaml: the generated blocks

SOURCE = "orchestrator/cdk/permissions.py"
BEGIN = "# BEGIN {role} statements, generated from " + SOURCE + ": `make template`"
END = "# END {role} statements"
_WIDTH = 96

_OWN_YAML = {
    Own.TABLE: "!GetAtt RunsTable.Arn",
    Own.TABLE_INDEXES: "!Sub ${RunsTable.Arn}/index/*",
    Own.FAILURE_QUEUE: "!GetAtt FailureQueue.Arn",
    Own.NOTIFICATION_TOPIC: "!Ref NotificationTopic",
    Own.SIGNING_KEY: "!Ref ApprovalSigningKey",
    Own.PIPELINES: "!Sub "
    + PIPELINES_PATTERN.format(
        partition="${AWS::Partition}", region="${AWS::Region}", account="${AWS::AccountId}"
    ),
    Own.EVERYTHING: '"*"',
}


def _comment(text: str, pad: str) -> list[str]:
    if not text:
        return []
    return [f"{pad}# {line}" for line in textwrap.wrap(text, _WIDTH - len(pad) - 2)]


def _own_yaml(role: Role, resource: Own) -> str:
    if resource is Own.LOG_GROUP:
        return f"!GetAtt {role.log_group}.Arn"
    return _OWN_YAML[resource]


def _resource_yaml(role: Role, resources: tuple[Resource, ...], pad: str) -> list[str]:
    """`Resource: ...` (with the lines under it) at indentation `pad`."""
    if len(resources) > 1:  # the stack's own resources (a given list is alone: __post_init__)
        items = [f"{pad}  - {_own_yaml(role, r)}" for r in resources if isinstance(r, Own)]
        return [f"{pad}Resource:", *items]
    (resource,) = resources
    if isinstance(resource, Own):
        return [f"{pad}Resource: {_own_yaml(role, resource)}"]
    ref = f"!Ref {resource.option.parameter}"
    if resource.how is Derive.EXECUTIONS:
        # derive(EXECUTIONS) without a map function: ARN:*|ARN:*, split at :stateMachine:,
        # joined with :execution:, split at |.
        return [
            f"{pad}Resource: !Split",
            f'{pad}  - "|"',
            f"{pad}  - !Join",
            f'{pad}    - ":execution:"',
            f"{pad}    - !Split",
            f'{pad}      - ":stateMachine:"',
            f'{pad}      - !Join ["", [!Join [":*|", {ref}], ":*"]]',
        ]
    if resource.how is Derive.OBJECTS:
        return [f'{pad}Resource: !Split ["|", !Join ["", [!Join ["/*|", {ref}], "/*"]]]']
    return [f"{pad}Resource: {ref}"]


def _statement_yaml(role: Role, statement: Statement, pad: str) -> list[str]:
    """The statement as a list item at indentation `pad` (its comment above it)."""
    lines = _comment(statement.comment, pad)
    lines.append(f"{pad}- Sid: {statement.sid}")
    body = f"{pad}  "
    lines.append(f"{body}Effect: Allow")
    if len(statement.actions) == 1:
        lines.append(f"{body}Action: {statement.actions[0]}")
    else:
        lines += [f"{body}Action:", *(f"{body}  - {action}" for action in statement.actions)]
    lines += _resource_yaml(role, statement.resources, body)
    if statement.via_service:
        lines += [
            f"{body}Condition:",
            f"{body}  StringEquals:",
            f"{body}    kms:ViaService: !Sub {via_service(statement, '${AWS::Region}')}",
        ]
    return lines


def statements_yaml(role: Role, pad: str) -> list[str]:
    """The role's Statement list, each optional statement in an Fn::If with AWS::NoValue."""
    lines: list[str] = []
    for statement in role.statements:
        lines += _comment(statement.heading, pad)
        if statement.when is None:
            lines += _statement_yaml(role, statement, pad)
            continue
        lines += [f"{pad}- !If", f"{pad}  - {statement.when.condition}"]
        lines += _statement_yaml(role, statement, f"{pad}  ")
        lines.append(f"{pad}  - !Ref AWS::NoValue")
    return lines


def generate(template: str) -> str:
    """template.yaml with each role's statements between its markers written anew."""
    for role in ALL_ROLES:
        begin, end = BEGIN.format(role=role.logical_id), END.format(role=role.logical_id)
        found = re.search(
            rf"^( *){re.escape(begin)}\n.*?^ *{re.escape(end)}\n", template, re.M | re.S
        )
        if found is None:
            raise ValueError(f"template.yaml: no '{begin}' ... '{end}' block")
        pad = found.group(1)
        block = [f"{pad}{begin}", *statements_yaml(role, pad), f"{pad}{end}"]
        template = template[: found.start()] + "\n".join(block) + "\n" + template[found.end() :]
    return template


# endregion
