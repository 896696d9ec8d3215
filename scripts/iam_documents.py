#!/usr/bin/env python3
"""Writes every policy document of the project as plain JSON, for the analysers (scripts/analyse.sh).

Usage: scripts/iam_documents.py OUTDIR

OUTDIR/<kind>/<name>.json, one folder per kind of document, because parliament's accepted
findings depend on the kind (.parliament/<kind>.yaml):
    identity  the policies of roles (inline, role policies, the SAM function's Policies) and
              policies/remediator-iam-policy.json
    trust     the trust policies of roles (AssumeRolePolicyDocument)
    resource  queue and topic policies
    key       KMS key policies
    iot       the AWS IoT policies of policies/
A document of template.yaml is named <Resource>.<Property>[.<PolicyName or index>], one of
member.yaml member.<Resource>..., their CloudFormation functions rendered with sample values
(account 123456789012, us-east-1, parameter defaults or SAMPLES; see Renderer) so that
parliament sees real ARNs; a Fn::ForEach of the AWS::LanguageExtensions transform is expanded
over its sample collection. A document of policies/
keeps its file name and is filled in as a user would deploy it: the capital placeholders of
the IAM policy (policies/README.md) replaced, and each IoT policy variable ${iot:...} given a
sample value (parliament knows only ${aws:...} variables and reads the colon inside ${iot:...}
as an ARN separator).
OUTDIR/policies.template.json
    A CloudFormation template holding each IAM document of policies/ as an
    AWS::IAM::ManagedPolicy, the only way checkov scans a bare IAM policy document (its IAM
    checks look at IAM resources of a template; its json framework has no built-in checks).

Prints the written document paths, one per line. Needs PyYAML (in .venv-lint).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": PARTITION,
    "AWS::StackName": "iot-audit-remediator",
    "AWS::URLSuffix": "amazonaws.com",
}
# The placeholders of policies/remediator-iam-policy.json (policies/README.md) and what a user
# would put in their place.
PLACEHOLDERS = {
    "REGION": REGION,
    "ACCOUNT_ID": ACCOUNT,
    "FUNCTION_NAME": "iot-audit-remediator",
    "TOPIC_NAME": "iot-audit-remediator-notifications",
}
# AWS IoT policies, not IAM policies (policies/README.md): checkov has no checks for them.
IOT_POLICIES = ("permissive-sample.json", "restrictive-shadow-only.json")
IOT_POLICY_VARIABLE = re.compile(r"\$\{iot:[^}]+\}")
IOT_SAMPLE_VALUE = "thing-a"
# Parameters without a default, or whose default (empty) means "off", and what a user would
# give them: the central account is another one than the member's.
SAMPLES = {
    "MemberRoleName": "iot-audit-remediator-member",
    "MemberExternalId": "sample-external-id",
    "OrganizationId": "o-a1b2c3d4e5",
    "MemberAccountIds": "111122223333,444455556666",
    "CentralAccountId": "210987654321",
    "CentralRoleName": "iot-audit-remediator-RemediatorRole-SAMPLE",
    "CentralFunctionArn": "arn:aws:lambda:us-east-1:210987654321:function:iot-audit-remediator-RemediatorFunction-SAMPLE",
    "RoleRegion": REGION,
}
# The templates whose documents are analysed, each with the prefix of its documents' names.
TEMPLATES = (("template.yaml", ""), ("member.yaml", "member."))
FOR_EACH = "Fn::ForEach::"
# Where CloudFormation resources keep policy documents.
DOCUMENT_KEYS = ("PolicyDocument", "AssumeRolePolicyDocument", "KeyPolicy")


class Removed:
    """What `!Ref AWS::NoValue` renders to: the enclosing key or list item is dropped."""


NO_VALUE = Removed()


class Union(list):
    """Both branches of an `!If`: the document is analysed with what either configuration grants."""


def distinct(items: Any) -> list[Any]:
    """The items in order, each once (a principal in both branches of an `!If` is listed once)."""
    seen, kept = set(), []
    for item in items:
        key = json.dumps(item, sort_keys=True)
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


def load_template(path: Path) -> dict[str, Any]:
    """A template with its short tags in CloudFormation's long form (`!Ref X` → {"Ref": "X"})."""

    class Loader(yaml.SafeLoader):
        pass

    def tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if suffix == "Ref" or suffix == "Condition":
            return {suffix: value}
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {f"Fn::{suffix}": value}

    Loader.add_multi_constructor("!", tagged)
    return yaml.load(path.read_text(), Loader=Loader)  # noqa: S506 (a SafeLoader subclass)


