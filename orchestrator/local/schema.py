"""The runs table as declared in template.yaml, turned into CreateTable parameters (tooling:
the Lambda package carries neither this module nor template.yaml).

Tests and the local runner create their tables from here, so a key or index added to the
template is what the code runs against, and one missing from the template fails locally.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

TABLE_RESOURCE = "RunsTable"
_CREATE_KEYS = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")


def template_path() -> Path:
    """template.yaml: beside this module when installed (the wheel carries it there), at the
    repository root otherwise."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "template.yaml", here.parents[1] / "template.yaml"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("template.yaml not found beside orchestrator/local/ or the repository")


def load_cfn_yaml(text: str) -> Any:
    """YAML with CloudFormation's short tags (!Ref, !Sub, !GetAtt...) in their long forms."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            assert isinstance(node, yaml.MappingNode)
            value = loader.construct_mapping(node, deep=True)
        if suffix in ("Ref", "Condition"):
            return {suffix: value}
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {f"Fn::{suffix}": value}

    _Loader.add_multi_constructor("!", _tag)
    return yaml.load(text, Loader=_Loader)


@cache
def load_template(path: Path | None = None) -> dict[str, Any]:
    """The template as plain data."""
    data = load_cfn_yaml((path or template_path()).read_text())
    assert isinstance(data, dict)
    return data


def table_declaration() -> dict[str, Any]:
    """The RunsTable resource's Properties."""
    properties = load_template()["Resources"][TABLE_RESOURCE]["Properties"]
    assert isinstance(properties, dict)
    return properties


def create_table_params(table_name: str) -> dict[str, Any]:
    """CreateTable parameters for a local copy of the runs table."""
    declared = table_declaration()
    params = {key: declared[key] for key in _CREATE_KEYS if key in declared}
    params["TableName"] = table_name
    return params


def ttl_attribute() -> str:
    spec = table_declaration()["TimeToLiveSpecification"]
    return str(spec["AttributeName"])


def create_table(client: Any, table_name: str) -> None:
    """Create the table (and its TTL) with a boto3 DynamoDB client; idempotent."""
    try:
        client.create_table(**create_table_params(table_name))
    except client.exceptions.ResourceInUseException:
        return
    client.get_waiter("table_exists").wait(TableName=table_name)
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute()},
    )
