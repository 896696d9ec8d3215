"""Seeds and shows the demo's policies on the local IoT endpoint (used by scripts/demo.sh).

Usage: demo_iot.py seed URL | demo_iot.py show URL [--check]
"""
import json
import sys
import urllib.request

import boto3

TASK = "7aa53579303b594f9bcb76082688a5de"  # the taskId of events/audit-non-compliant.json
POLICIES = ["WS_AUDIT_PermissivePolicy", "DeviceFleetPolicy"]  # in scope, out of scope


def client(url):
    return boto3.client("iot", endpoint_url=url, region_name="us-east-1",
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


def show(url, check):
    iot = client(url)
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
    if check and states != {"WS_AUDIT_PermissivePolicy": True, "DeviceFleetPolicy": False}:
        sys.exit(f"unexpected end state: {states}")


if __name__ == "__main__":
    command, url = sys.argv[1], sys.argv[2]
    if command == "seed":
        seed(url)
    else:
        show(url, "--check" in sys.argv[3:])