class Renderer:
    """Renders CloudFormation functions with sample values.

    Parameters take their default; one with an empty default (an optional ARN) takes a sample ARN
    of the service its AllowedPattern names. `!If` takes both branches (a Union) unless one is
    `AWS::NoValue`, so every optional statement and principal is analysed. Resource conditions
    are ignored: every resource is analysed.
    """

    def __init__(self, template: dict[str, Any]) -> None:
        self.parameters = template.get("Parameters", {})
        self.resources = template.get("Resources", {})

    def render(self, value: Any) -> Any:
        if isinstance(value, list):
            items = []
            for item in value:
                rendered = self.render(item)
                if isinstance(rendered, Union):
                    items.extend(rendered)
                elif rendered is not NO_VALUE:
                    items.append(rendered)
            return items
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key.startswith("Fn::"):
                return self.function(key[4:], argument)
        rendered = {key: self.render(item) for key, item in value.items()}
        return {key: item for key, item in rendered.items() if item is not NO_VALUE}

    def function(self, name: str, argument: Any) -> Any:
        if name == "GetAtt":
            return self.get_att(*argument)
        if name == "Sub":
            return self.sub(*argument) if isinstance(argument, list) else self.sub(argument, {})
        if name == "Join":
            separator, items = argument
            return separator.join(str(item) for item in self.render(items))
        if name == "If":
            _, when_true, when_false = argument
            branches = [self.render(when_true), self.render(when_false)]
            kept = [branch for branch in branches if branch is not NO_VALUE]
            if len(kept) == 1:
                return kept[0]
            return Union(distinct(item for branch in kept for item in (branch if isinstance(branch, list) else [branch])))
        raise ValueError(f"iam_documents.py does not render Fn::{name} yet")

    def sub(self, text: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(self.render(variables[name]))
            if "." in name and name.split(".", 1)[0] in self.resources:
                return self.get_att(*name.split(".", 1))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return self.parameter(name)
        kind = self.resource_type(name)
        # What Ref returns for each resource type (the ARN for a topic, the URL for a queue, ...).
        if kind == "AWS::SNS::Topic":
            return self.arn("sns", name)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
        return name

    def get_att(self, name: str, attribute: str) -> str:
        kind = self.resource_type(name)
        arns = {
            ("AWS::SQS::Queue", "Arn"): self.arn("sqs", name),
            ("AWS::SQS::Queue", "QueueName"): name,
            ("AWS::SNS::Topic", "TopicArn"): self.arn("sns", name),
            ("AWS::IAM::Role", "Arn"): f"arn:{PARTITION}:iam::{ACCOUNT}:role/{name}",
            ("AWS::KMS::Key", "Arn"): self.arn("kms", f"key/{name}"),
            ("AWS::Logs::LogGroup", "Arn"): self.arn("logs", f"log-group:{self.log_group_name(name)}:*"),
            ("AWS::Serverless::Function", "Arn"): self.arn("lambda", f"function:{name}"),
            ("AWS::Lambda::Function", "Arn"): self.arn("lambda", f"function:{name}"),
        }
        if (kind, attribute) not in arns:
            raise ValueError(f"iam_documents.py does not render !GetAtt {name}.{attribute} ({kind}) yet")
        return arns[(kind, attribute)]

    def log_group_name(self, name: str) -> str:
        given = self.resources[name].get("Properties", {}).get("LogGroupName")
        return str(self.render(given)) if given is not None else name

    def parameter(self, name: str) -> str:
        spec = self.parameters[name]
        default = str(spec.get("Default", ""))
        if default:
            return default
        if name in SAMPLES:
            return SAMPLES[name]
        service = re.search(r"arn:aws[^:]*:([a-z0-9-]+):", spec.get("AllowedPattern", ""))
        if service is None:
            raise ValueError(f"parameter {name} has no default and no ARN pattern: give it a sample in iam_documents.py")
        if service.group(1) == "iam":
            return f"arn:{PARTITION}:iam::{ACCOUNT}:role/{name}"
        return self.arn(service.group(1), name)

    def resource_type(self, name: str) -> str:
        if name not in self.resources:
            raise ValueError(f"!Ref/!GetAtt of {name}, which the template does not define")
        return self.resources[name]["Type"]

    @staticmethod
    def arn(service: str, resource: str) -> str:
        return f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT}:{resource}"


