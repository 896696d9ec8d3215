"""Seeds and shows the demo's policies and notifications on the local endpoint (used by
scripts/demo.sh).

Usage: demo_iot.py seed URL                  policies, findings, the notification topic and
                                             an inbox queue subscribed to it; prints the
                                             topic's ARN
       demo_iot.py show URL [--check STATE]  the policies; STATE: remediated | rolled-back
       demo_iot.py notifications URL [--check KIND]
                                             the notifications that arrived since the last look
"""
import json
import sys
import urllib.request

import boto3

TASK = "7aa53579303b594f9bcb76082688a5de"  # the taskId of events/audit-non-compliant.json
POLICIES = ["WS_AUDIT_PermissivePolicy", "DeviceFleetPolicy"]  # in scope, out of scope


INBOX = "demo-notifications"


def client(url, service="iot"):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="demo", aws_secret_access_key="demo")


def finding(name):
    return {
        "findingId": f"demo-{name}", "taskId": TASK,
        "checkName": "IOT_POLICY_OVERLY_PERMISSIVE_CHECK", "severity": "CRITICAL",
        "taskStartTime": 1572013171.897, "findingTime": 1572013190.104,
        "nonCompliantResource": {"resourceType": "IOT_POLICY", "resourceIdentifier": {
            "policyVersionIdentifier": {"policyName": name, "policyVersionId": "1"}}},
        "reasonForNonComplianceCode": "ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS",
        "isSuppressed": False,
    }


def seed(url):
    iot = client(url)
    with open("policies/permissive-sample.json") as f:
        permissive = f.read()
    for name in POLICIES:
        iot.create_policy(policyName=name, policyDocument=permissive)
    body = json.dumps({"findings": [finding(n) for n in POLICIES]}).encode()
    req = urllib.request.Request(url + "/_emulator/findings", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
    # The notification topic, and a queue subscribed to it standing in for a mailbox.
    sns, sqs = client(url, "sns"), client(url, "sqs")
    topic = sns.create_topic(Name="iot-audit-remediator-changes")["TopicArn"]
    inbox = sqs.create_queue(QueueName=INBOX)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"])
    print(topic)


def notifications(url, expected_kind):
    sqs = client(url, "sqs")
    inbox = sqs.get_queue_url(QueueName=INBOX)["QueueUrl"]
    kinds = []
    for message in sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=2).get("Messages", []):
        envelope = json.loads(message["Body"])
        attributes = {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()}
        kinds.append(attributes.get("kind"))
        print(f"--- notification: {envelope.get('Subject')}")
        print(f"    attributes: {attributes}")
        print(json.dumps(json.loads(envelope["Message"]), indent=2))
        sqs.delete_message(QueueUrl=inbox, ReceiptHandle=message["ReceiptHandle"])
    if expected_kind and expected_kind not in kinds:
        sys.exit(f"no {expected_kind} notification arrived (got {kinds})")


def show(url, check):
    iot = client(url)
    # The demo runs in us-east-1, the aws partition: the function installs the file as it is.
    with open("policies/restrictive-shadow-only.json") as f:
        restrictive = json.load(f)
    states = {}
    for name in POLICIES:
        policy = iot.get_policy(policyName=name)
        versions = iot.list_policy_versions(policyName=name)["policyVersions"]
        document = json.loads(policy["policyDocument"])
        states[name] = document == restrictive
        print(f"--- {name}: default version {policy['defaultVersionId']} of "
              f"{sorted(v['versionId'] for v in versions)}, "
              f"{'restrictive' if states[name] else 'NOT restrictive'}")
        print(json.dumps(document, indent=2))
    expected = {"remediated": {"WS_AUDIT_PermissivePolicy": True, "DeviceFleetPolicy": False},
                "rolled-back": {"WS_AUDIT_PermissivePolicy": False, "DeviceFleetPolicy": False}}
    if check and states != expected[check]:
        sys.exit(f"unexpected end state (expected {check}): {states}")


def option(name):
    args = sys.argv[3:]
    return args[args.index(name) + 1] if name in args else None


if __name__ == "__main__":
    command, url = sys.argv[1], sys.argv[2]
    if command == "seed":
        seed(url)
    elif command == "notifications":
        notifications(url, option("--check"))
    else:
        show(url, option("--check"))
