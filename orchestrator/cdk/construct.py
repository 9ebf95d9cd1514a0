"""The orchestrator as a CDK construct: the stack template.yaml deploys, in a CDK app.

    from orchestrator.cdk import Orchestrator, gate_action

    orchestrator = Orchestrator(
        stack,
        "Orchestrator",
        state_machine_arns=["arn:aws:states:eu-west-1:111122223333:stateMachine:smoke"],
        table_kms_key_arn=key.key_arn,                  # optional, like every keyword
    )
    gate = gate_action(action_name="Gate", function=orchestrator.function, ...)

Each keyword mirrors a template.yaml parameter (`StateMachineArns` is `state_machine_arns`, a
list; `ReadMetrics` is `read_metrics`, a bool; an optional ARN is a str or None), with the
same defaults. The resources are the template's: the runs table (its keys and indexes read
from template.yaml's declaration, as local tables are), the two functions and their log
groups, the failure queue and the on-failure destination, the notification topic, the
approval signing key, the approval endpoint's function URL and the four alarms. The two
roles' statements come from orchestrator/cdk/permissions.py, the source template.yaml's are
generated from, and a statement exists only when its keyword asks for it, as in the template.
The roles take no other statement: the functions get them `without_policy_updates()`, so
CDK's own grants (the on-failure destination's, for one) add nothing the template lacks.

A bad keyword raises OrchestratorError naming the construct, the keyword and the reason
(an ARN of the wrong kind, a retention CloudWatch Logs does not offer, ...); values that are
tokens (another construct's attribute) are taken as they are.

The functions' code is `code`, by default the zip `make build` writes
(build/orchestrator-lambda.zip in a checkout of this repository).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from orchestrator.cdk import permissions
from orchestrator.cdk.permissions import Derive, Kind, Own
from orchestrator.local.schema import table_declaration

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

DEFAULT_PACKAGE = Path(__file__).resolve().parents[2] / "build" / "orchestrator-lambda.zip"
"""The Lambda package `make build` (scripts/build_lambda.py) writes."""

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}
"""The retentions CloudWatch Logs offers (template.yaml's LogRetentionDays AllowedValues)."""
MAX_CONCURRENCY = 99_999  # template.yaml: ^([1-9][0-9]{0,4})?$
METRICS_NAMESPACE = r"[A-Za-z0-9._/#:-]{1,255}"
OIDC_ISSUER = r"https://[^\s#?]+"

_ATTRIBUTE_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


_NOT_PARAMETERS = frozenset({"self", "scope", "construct_id", "code", "__class__"})


class OrchestratorError(ValueError):
    """Keywords the orchestrator cannot be deployed with: every problem, each naming its
    keyword."""

    def __init__(self, construct_id: str, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        lines = "\n".join(f"  {line}" for line in errors)
        super().__init__(f"Orchestrator {construct_id!r}: invalid properties\n{lines}")


def _unresolved(value: object) -> bool:
    return cdk.Token.is_unresolved(value)


def _option_problems(option: permissions.Option, value: object) -> list[str]:
    """What is wrong with one option's value (None or empty: unset)."""
    name = option.prop
    if option.kind is Kind.FLAG:
        return [] if isinstance(value, bool) else [f"{name}: {value!r} is not a bool"]
    if option.kind is Kind.ARN:
        if value is None or value == "" or _unresolved(value):
            return []
        if not isinstance(value, str) or not option.matches(value):
            return [f"{name}: {value!r} is not an ARN like {option.shape}"]
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        return [f"{name}: a list of ARNs, not {type(value).__name__} {value!r}"]
    return [
        f"{name}[{index}]: {item!r} is not an ARN like {option.shape}"
        for index, item in enumerate(value)
        if not _unresolved(item) and not (isinstance(item, str) and option.matches(item))
    ]


def _number_problem(name: str, value: object, high: int | None = None) -> list[str]:
    """A whole number from 1 (to `high`)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return [f"{name}: {value!r} is not a whole number from 1"]
    if high is not None and value > high:
        return [f"{name}: {value!r} is more than {high:,}"]
    return []


def check_properties(construct_id: str, values: Mapping[str, Any]) -> None:
    """Raise OrchestratorError naming every keyword whose value template.yaml would refuse."""
    problems = []
    for option in permissions.OPTIONS:
        problems += _option_problems(option, values[option.prop])
    problems += _number_problem("run_retention_days", values["run_retention_days"])
    for name in ("reserved_concurrency", "approval_reserved_concurrency"):
        if values[name] is not None:
            problems += _number_problem(name, values[name], MAX_CONCURRENCY)
    if values["log_retention_days"] not in LOG_RETENTION:
        problems.append(
            f"log_retention_days: {values['log_retention_days']!r} is not one CloudWatch Logs"
            f" offers ({', '.join(map(str, LOG_RETENTION))})"
        )
    if values["log_level"] not in LOG_LEVELS:
        problems.append(f"log_level: {values['log_level']!r} is not one of {', '.join(LOG_LEVELS)}")
    namespace = values["metrics_namespace"]
    if not (isinstance(namespace, str) and re.fullmatch(METRICS_NAMESPACE, namespace)):
        problems.append(f"metrics_namespace: {namespace!r} is not a CloudWatch namespace")
    issuer = values["oidc_issuer"]
    if issuer and not (isinstance(issuer, str) and re.fullmatch(OIDC_ISSUER, issuer)):
        problems.append(f"oidc_issuer: {issuer!r} is not an https URL")
    if not isinstance(values["table_deletion_protection"], bool):
        problems.append(
            f"table_deletion_protection: {values['table_deletion_protection']!r} is not a bool"
        )
    if problems:
        raise OrchestratorError(construct_id, problems)


class Orchestrator(Construct):
    """template.yaml's stack as a construct (see the module's docstring)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code | None = None,
        table_deletion_protection: bool = True,
        run_retention_days: int = 30,
        read_metrics: bool = False,
        table_kms_key_arn: str | None = None,
        secret_kms_key_arn: str | None = None,
        queue_kms_key_arn: str | None = None,
        state_machine_arns: Sequence[str] = (),
        invokable_function_arns: Sequence[str] = (),
        secret_arns: Sequence[str] = (),
        ssm_parameter_arns: Sequence[str] = (),
        change_calendar_arns: Sequence[str] = (),
        gate_bucket_arns: Sequence[str] = (),
        notification_topic_arns: Sequence[str] = (),
        assumable_role_arns: Sequence[str] = (),
        log_level: str = "INFO",
        log_retention_days: int = 90,
        log_kms_key_arn: str | None = None,
        metrics_namespace: str = "Orchestrator",
        alarm_topic_arn: str | None = None,
        reserved_concurrency: int | None = None,
        approval_reserved_concurrency: int | None = None,
        slack_signing_secret_arn: str | None = None,
        oidc_issuer: str | None = None,
        oidc_client_id: str | None = None,
        oidc_client_secret_arn: str | None = None,
    ) -> None:
        # The keywords as given (before anything else is a local): template.yaml's parameters.
        values = {k: v for k, v in locals().items() if k not in _NOT_PARAMETERS}
        check_properties(construct_id, values)
        if code is None and not DEFAULT_PACKAGE.is_file():
            raise OrchestratorError(
                construct_id,
                [
                    f"code: no Lambda package at {DEFAULT_PACKAGE}: run `make build`"
                    " (scripts/build_lambda.py), or pass code="
                ],
            )
        super().__init__(scope, construct_id)
        self._values = values
        code = code or lambda_.Code.from_asset(str(DEFAULT_PACKAGE))

        self.table = self._table()
        self.failure_queue = sqs.Queue(
            self,
            "FailureQueue",
            encryption=sqs.QueueEncryption.KMS
            if queue_kms_key_arn
            else sqs.QueueEncryption.SQS_MANAGED,
            encryption_master_key=self._key("QueueKey", queue_kms_key_arn),
            retention_period=cdk.Duration.days(14),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.notification_topic = sns.Topic(
            self, "NotificationTopic", display_name="Orchestrator approvals"
        )
        topic = self.notification_topic.node.default_child
        assert isinstance(topic, sns.CfnTopic)
        topic.kms_master_key_id = "alias/aws/sns"
        self.signing_key = secretsmanager.Secret(
            self,
            "ApprovalSigningKey",
            description="Signs approval links (HMAC-SHA256). Generated; rotate by putting a new value.",  # noqa: E501
            encryption_key=self._key("SecretKey", secret_kms_key_arn),
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.log_group = self._log_group("OrchestratorLogGroup")
        self.approval_log_group = self._log_group("ApprovalLogGroup")
        self.role = self._role(
            permissions.FUNCTION_ROLE,
            self.log_group,
            "The orchestrator function's execution role (least privilege).",
        )
        self.approval_role = self._role(
            permissions.APPROVAL_ROLE,
            self.approval_log_group,
            "The approval endpoint's execution role (least privilege).",
        )

        self.approval_function = self._function(
            "ApprovalFunction",
            code,
            "orchestrator.approval.web.handler",
            timeout=10,
            reserved_concurrency=approval_reserved_concurrency,
            role=self.approval_role,
            log_group=self.approval_log_group,
            environment={
                "ORCHESTRATOR_TABLE_NAME": self.table.table_name,
                "ORCHESTRATOR_LOG_LEVEL": log_level,
                "ORCHESTRATOR_APPROVAL_SECRET_ARN": self.signing_key.secret_arn,
                "ORCHESTRATOR_SLACK_SIGNING_SECRET_ARN": slack_signing_secret_arn or "",
                "ORCHESTRATOR_OIDC_ISSUER": oidc_issuer or "",
                "ORCHESTRATOR_OIDC_CLIENT_ID": oidc_client_id or "",
                "ORCHESTRATOR_OIDC_CLIENT_SECRET_ARN": oidc_client_secret_arn or "",
            },
        )
        # Public on purpose (people open links from mail and chat): every request is checked
        # against the link's signature, expiry, run, step and approvers (docs/APPROVALS.md).
        self.approval_url = self.approval_function.add_function_url(
            auth_type=lambda_.FunctionUrlAuthType.NONE
        )
        self.function = self._function(
            "OrchestratorFunction",
            code,
            "orchestrator.handler.lambda_handler",
            timeout=720,  # template.yaml says why
            reserved_concurrency=reserved_concurrency,
            role=self.role,
            log_group=self.log_group,
            environment={
                "ORCHESTRATOR_TABLE_NAME": self.table.table_name,
                "ORCHESTRATOR_TTL_DAYS": str(run_retention_days),
                "ORCHESTRATOR_LOG_LEVEL": log_level,
                "ORCHESTRATOR_METRICS_NAMESPACE": metrics_namespace,
                "ORCHESTRATOR_TOPIC_ARN": self.notification_topic.topic_arn,
                "ORCHESTRATOR_APPROVAL_URL": self.approval_url.url,
                "ORCHESTRATOR_APPROVAL_SECRET_ARN": self.signing_key.secret_arn,
            },
            on_failure=destinations.SqsDestination(self.failure_queue),
            retry_attempts=2,
            max_event_age=cdk.Duration.seconds(1200),
        )
        self.alarms = self._alarms(alarm_topic_arn, metrics_namespace)

    # region Resources

    def _function(
        self,
        construct_id: str,
        code: lambda_.Code,
        handler: str,
        *,
        timeout: int,
        reserved_concurrency: int | None,
        role: iam.Role,
        log_group: logs.LogGroup,
        environment: Mapping[str, str],
        **more: Any,
    ) -> lambda_.Function:
        """A function of the package as template.yaml declares both (Python 3.13 on arm64,
        256 MB, text logs into its own group), with its role's statements only."""
        return lambda_.Function(
            self,
            construct_id,
            code=code,
            handler=handler,
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=lambda_.Architecture.ARM_64,
            memory_size=256,
            timeout=cdk.Duration.seconds(timeout),
            reserved_concurrent_executions=reserved_concurrency,
            role=role.without_policy_updates(),
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.TEXT,
            environment=dict(environment),
            **more,
        )

    def _key(self, construct_id: str, arn: str | None) -> kms.IKey | None:
        return kms.Key.from_key_arn(self, construct_id, arn) if arn else None

    def _table(self) -> dynamodb.Table:
        """The runs table from template.yaml's own declaration: its keys and indexes cannot
        differ from the template's (nor from the local tables made from it)."""
        declared = table_declaration()
        if declared["BillingMode"] != "PAY_PER_REQUEST":
            raise ValueError(f"template.yaml: RunsTable BillingMode {declared['BillingMode']}")
        types = {a["AttributeName"]: a["AttributeType"] for a in declared["AttributeDefinitions"]}

        def key(schema: list[dict[str, str]], kind: str) -> dynamodb.Attribute | None:
            names = [k["AttributeName"] for k in schema if k["KeyType"] == kind]
            if not names:
                return None
            return dynamodb.Attribute(name=names[0], type=_ATTRIBUTE_TYPES[types[names[0]]])

        def hash_key(schema: list[dict[str, str]]) -> dynamodb.Attribute:
            found = key(schema, "HASH")
            if found is None:
                raise ValueError(f"template.yaml: RunsTable key schema {schema} has no HASH key")
            return found

        key_arn = self._values["table_kms_key_arn"]
        table = dynamodb.Table(
            self,
            "RunsTable",
            partition_key=hash_key(declared["KeySchema"]),
            sort_key=key(declared["KeySchema"], "RANGE"),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            deletion_protection=self._values["table_deletion_protection"],
            time_to_live_attribute=declared["TimeToLiveSpecification"]["AttributeName"],
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED
            if key_arn
            else dynamodb.TableEncryption.AWS_MANAGED,
            encryption_key=self._key("TableKey", key_arn),
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        for index in declared["GlobalSecondaryIndexes"]:
            projection = index["Projection"]
            table.add_global_secondary_index(
                index_name=index["IndexName"],
                partition_key=hash_key(index["KeySchema"]),
                sort_key=key(index["KeySchema"], "RANGE"),
                projection_type=getattr(dynamodb.ProjectionType, projection["ProjectionType"]),
                non_key_attributes=projection.get("NonKeyAttributes"),
            )
        return table

    def _log_group(self, construct_id: str) -> logs.LogGroup:
        """Kept when the stack goes, like the table: the runs' history is in it."""
        return logs.LogGroup(
            self,
            construct_id,
            retention=LOG_RETENTION[self._values["log_retention_days"]],
            encryption_key=self._key(f"{construct_id}Key", self._values["log_kms_key_arn"]),
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )

    # endregion
    # region Roles, from orchestrator/cdk/permissions.py

    def _role(
        self, role: permissions.Role, log_group: logs.ILogGroup, description: str
    ) -> iam.Role:
        statements = [
            self._statement(statement, log_group)
            for statement in role.statements
            if statement.when is None or self._is_set(statement.when)
        ]
        return iam.Role(
            self,
            role.logical_id,
            description=description,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            inline_policies={role.policy_name: iam.PolicyDocument(statements=statements)},
        )

    def _is_set(self, option: permissions.Option) -> bool:
        return bool(self._values[option.prop])

    def _statement(
        self, statement: permissions.Statement, log_group: logs.ILogGroup
    ) -> iam.PolicyStatement:
        own = {
            Own.TABLE: self.table.table_arn,
            Own.TABLE_INDEXES: f"{self.table.table_arn}/index/*",
            Own.LOG_GROUP: log_group.log_group_arn,
            Own.FAILURE_QUEUE: self.failure_queue.queue_arn,
            Own.NOTIFICATION_TOPIC: self.notification_topic.topic_arn,
            Own.SIGNING_KEY: self.signing_key.secret_arn,
            Own.PIPELINES: permissions.PIPELINES_PATTERN.format(
                partition=cdk.Aws.PARTITION, region=cdk.Aws.REGION, account=cdk.Aws.ACCOUNT_ID
            ),
            Own.EVERYTHING: "*",
        }
        resources: list[str] = []
        for resource in statement.resources:
            if isinstance(resource, Own):
                resources.append(own[resource])
                continue
            given = self._values[resource.option.prop]
            arns = [given] if isinstance(given, str) else list(given)
            resources += [_derive(resource.how, arn) for arn in arns]
        conditions = None
        if statement.via_service:
            region = permissions.via_service(statement, cdk.Aws.REGION)
            conditions = {"StringEquals": {"kms:ViaService": region}}
        return iam.PolicyStatement(
            sid=statement.sid,
            actions=list(statement.actions),
            resources=resources,
            conditions=conditions,
        )

    # endregion
    # region Alarms (missing data is not breaching: no invocations is not a fault)

    def _alarms(self, topic_arn: str | None, namespace: str) -> list[cloudwatch.Alarm]:
        stack = cdk.Aws.STACK_NAME  # as the template writes it, not the name known at synth
        function = {"FunctionName": self.function.function_name}
        lambda_metrics = ("AWS/Lambda", function, "Sum", 1)
        specs = (
            ("ErrorsAlarm", "errors", "Errors", *lambda_metrics,
             "The orchestrator function raised (only when CodePipeline could not be reached, or"
             " before settings could be read). Lambda retries; see FailureQueue."),
            ("ThrottlesAlarm", "throttles", "Throttles", *lambda_metrics,
             "The orchestrator function was throttled; jobs are delayed towards CodePipeline's"
             " 20-minute reply rule."),
            ("FailureQueueAlarm", "failed-invocations", "ApproximateNumberOfMessagesVisible",
             "AWS/SQS", {"QueueName": self.failure_queue.queue_name}, "Maximum", 5,
             "Invocations Lambda gave up on are waiting in FailureQueue: their jobs may have"
             " got no answer. Read the messages, then purge the queue."),
            ("AnswersNotSentAlarm", "answers-not-sent", "AnswersNotSent",
             namespace, {"Service": "orchestrator"}, "Sum", 1,
             "A CodePipeline job could not be answered: its action will time out. See the"
             " function's logs for the job id."),
        )  # fmt: skip
        topic = sns.Topic.from_topic_arn(self, "AlarmTopic", topic_arn) if topic_arn else None
        alarms = []
        for construct_id, name, metric, space, dimensions, statistic, minutes, about in specs:
            alarm = cloudwatch.Alarm(
                self,
                construct_id,
                alarm_name=f"{stack}-orchestrator-{name}",
                alarm_description=about,
                metric=cloudwatch.Metric(
                    namespace=space,
                    metric_name=metric,
                    dimensions_map=dimensions,
                    statistic=statistic,
                    period=cdk.Duration.minutes(minutes),
                ),
                evaluation_periods=1,
                threshold=0,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            if topic is not None:
                alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
                alarm.add_ok_action(cloudwatch_actions.SnsAction(topic))
            alarms.append(alarm)
        return alarms

    # endregion


def _derive(how: Derive, arn: str) -> str:
    """permissions.derive, also for an ARN known only at deploy time (a token)."""
    if _unresolved(arn) and how is Derive.EXECUTIONS:
        executions = cdk.Fn.join(":execution:", cdk.Fn.split(":stateMachine:", arn))
        return cdk.Fn.join("", [executions, ":*"])
    return permissions.derive(how, arn)
