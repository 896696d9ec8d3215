"""Tests of the local IoT emulator, run as a subprocess and driven over HTTP with urllib.

Run: .venv/bin/python -m unittest emulator/test_iot_emulator.py
"""

import http.client
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor
import urllib.error
import urllib.request
from urllib.parse import quote

import boto3            # installed with moto[server]
import botocore.config
import botocore.exceptions

EMULATOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "iot_emulator.py")
# moto picks the service from the SigV4 credential scope (and the region from it) and does not
# check the signature; an unsigned request would be routed to its S3 backend.
AUTH = ("AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/iot/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=0")
CHECK = "IOT_POLICY_OVERLY_PERMISSIVE_CHECK"
# Loopback never goes through a proxy, whatever the environment says.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
DOCUMENT = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]})
NO_FAULTS = {"throttle": 0, "error": 0, "stall": 0, "rate_limited": 0, "expired": 0,
             "denied": 0}
# moto's account for any access key it did not issue; and two member accounts.
DEFAULT_ACCOUNT, A, B = "123456789012", "111111111111", "222222222222"


# One attempt per call: the tests count requests and expect each answer as it was given.
BOTO_CONFIG = botocore.config.Config(retries={"total_max_attempts": 1})


def role_arn(account):
    return f"arn:aws:iam::{account}:role/x"


def policy_names(findings):
    return [f["nonCompliantResource"]["resourceIdentifier"]["policyVersionIdentifier"]
            ["policyName"] for f in findings]