def expand_for_each(template: dict[str, Any]) -> dict[str, Any]:
    """The template with each Fn::ForEach of its resources expanded over the sample collection.

    Only the form template.yaml uses: [identifier, !Ref <CommaDelimitedList parameter>,
    {logical id with ${identifier} or &{identifier}: resource}], the identifier used as !Ref.
    """
    resources: dict[str, Any] = {}
    for name, resource in template.get("Resources", {}).items():
        if not name.startswith(FOR_EACH):
            resources[name] = resource
            continue
        identifier, collection, body = resource
        values = Renderer(template).ref(collection["Ref"]).split(",")
        for value in values:
            for key, item in body.items():
                logical_id = key.replace("${" + identifier + "}", value)
                logical_id = logical_id.replace("&{" + identifier + "}", re.sub(r"[^A-Za-z0-9]", "", value))
                resources[logical_id] = substitute(item, identifier, value)
    return {**template, "Resources": resources}


def substitute(value: Any, identifier: str, replacement: str) -> Any:
    """VALUE with `!Ref IDENTIFIER` replaced by REPLACEMENT; a ${IDENTIFIER} in a Sub is refused."""
    if isinstance(value, list):
        return [substitute(item, identifier, replacement) for item in value]
    if not isinstance(value, dict):
        if isinstance(value, str) and "${" + identifier + "}" in value:
            raise ValueError(f"iam_documents.py does not substitute ${{{identifier}}} in strings yet")
        return value
    if value == {"Ref": identifier}:
        return replacement
    return {key: substitute(item, identifier, replacement) for key, item in value.items()}


def template_documents(template: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Each policy document of the template, by <kind>/<prefix><file name naming where it is>."""
    template = expand_for_each(template)
    renderer = Renderer(template)
    documents: dict[str, Any] = {}
    for name, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        for key in DOCUMENT_KEYS:
            if key in properties:
                documents[f"{document_kind(resource['Type'], key)}/{prefix}{name}.{key}"] = properties[key]
        # Inline policies of a role, and the SAM function's Policies (documents among managed
        # policy names and SAM policy templates).
        for index, policy in enumerate(properties.get("Policies", []) or []):
            if isinstance(policy, dict) and "PolicyDocument" in policy:
                documents[f"identity/{prefix}{name}.Policies.{policy.get('PolicyName', index)}"] = policy["PolicyDocument"]
            elif isinstance(policy, dict) and "Statement" in policy:
                documents[f"identity/{prefix}{name}.Policies.{index}"] = policy
    return {file: renderer.render(document) for file, document in documents.items()}


def document_kind(resource_type: str, key: str) -> str:
    """What a document under KEY of a resource of RESOURCE_TYPE is (see the module doc)."""
    if key == "AssumeRolePolicyDocument":
        return "trust"
    if key == "KeyPolicy":
        return "key"
    return "identity" if resource_type.startswith("AWS::IAM::") else "resource"


def policy_files() -> dict[str, str]:
    """Each policies/*.json with its placeholders and IoT policy variables given sample values."""
    rendered = {}
    for path in sorted((ROOT / "policies").glob("*.json")):
        text = path.read_text()
        for placeholder, value in PLACEHOLDERS.items():
            text = re.sub(rf"\b{placeholder}\b", value, text)
        rendered[path.name] = IOT_POLICY_VARIABLE.sub(IOT_SAMPLE_VALUE, text)
    return rendered


def checkov_template(policies: dict[str, str]) -> dict[str, Any]:
    """The IAM documents of policies/ as managed policies of a template, for checkov."""
    resources = {}
    for file, text in policies.items():
        if file in IOT_POLICIES:
            continue
        logical_id = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", Path(file).stem))
        resources[logical_id] = {
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {"Description": f"policies/{file}", "PolicyDocument": json.loads(text)},
        }
    return {"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    written = []
    for template, prefix in TEMPLATES:
        for file, document in template_documents(load_template(ROOT / template), prefix).items():
            written.append(write(out / f"{file}.json", json.dumps(document, indent=2)))
    policies = policy_files()
    for file, text in policies.items():
        written.append(write(out / ("iot" if file in IOT_POLICIES else "identity") / file, text))
    write(out / "policies.template.json", json.dumps(checkov_template(policies), indent=2))
    print("\n".join(str(path) for path in written))
    return 0


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + ("" if text.endswith("\n") else "\n"))
    return path


if __name__ == "__main__":
    sys.exit(main(sys.argv))