def start_emulator(*extra_args):
    """Starts the emulator; returns (process, base URL) once it printed its READY line."""
    proc = subprocess.Popen(
        [sys.executable, EMULATOR, "--port", "0", "--exit-on-stdin-eof", *extra_args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=20):
            proc.kill()
            raise AssertionError("the emulator did not print READY within 20 s")
    line = proc.stdout.readline().decode()
    if not line.startswith("READY http://127.0.0.1:"):
        proc.kill()
        raise AssertionError(f"unexpected first line {line!r}")
    return proc, line.split()[1]


def stop_emulator(proc):
    proc.stdin.close()
    proc.wait(timeout=10)
    proc.stdout.close()


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def error_type(self):
        return self.headers.get("x-amzn-ErrorType")


class EmulatorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc, cls.url = start_emulator()

    @classmethod
    def tearDownClass(cls):
        stop_emulator(cls.proc)

    def setUp(self):
        self.assertEqual(self.control("POST", "/_emulator/reset").status, 200)

    # --- helpers -----------------------------------------------------------------------------

    def call(self, method, path, body=None, signed=True, timeout=10):
        headers = {"Content-Type": "application/json"}
        if signed:
            headers["Authorization"] = AUTH
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers=headers,
                                         method=method)
        try:
            with OPENER.open(request, timeout=timeout) as r:
                return Response(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, e.headers, e.read())

    def control(self, method, path, body=None):
        return self.call(method, path, body, signed=False)

    def set_faults(self, config):
        response = self.control("POST", "/_emulator/faults", config)
        self.assertEqual(response.status, 200, response.body)

    def list_findings(self, **request):
        return self.call("POST", "/audit/findings", request)

    def list_all_pages(self, **request):
        pages, token = [], None
        while True:
            response = self.list_findings(**request, **({"nextToken": token} if token else {}))
            self.assertEqual(response.status, 200, response.body)
            pages.append(response.json["findings"])
            token = response.json.get("nextToken")
            if token is None:
                return pages

    def request_log(self):
        return self.control("GET", "/_emulator/requests").json

    def assert_aws_error(self, response, status, code):
        self.assertEqual(response.status, status, response.body)
        self.assertEqual(response.error_type, code)
        self.assertEqual(response.headers.get("Content-Type"), "application/json")
        self.assertIsInstance(response.json["message"], str)

    # --- forwarding to moto ------------------------------------------------------------------

    def test_forwards_policy_operations_and_moto_errors(self):
        name = "WS_AUDIT_fwd+a=b,c.d@e-f"     # every character class a policy name may use
        path = "/policies/" + quote(name, safe="")
        created = self.call("POST", path, {"policyDocument": DOCUMENT})
        self.assertEqual(created.status, 200, created.body)
        self.assertEqual((created.json["policyName"], created.json["policyVersionId"]), (name, "1"))

        got = self.call("GET", path).json
        self.assertEqual(got["defaultVersionId"], "1")
        self.assertEqual(json.loads(got["policyDocument"]), json.loads(DOCUMENT))

        for version in range(2, 6):
            response = self.call("POST", path + "/version?setAsDefault=true",
                                 {"policyDocument": DOCUMENT})
            self.assertEqual(response.status, 200, response.body)
            self.assertEqual(response.json["policyVersionId"], str(version))
            self.assertTrue(response.json["isDefaultVersion"])
        self.assert_aws_error(
            self.call("POST", path + "/version?setAsDefault=true", {"policyDocument": DOCUMENT}),
            409, "VersionsLimitExceededException")
        self.assert_aws_error(self.call("DELETE", path + "/version/5"),
                              400, "InvalidRequestException")
        self.assert_aws_error(self.call("GET", "/policies/absent"),
                              404, "ResourceNotFoundException")

        log = self.request_log()
        self.assertEqual(log["counts"], {"CreatePolicy": 1, "GetPolicy": 2,
                                         "CreatePolicyVersion": 5, "DeletePolicyVersion": 1})
        delete = log["requests"][-2]
        self.assertEqual((delete["operation"], delete["method"], delete["status"],
                          delete["policyName"], delete["versionId"], delete["path"]),
                         ("DeletePolicyVersion", "DELETE", 400, name, "5", path + "/version/5"))

    # --- ListAuditFindings -------------------------------------------------------------------

    def test_list_audit_findings_pages_and_filters(self):
        seeded = self.control("POST", "/_emulator/findings", {"generate": {
            "taskId": "T1", "checkName": CHECK, "policyNamePrefix": "WS_AUDIT_P", "count": 600,
            "versionId": "1", "start": 0}})
        self.assertEqual(seeded.json, {"added": 600, "total": 600})
        self.control("POST", "/_emulator/findings", {"generate": {
            "taskId": "T1", "count": 10, "start": 600, "isSuppressed": True}})
        self.control("POST", "/_emulator/findings", {"generate": {"taskId": "T2", "count": 5}})
        other_check = {"findingId": "f-other", "taskId": "T1",
                       "checkName": "LOGGING_DISABLED_CHECK",
                       "nonCompliantResource": {"resourceType": "ACCOUNT_SETTINGS",
                                                "resourceIdentifier": {"account": "123456789012"}},
                       "isSuppressed": False}
        self.assertEqual(self.control("POST", "/_emulator/findings",
                                      {"findings": [other_check]}).json["total"], 616)

        pages = self.list_all_pages(taskId="T1", checkName=CHECK, listSuppressedFindings=False,
                                    maxResults=250)
        self.assertEqual([len(p) for p in pages], [250, 250, 100])
        findings = [f for page in pages for f in page]
        names = [f["nonCompliantResource"]["resourceIdentifier"]["policyVersionIdentifier"]
                 ["policyName"] for f in findings]
        self.assertEqual(names, [f"WS_AUDIT_P{i:05d}" for i in range(600)])
        self.assertEqual(len({f["findingId"] for f in findings}), 600)
        first = findings[0]
        self.assertEqual((first["taskId"], first["checkName"], first["isSuppressed"],
                          first["nonCompliantResource"]["resourceType"]),
                         ("T1", CHECK, False, "IOT_POLICY"))
        self.assertIsInstance(first["findingTime"], float)

        suppressed = self.list_all_pages(taskId="T1", listSuppressedFindings=True, maxResults=250)
        self.assertEqual([len(p) for p in suppressed], [10])
        self.assertEqual([len(p) for p in self.list_all_pages(taskId="T1", maxResults=250)],
                         [250, 250, 111])
        self.assertEqual(self.list_all_pages(checkName="LOGGING_DISABLED_CHECK"), [[other_check]])
        self.assertEqual(
            self.list_all_pages(resourceIdentifier={"account": "123456789012"}), [[other_check]])
        self.assertEqual(self.list_all_pages(taskId="T3"), [[]])

        default_page = self.list_findings(taskId="T2")
        self.assertEqual(len(default_page.json["findings"]), 5)
        self.assertNotIn("nextToken", default_page.json)
        self.assertEqual(len(self.list_findings().json["findings"]), 25)

        for bad in (0, 251, "10", True):
            self.assert_aws_error(self.list_findings(maxResults=bad), 400,
                                  "InvalidRequestException")
        self.assert_aws_error(self.list_findings(nextToken="bogus"), 400,
                              "InvalidRequestException")
        token = self.list_findings(taskId="T1").json["nextToken"]
        self.assert_aws_error(self.list_findings(taskId="T2", nextToken=token), 400,
                              "InvalidRequestException")
        self.assertEqual(self.list_findings(taskId="T1", nextToken=token).status, 200)
        self.assertEqual(self.list_findings(taskId="T1", nextToken=token).status, 200,
                         "a token can be used again, as a retry would")

    def test_describe_audit_finding(self):
        self.control("POST", "/_emulator/findings", {"generate": {"taskId": "T1", "count": 2}})
        listed = self.list_findings(taskId="T1").json["findings"]
        described = self.call("GET", "/audit/findings/" + listed[1]["findingId"])
        self.assertEqual(described.status, 200, described.body)
        self.assertEqual(described.json, {"finding": listed[1]})
        self.assert_aws_error(self.call("GET", "/audit/findings/absent"),
                              404, "ResourceNotFoundException")
        self.assertEqual(self.request_log()["counts"]["DescribeAuditFinding"], 2)

    def test_list_targets_for_policy_pages(self):
        self.call("POST", "/policies/WS_AUDIT_t", {"policyDocument": DOCUMENT})
        for i in range(3):
            arn = self.call("POST", f"/thing-groups/g{i}", {}).json["thingGroupArn"]
            attached = self.call("PUT", "/target-policies/WS_AUDIT_t", {"target": arn})
            self.assertEqual(attached.status, 200, attached.body)
        first = self.call("POST", "/policy-targets/WS_AUDIT_t?pageSize=2").json
        self.assertEqual((len(first["targets"]), first["nextMarker"]), (2, "2"))
        rest = self.call("POST", "/policy-targets/WS_AUDIT_t?pageSize=2&marker=2").json
        self.assertEqual(len(rest["targets"]), 1)
        self.assertNotIn("nextMarker", rest)
        self.assertEqual(len(self.call("POST", "/policy-targets/WS_AUDIT_t").json["targets"]), 3)
        self.assert_aws_error(self.call("POST", "/policy-targets/WS_AUDIT_t?pageSize=0"),
                              400, "InvalidRequestException")
        self.assert_aws_error(self.call("POST", "/policy-targets/absent"),
                              404, "ResourceNotFoundException")
        self.assertEqual(self.request_log()["requests"][-1]["policyName"], "absent")

    # --- audit suppressions ------------------------------------------------------------------

    @staticmethod
    def suppression(name, version="1", **fields):
        return {"checkName": CHECK, "resourceIdentifier": {"policyVersionIdentifier": {
            "policyName": name, "policyVersionId": version}}, **fields}

    def test_suppressions_create_update_describe_list_delete(self):
        a = self.suppression("WS_AUDIT_a")
        later = time.time() + 86400
        created = self.call("POST", "/audit/suppressions/create",
                            {**a, "expirationDate": later, "description": "rolled back",
                             "clientRequestToken": "tok-1"})
        self.assertEqual((created.status, created.json), (200, {}), created.body)
        self.assert_aws_error(
            self.call("POST", "/audit/suppressions/create",
                      {**a, "suppressIndefinitely": True, "clientRequestToken": "tok-2"}),
            409, "ResourceAlreadyExistsException")
        described = self.call("POST", "/audit/suppressions/describe", a).json
        self.assertEqual(described, {**a, "expirationDate": later, "description": "rolled back"})

        updated = self.call("PATCH", "/audit/suppressions/update",
                            {**a, "suppressIndefinitely": True, "description": "kept"})
        self.assertEqual(updated.status, 200, updated.body)
        self.assertEqual(self.call("POST", "/audit/suppressions/describe", a).json,
                         {**a, "suppressIndefinitely": True, "description": "kept"})

        for name in ("WS_AUDIT_b", "WS_AUDIT_c"):
            self.call("POST", "/audit/suppressions/create",
                      {**self.suppression(name), "suppressIndefinitely": True,
                       "clientRequestToken": "t"})
        first = self.call("POST", "/audit/suppressions/list",
                          {"checkName": CHECK, "maxResults": 2}).json
        self.assertEqual(len(first["suppressions"]), 2)
        rest = self.call("POST", "/audit/suppressions/list",
                         {"checkName": CHECK, "maxResults": 2,
                          "nextToken": first["nextToken"]}).json
        self.assertEqual(len(rest["suppressions"]), 1)
        self.assertNotIn("nextToken", rest)
        self.assertEqual(self.call("POST", "/audit/suppressions/list",
                                   {"checkName": "OTHER_CHECK"}).json, {"suppressions": []})

        self.assertEqual(self.call("POST", "/audit/suppressions/delete", a).status, 200)
        self.assert_aws_error(self.call("POST", "/audit/suppressions/describe", a),
                              404, "ResourceNotFoundException")
        self.assert_aws_error(self.call("PATCH", "/audit/suppressions/update",
                                        {**a, "description": "x"}),
                              404, "ResourceNotFoundException")
        for bad in ({"checkName": CHECK}, {**a, "clientRequestToken": "t"},
                    {**a, "expirationDate": "soon", "clientRequestToken": "t"},
                    {**a, "suppressIndefinitely": True}):
            self.assert_aws_error(self.call("POST", "/audit/suppressions/create", bad),
                                  400, "InvalidRequestException")

    def test_a_suppression_shows_on_findings_of_later_audits_only(self):
        self.control("POST", "/_emulator/findings", {"generate": {
            "taskId": "BEFORE", "count": 2, "policyNamePrefix": "WS_AUDIT_"}})
        time.sleep(0.01)
        self.call("POST", "/audit/suppressions/create",
                  {**self.suppression("WS_AUDIT_00000"), "expirationDate": time.time() + 60,
                   "clientRequestToken": "t"})
        time.sleep(0.01)
        self.control("POST", "/_emulator/findings", {"generate": {
            "taskId": "AFTER", "count": 2, "policyNamePrefix": "WS_AUDIT_"}})

        def suppressed(task, only=None):
            request = {"taskId": task, **({} if only is None else
                                          {"listSuppressedFindings": only})}
            return [f["isSuppressed"] for f in self.list_findings(**request).json["findings"]]

        self.assertEqual(suppressed("BEFORE"), [False, False])
        self.assertEqual(suppressed("AFTER"), [True, False])
        self.assertEqual(suppressed("AFTER", only=False), [False])
        self.assertEqual(suppressed("AFTER", only=True), [True])
        # An expired suppression covers nothing that started after it expired.
        self.call("PATCH", "/audit/suppressions/update",
                  {**self.suppression("WS_AUDIT_00000"), "expirationDate": time.time() - 1})
        self.control("POST", "/_emulator/findings", {"generate": {
            "taskId": "EXPIRED", "count": 1, "policyNamePrefix": "WS_AUDIT_"}})
        self.assertEqual(suppressed("EXPIRED"), [False])

    # --- accounts and regions ----------------------------------------------------------------

    def boto(self, service, region="us-east-1", credentials=None):
        """A boto3 client of the emulator; plain test keys land in moto's default account."""
        credentials = credentials or {"aws_access_key_id": "test",
                                      "aws_secret_access_key": "test"}
        return boto3.client(service, endpoint_url=self.url, region_name=region,
                            config=BOTO_CONFIG, **credentials)

    def assume(self, account, session="emulator-test", answer=None, external_id=None):
        """Credentials from moto's STS for the role x of `account`, asked with test keys."""
        extra = {"ExternalId": external_id} if external_id else {}
        found = self.boto("sts").assume_role(RoleArn=role_arn(account),
                                             RoleSessionName=session, **extra)["Credentials"]
        if answer is not None:
            answer.update(found)
        return {"aws_access_key_id": found["AccessKeyId"],
                "aws_secret_access_key": found["SecretAccessKey"],
                "aws_session_token": found["SessionToken"]}

    def seed(self, task, count, prefix, **scope):
        response = self.control("POST", "/_emulator/findings", {**scope, "generate": {
            "taskId": task, "count": count, "policyNamePrefix": prefix}})
        self.assertEqual(response.status, 200, response.body)
        return response.json

    def test_findings_are_kept_per_account_and_region(self):
        self.assertEqual(self.seed("T", 3, "A_", account=A), {"added": 3, "total": 3})
        self.assertEqual(self.seed("T", 1, "A_EU_", account=A, region="eu-west-1"),
                         {"added": 1, "total": 1})
        self.assertEqual(self.seed("T", 2, "OWN_"), {"added": 2, "total": 2})
        a = self.assume(A)
        a_us, a_eu = self.boto("iot", credentials=a), self.boto("iot", "eu-west-1", a)
        b_us = self.boto("iot", credentials=self.assume(B))

        def listed(client, **request):
            return policy_names(client.list_audit_findings(taskId="T", **request)["findings"])

        self.assertEqual(listed(a_us), ["A_00000", "A_00001", "A_00002"])
        self.assertEqual(listed(a_eu), ["A_EU_00000"])
        self.assertEqual(listed(b_us), [])
        self.assertEqual(listed(self.boto("iot")), ["OWN_00000", "OWN_00001"])
        self.assertEqual(policy_names(self.list_findings(taskId="T").json["findings"]),
                         ["OWN_00000", "OWN_00001"], "unsigned: the default account")

        finding_id = a_us.list_audit_findings(taskId="T")["findings"][0]["findingId"]
        self.assertEqual(a_us.describe_audit_finding(findingId=finding_id)["finding"]
                         ["findingId"], finding_id)
        for other in (a_eu, b_us):
            with self.assertRaises(other.exceptions.ResourceNotFoundException):
                other.describe_audit_finding(findingId=finding_id)
        token = a_us.list_audit_findings(taskId="T", maxResults=1)["nextToken"]
        self.assertEqual(len(a_us.list_audit_findings(taskId="T", maxResults=1,
                                                      nextToken=token)["findings"]), 1)
        with self.assertRaises(b_us.exceptions.InvalidRequestException):
            b_us.list_audit_findings(taskId="T", maxResults=1, nextToken=token)

    def test_suppressions_are_kept_per_account_and_region(self):
        a = self.assume(A)
        a_us, a_eu = self.boto("iot", credentials=a), self.boto("iot", "eu-west-1", a)
        b_us = self.boto("iot", credentials=self.assume(B))
        resource = {"policyVersionIdentifier": {"policyName": "P_00000", "policyVersionId": "1"}}
        a_us.create_audit_suppression(checkName=CHECK, resourceIdentifier=resource,
                                      suppressIndefinitely=True, clientRequestToken="t")
        time.sleep(0.01)
        for scope in ({"account": A}, {"account": A, "region": "eu-west-1"}, {"account": B}):
            self.seed("AFTER", 1, "P_", **scope)

        self.assertEqual(len(a_us.list_audit_suppressions(checkName=CHECK)["suppressions"]), 1)
        for other in (a_eu, b_us):
            self.assertEqual(other.list_audit_suppressions(checkName=CHECK)["suppressions"], [])
            with self.assertRaises(other.exceptions.ResourceNotFoundException):
                other.describe_audit_suppression(checkName=CHECK, resourceIdentifier=resource)
        suppressed = {name: [f["isSuppressed"] for f in client.list_audit_findings(
            taskId="AFTER")["findings"]] for name, client in
            (("a_us", a_us), ("a_eu", a_eu), ("b_us", b_us))}
        self.assertEqual(suppressed, {"a_us": [True], "a_eu": [False], "b_us": [False]})
        # The same suppression can be made in another account: nothing there conflicts.
        b_us.create_audit_suppression(checkName=CHECK, resourceIdentifier=resource,
                                      suppressIndefinitely=True, clientRequestToken="t")
        a_us.delete_audit_suppression(checkName=CHECK, resourceIdentifier=resource)
        self.assertEqual(len(b_us.list_audit_suppressions()["suppressions"]), 1)
        self.assertEqual(a_us.list_audit_suppressions()["suppressions"], [])

    def test_an_assumed_role_client_works_in_the_roles_account(self):
        self.seed("T", 2, "A_", account=A)
        self.control("DELETE", "/_emulator/requests")
        a_iot = self.boto("iot", credentials=self.assume(A, session="remediator-T",
                                                         external_id="ext-T"))
        a_iot.create_policy(policyName="A_00000", policyDocument=DOCUMENT)
        self.assertEqual(policy_names(a_iot.list_audit_findings(taskId="T")["findings"]),
                         ["A_00000", "A_00001"])
        self.assertEqual([p["policyName"] for p in a_iot.list_policies()["policies"]],
                         ["A_00000"])
        self.assertIn(":111111111111:", a_iot.get_policy(policyName="A_00000")["policyArn"])
        own = self.boto("iot")
        self.assertEqual(own.list_policies()["policies"], [])
        self.assertEqual(own.list_audit_findings(taskId="T")["findings"], [])
        self.call("GET", "/policies", signed=True)      # AUTH's test key, in us-east-1
        eu = AUTH.replace("/us-east-1/", "/eu-west-1/")
        request = urllib.request.Request(self.url + "/policies", headers={"Authorization": eu})
        with OPENER.open(request, timeout=10) as r:
            self.assertEqual(json.loads(r.read()), {"policies": []})

        log = self.request_log()
        seen = [(r["operation"], r["account"], r["region"]) for r in log["requests"]]
        self.assertEqual(seen, [
            ("AssumeRole", DEFAULT_ACCOUNT, "us-east-1"),
            ("CreatePolicy", A, "us-east-1"), ("ListAuditFindings", A, "us-east-1"),
            ("ListPolicies", A, "us-east-1"), ("GetPolicy", A, "us-east-1"),
            ("ListPolicies", DEFAULT_ACCOUNT, "us-east-1"),
            ("ListAuditFindings", DEFAULT_ACCOUNT, "us-east-1"),
            ("ListPolicies", DEFAULT_ACCOUNT, "us-east-1"),
            ("ListPolicies", DEFAULT_ACCOUNT, "eu-west-1")])
        assumed = log["requests"][0]
        self.assertEqual((assumed["roleArn"], assumed["roleSessionName"], assumed["status"],
                          assumed["externalId"]), (role_arn(A), "remediator-T", 200, "ext-T"))
        self.assertNotIn("roleArn", log["requests"][1])

    def test_a_role_made_unassumable_answers_access_denied(self):
        self.set_faults({"unassumable_roles": [role_arn(B)]})
        with self.assertRaises(botocore.exceptions.ClientError) as denied:
            self.assume(B)
        error = denied.exception.response
        self.assertEqual((error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]),
                         ("AccessDenied", 403))
        self.assertIn(role_arn(B), error["Error"]["Message"])
        self.boto("iot", credentials=self.assume(A)).list_policies()
        log = self.request_log()
        self.assertEqual([(r["operation"], r.get("roleArn"), r["status"], r["fault"])
                          for r in log["requests"]],
                         [("AssumeRole", role_arn(B), 403, "denied"),
                          ("AssumeRole", role_arn(A), 200, None),
                          ("ListPolicies", None, 200, None)])
        self.assertEqual(log["faults"], {**NO_FAULTS, "denied": 1})
        # Other faults of AssumeRole answer in the query protocol's XML, which the SDKs read.
        self.set_faults({"operations": {"AssumeRole": {"throttle_rate": 1}}})
        with self.assertRaises(botocore.exceptions.ClientError) as throttled:
            self.assume(A)
        self.assertEqual(throttled.exception.response["Error"]["Code"], "ThrottlingException")

    def test_sessions_expire_and_can_be_made_short(self):
        answer = {}
        self.boto("iot", credentials=self.assume(A, answer=answer)).list_policies()
        lifetime = answer["Expiration"].timestamp() - time.time()
        self.assertGreater(lifetime, 3500, "moto's default, an hour")

        self.set_faults({"session_seconds": 0.5})
        a_iot = self.boto("iot", credentials=self.assume(A, answer=answer))
        lifetime = answer["Expiration"].timestamp() - time.time()
        self.assertLess(lifetime, 0.6)
        a_iot.create_policy(policyName="A_1", policyDocument=DOCUMENT)
        time.sleep(max(0, lifetime) + 0.1)
        with self.assertRaises(botocore.exceptions.ClientError) as expired:
            a_iot.get_policy(policyName="A_1")
        error = expired.exception.response
        self.assertEqual((error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]),
                         ("ExpiredTokenException", 403))
        renewed = self.boto("iot", credentials=self.assume(A))
        self.assertEqual(renewed.get_policy(policyName="A_1")["policyName"], "A_1")
        log = self.request_log()
        self.assertEqual(log["faults"], {**NO_FAULTS, "expired": 1})
        self.assertEqual([r["operation"] for r in log["requests"] if r["fault"]], ["GetPolicy"])

    def test_rate_caps_are_per_account_region_and_operation(self):
        self.set_faults({"default": {"rate_per_sec": 0.1, "burst": 2}})
        a = self.assume(A)    # AssumeRole has a bucket of its own
        clients = {"own": self.boto("iot"), "a_us": self.boto("iot", credentials=a),
                   "a_eu": self.boto("iot", "eu-west-1", a)}

        def statuses(client):
            answered = []
            for _ in range(3):
                try:
                    client.list_audit_findings()
                    answered.append(200)
                except client.exceptions.ThrottlingException:
                    answered.append(400)
            return answered

        for name, client in clients.items():
            self.assertEqual(statuses(client), [200, 200, 400], name)
        self.assertEqual(self.request_log()["faults"]["rate_limited"], 3)

    def test_faults_of_one_account(self):
        self.set_faults({"operations": {"ListPolicies": {"latency_ms": 1}},
                         "accounts": {A: {"operations": {"ListPolicies": {"error_rate": 1}}}}})
        a_iot = self.boto("iot", credentials=self.assume(A))
        b_iot = self.boto("iot", credentials=self.assume(B))
        with self.assertRaises(a_iot.exceptions.InternalFailureException):
            a_iot.list_policies()
        self.assertEqual(b_iot.list_policies()["policies"], [])
        self.assertEqual(self.boto("iot").list_policies()["policies"], [])
        faulted = [(r["account"], r["fault"]) for r in self.request_log()["requests"]
                   if r["operation"] == "ListPolicies"]
        self.assertEqual(faulted, [(A, "error"), (B, None), (DEFAULT_ACCOUNT, None)])

    def test_seeding_names_a_valid_account_and_region(self):
        for body in ({"account": "1234", "generate": {"taskId": "T", "count": 1}},
                     {"account": 111111111111, "generate": {"taskId": "T", "count": 1}},
                     {"region": "Europe", "generate": {"taskId": "T", "count": 1}},
                     {"acount": A, "generate": {"taskId": "T", "count": 1}}):
            response = self.control("POST", "/_emulator/findings", body)
            self.assertEqual(response.status, 400, body)
            self.assertIn("message", response.json)
        self.assertEqual(self.list_findings().json, {"findings": []})

    # --- control API -------------------------------------------------------------------------

    def test_request_log_counts_and_clear(self):
        for _ in range(3):
            self.call("GET", "/policies/p%201")
        self.list_findings(taskId="T1")
        self.control("GET", "/moto-api/config")    # neither moto-api nor control is logged
        log = self.request_log()
        self.assertEqual(log["counts"], {"GetPolicy": 3, "ListAuditFindings": 1})
        self.assertEqual(log["faults"], NO_FAULTS)
        self.assertEqual(log["requests"][0] | {"start": 0, "end": 0}, {
            "operation": "GetPolicy", "method": "GET", "path": "/policies/p%201", "status": 404,
            "fault": None, "policyName": "p 1", "versionId": None, "account": DEFAULT_ACCOUNT,
            "region": "us-east-1", "start": 0, "end": 0})
        self.assertEqual(log["requests"][3]["policyName"], None)
        self.assertGreaterEqual(log["maxInFlight"], 1)

        self.assertEqual(self.control("DELETE", "/_emulator/requests").status, 200)
        self.assertEqual(self.request_log()["requests"], [])
        self.assertEqual(self.request_log()["counts"], {})

    def test_reset_clears_moto_findings_faults_and_log(self):
        self.call("POST", "/policies/WS_AUDIT_r", {"policyDocument": DOCUMENT})
        self.control("POST", "/_emulator/findings", {"generate": {"taskId": "T", "count": 3}})
        self.set_faults({"operations": {"ListPolicies": {"error_rate": 1}}})

        self.assertEqual(self.control("POST", "/_emulator/reset").json, {"status": "ok"})
        self.assertEqual(self.request_log()["requests"], [])
        self.assertEqual(self.call("GET", "/policies/WS_AUDIT_r").status, 404)
        self.assertEqual(self.list_findings().json, {"findings": []})
        self.assertEqual(self.call("GET", "/policies").json, {"policies": []})
        self.assertEqual(self.control("GET", "/_emulator/faults").json,
                         {"seed": 0, "default": {}, "operations": {}, "accounts": {},
                          "unassumable_roles": [], "session_seconds": None})

    def test_fault_configuration_is_validated(self):
        for config in ({"default": {"throttle_rat": 1}},
                       {"operations": {"GetPolicyy": {}}},
                       {"default": {"error_rate": 1.5}},
                       {"default": {"throttle_rate": 0.6, "error_rate": 0.6}},
                       {"default": {"stall_rate": 0.5}},
                       {"default": {"stall_rate": 0.5, "stall_ms": 10, "stall_action": "hang"}},
                       {"default": {"latency_ms": -1}},
                       {"seed": "x"},
                       {"defaults": {}},
                       {"accounts": {"12345": {}}},
                       {"accounts": {A: {"operations": {"GetPolicyy": {}}}}},
                       {"accounts": {A: {"seed": 1}}},
                       {"unassumable_roles": "arn:aws:iam::111111111111:role/x"},
                       {"session_seconds": 0}):
            response = self.control("POST", "/_emulator/faults", config)
            self.assertEqual(response.status, 400, config)
            self.assertIn("message", response.json)
        config = {"seed": 7, "default": {"latency_ms": 1},
                  "operations": {"GetPolicy": {"throttle_rate": 0.5}},
                  "accounts": {A: {"default": {"error_rate": 0.5}}},
                  "unassumable_roles": [role_arn(B)], "session_seconds": 900}
        self.set_faults(config)
        self.assertEqual(self.control("GET", "/_emulator/faults").json, config)
        self.assertEqual(self.control("GET", "/_emulator/nothing").status, 404)

    # --- faults ------------------------------------------------------------------------------

    def test_throttle_and_error_faults(self):
        self.set_faults({"seed": 1, "operations": {"GetPolicy": {"throttle_rate": 1.0},
                                                   "ListPolicies": {"error_rate": 1.0}}})
        self.assert_aws_error(self.call("GET", "/policies/x"), 400, "ThrottlingException")
        self.assert_aws_error(self.call("GET", "/policies"), 500, "InternalFailureException")
        self.assertEqual(self.call("POST", "/policies/x", {"policyDocument": DOCUMENT}).status, 200)
        self.assertEqual(self.control("GET", "/_emulator/requests").status, 200)
        log = self.request_log()
        self.assertEqual([(r["operation"], r["status"], r["fault"]) for r in log["requests"]],
                         [("GetPolicy", 400, "throttle"), ("ListPolicies", 500, "error"),
                          ("CreatePolicy", 200, None)])
        self.assertEqual(log["faults"], {**NO_FAULTS, "throttle": 1, "error": 1})

    def test_latency(self):
        self.set_faults({"operations": {"ListAuditFindings": {"latency_ms": 300}}})
        started = time.monotonic()
        self.assertEqual(self.list_findings().status, 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.3)

    def test_rate_cap_lets_rate_per_sec_through(self):
        rate = 20
        self.set_faults({"operations": {"ListAuditFindings": {"rate_per_sec": rate, "burst": 1}}})
        statuses, lock = [], threading.Lock()
        deadline = time.monotonic() + 1.5

        def client():
            while time.monotonic() < deadline:
                response = self.list_findings()
                if response.status != 200:
                    self.assert_aws_error(response, 400, "ThrottlingException")
                with lock:
                    statuses.append(response.status)

        started = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        passed = statuses.count(200)
        self.assertGreater(statuses.count(400), passed, "the clients must outrun the cap")
        self.assertLessEqual(passed, 1 + rate * elapsed + 1)
        self.assertGreaterEqual(passed, 0.7 * rate * elapsed)
        self.assertEqual(self.request_log()["faults"]["rate_limited"], statuses.count(400))

        # A rate in "default" gives every operation a bucket of its own.
        self.set_faults({"default": {"rate_per_sec": 0.1, "burst": 2}})
        self.assertEqual([self.list_findings().status for _ in range(3)], [200, 200, 400])
        self.assertEqual([self.call("GET", "/policies").status for _ in range(3)], [200, 200, 400])

    def test_stall_then_answer_or_drop(self):
        self.set_faults({"operations": {"GetPolicy": {"stall_rate": 1, "stall_ms": 800}}})
        with self.assertRaises(OSError):   # the client's timeout (URLError or TimeoutError)
            self.call("GET", "/policies/x", timeout=0.3)
        entry = self.request_log()["requests"][0]
        self.assertEqual((entry["fault"], entry["status"]), ("stall", None))
        for _ in range(50):                # then the request goes on to moto and is answered
            if self.request_log()["requests"][0]["status"] is not None:
                break
            time.sleep(0.1)
        self.assertEqual(self.request_log()["requests"][0]["status"], 404)

        self.set_faults({"operations": {"GetPolicy": {"stall_rate": 1, "stall_ms": 50,
                                                      "stall_action": "drop"}}})
        with self.assertRaises((OSError, http.client.HTTPException)):
            self.call("GET", "/policies/x")
        entry = self.request_log()["requests"][-1]
        self.assertEqual((entry["fault"], entry["status"]), ("stall", None))

    def test_concurrent_forwarding(self):
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda _: self.call("GET", "/policies/x").status, range(200)))
        elapsed = time.monotonic() - started
        self.assertEqual(statuses, [404] * 200)
        self.assertLess(elapsed, 10, f"200 requests took {elapsed:.1f} s")
        self.assertGreater(self.request_log()["maxInFlight"], 1)


class LifecycleTest(unittest.TestCase):
    def test_port_file_and_exit_on_stdin_eof(self):
        with tempfile.TemporaryDirectory() as tmp:
            port_file = os.path.join(tmp, "endpoint")
            proc, url = start_emulator("--port-file", port_file)
            with open(port_file) as f:
                self.assertEqual(f.read().strip(), url)
            proc.stdin.close()
            self.assertEqual(proc.wait(timeout=10), 0)
            self.assertEqual(proc.stdout.read(), b"", "stdout holds only the READY line")
            proc.stdout.close()
            self.assertFalse(os.path.exists(port_file))

    def test_exits_on_sigterm(self):
        proc, _ = start_emulator()
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=10), 0)
        proc.stdin.close()
        proc.stdout.close()


if __name__ == "__main__":
    unittest.main()
