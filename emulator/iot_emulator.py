#!/usr/bin/env python3
"""A thin local AWS IoT endpoint: moto's server behind a front HTTP server.

The front server forwards every request to an in-process moto server untouched, except:
  * the Device Defender audit operations moto lacks are served from the emulator's own state:
    ListAuditFindings and DescribeAuditFinding from seeded findings, and audit suppressions
    (create, update, describe, list, delete), which a finding's isSuppressed reflects for
    audits that started after the suppression was made;
  * /_emulator/... is a test-control API: seed findings, reset, read the request log, set faults;
  * AWS operations can be given latency, throttling, 5xx errors, stalls and a per-operation
    request-rate cap (a token bucket standing in for the account's API quota).
The audit state is kept per account and region, as moto keeps its own: each request lands in
the account and region moto's own code finds for it (the access key id and the SigV4 scope).

Usage: iot_emulator.py [--port N] [--port-file PATH] [--exit-on-stdin-eof] [--verbose]
Prints exactly one line, "READY http://127.0.0.1:<port>", on stdout once both servers answer.
See emulator/README.md for the control API. Python standard library plus moto only.
"""

import argparse
import dataclasses
import http.client
import http.server
import json
import logging
import os
import random
import re
import secrets
import signal
import socketserver
import sys
import threading
import time
import types
import uuid
from collections import Counter
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit
from xml.sax.saxutils import escape

log = logging.getLogger("iot_emulator")

# Operation names by method and path, as the AWS IoT service model routes them.
_ROUTES = [
    (re.compile(r"/policies"), {"GET": "ListPolicies"}),
    (re.compile(r"/policies/([^/]+)"),
     {"GET": "GetPolicy", "POST": "CreatePolicy", "DELETE": "DeletePolicy"}),
    (re.compile(r"/policies/([^/]+)/version"),
     {"GET": "ListPolicyVersions", "POST": "CreatePolicyVersion"}),
    (re.compile(r"/policies/([^/]+)/version/([^/]+)"),
     {"GET": "GetPolicyVersion", "DELETE": "DeletePolicyVersion",
      "PATCH": "SetDefaultPolicyVersion"}),
    (re.compile(r"/audit/findings"), {"POST": "ListAuditFindings"}),
    (re.compile(r"/audit/findings/(?:[^/]+)"), {"GET": "DescribeAuditFinding"}),
    (re.compile(r"/audit/suppressions/create"), {"POST": "CreateAuditSuppression"}),
    (re.compile(r"/audit/suppressions/update"), {"PATCH": "UpdateAuditSuppression"}),
    (re.compile(r"/audit/suppressions/describe"), {"POST": "DescribeAuditSuppression"}),
    (re.compile(r"/audit/suppressions/list"), {"POST": "ListAuditSuppressions"}),
    (re.compile(r"/audit/suppressions/delete"), {"POST": "DeleteAuditSuppression"}),
    (re.compile(r"/policy-targets/([^/]+)"), {"POST": "ListTargetsForPolicy"}),
]
# STS AssumeRole (a query-protocol POST to /) is told apart by its body: the request log shows
# who assumed which role, and tests can make a role one that cannot be assumed.
OPERATIONS = sorted({op for _, by_method in _ROUTES for op in by_method.values()}
                    | {"AssumeRole", "Other"})
FAULT_KINDS = ("throttle", "error", "stall", "rate_limited", "expired", "denied")

# Headers that belong to one connection, not to the message (RFC 9110 7.6.1), plus Expect
# (the front server has already answered "100-continue") and Content-Length (recomputed, as
# bodies are read whole).
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
               "transfer-encoding", "upgrade", "expect", "content-length"}

LIST_FINDINGS_DEFAULT_PAGE = 25
LIST_FINDINGS_MAX_PAGE = 250

# Where a request lands when nothing says otherwise, as in moto.
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+")


def request_scope(headers, target):
    """((account, region), access key id) of a request: where it lands, by moto's own code
    (moto runs in this process), so that the audit state sits beside moto's policies of the
    same account and region. The account: MOTO_ACCOUNT_ID, else an x-moto-account-id header,
    else the access key id of the SigV4 credential (keys from moto's STS AssumeRole map to the
    role's account, any other to 123456789012). The region: an *.<region>.amazonaws.com host,
    else a region/<region> User-Agent part, else the SigV4 credential scope, else us-east-1."""
    from moto.core.responses import BaseResponse
    probe = BaseResponse()
    probe.headers = headers
    probe.querystring = parse_qs(urlsplit(target).query)
    try:
        region = probe.get_region_from_url(types.SimpleNamespace(headers=headers),
                                           f"http://{headers.get('Host', '')}{target}")
    except IndexError:     # a credential scope too short to name a region; moto refuses it too
        region = DEFAULT_REGION
    return (probe.get_current_account(), region), probe.get_access_key()


def session_expired(scope, access_key):
    """Whether the access key is one of moto's STS sessions and past its Expiration (moto
    itself accepts expired sessions; AWS does not)."""
    if not access_key.startswith("ASIA"):
        return False
    from moto.core.utils import utcnow
    from moto.sts.models import sts_backends
    from moto.utilities.utils import get_partition
    backend = sts_backends[scope[0]][get_partition(scope[1])]
    session = backend.get_assumed_role_from_access_key(access_key)
    return session is not None and session.expiration <= utcnow()


def assume_role_request(headers, body):
    """(RoleArn, RoleSessionName, ExternalId or None) of an STS AssumeRole request, else None."""
    if "/sts/aws4_request" not in headers.get("Authorization", ""):
        return None
    form = dict(parse_qsl(body.decode("utf-8", "replace")))
    if form.get("Action") != "AssumeRole":
        return None
    return form.get("RoleArn"), form.get("RoleSessionName"), form.get("ExternalId")


def classify(method, path):
    """Returns (operation, policyName, versionId) for a request; names are URL-decoded."""
    for pattern, by_method in _ROUTES:
        match = pattern.fullmatch(path)
        if match and method in by_method:
            names = [unquote(g) for g in match.groups()] + [None, None]
            return by_method[method], names[0], names[1]
    return "Other", None, None


class BadRequest(Exception):
    """A request the emulator refuses; answered as 400 with the message."""


class AwsError(Exception):
    """An AWS error answer of one of the emulator's own operations."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclasses.dataclass(frozen=True)
class FaultSpec:
    latency_ms: float = 0
    throttle_rate: float = 0
    error_rate: float = 0
    stall_rate: float = 0
    stall_ms: float = 0
    stall_action: str = "answer"   # after the stall: "answer" (forward, then answer) or "drop"
    rate_per_sec: float = 0        # 0 = no cap
    burst: float = 0               # token bucket size; 0 = one second's worth, at least 1

    @classmethod
    def parse(cls, fields, where):
        if not isinstance(fields, dict):
            raise BadRequest(f"{where}: a fault spec must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise BadRequest(f"{where}: unknown fault field(s) {unknown}; known: {sorted(known)}")
        for name, value in fields.items():
            if name == "stall_action":
                if value not in ("answer", "drop"):
                    raise BadRequest(f"{where}: stall_action must be \"answer\" or \"drop\"")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise BadRequest(f"{where}: {name} must be a number >= 0")
            elif name.endswith("_rate") and value > 1:
                raise BadRequest(f"{where}: {name} must be a probability in [0, 1]")
        spec = cls(**fields)
        if spec.throttle_rate + spec.error_rate + spec.stall_rate > 1:
            raise BadRequest(f"{where}: throttle_rate + error_rate + stall_rate must be <= 1")
        if spec.stall_rate and not spec.stall_ms:
            raise BadRequest(f"{where}: stall_rate needs stall_ms")
        if spec.burst and not spec.rate_per_sec:
            raise BadRequest(f"{where}: burst needs rate_per_sec")
        if spec.burst and spec.burst < 1:
            raise BadRequest(f"{where}: burst must be >= 1 (or 0 for the default)")
        return spec


class FaultConfig:
    """The parsed body of POST /_emulator/faults: a default spec, overridden field by field
    per operation; optionally, per account, a configuration of its own in place of that one."""

    def __init__(self, body):
        if not isinstance(body, dict):
            raise BadRequest("the fault configuration must be a JSON object")
        known = ("seed", "default", "operations", "accounts", "unassumable_roles",
                 "session_seconds")
        unknown = sorted(set(body) - set(known))
        if unknown:
            raise BadRequest(f"unknown key(s) {unknown}; known: {', '.join(known)}")
        self.seed = body.get("seed", 0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise BadRequest("seed must be an integer")
        self.specs = _parse_specs(body.get("default", {}), body.get("operations", {}), "")
        accounts = body.get("accounts", {})
        if not isinstance(accounts, dict):
            raise BadRequest("accounts must be an object keyed by account id")
        self.by_account = {}
        for account, config in accounts.items():
            where = f"accounts.{account}"
            if not _ACCOUNT_ID.fullmatch(account):
                raise BadRequest(f"accounts: {account!r} is not a 12-digit account id")
            if not isinstance(config, dict) or set(config) - {"default", "operations"}:
                raise BadRequest(f"{where}: expected an object with default and/or operations")
            self.by_account[account] = _parse_specs(
                config.get("default", {}), config.get("operations", {}), f"{where}.")
        self.unassumable_roles = body.get("unassumable_roles", [])
        if not (isinstance(self.unassumable_roles, list)
                and all(isinstance(arn, str) for arn in self.unassumable_roles)):
            raise BadRequest("unassumable_roles must be a list of role ARNs")
        self.session_seconds = body.get("session_seconds")
        if self.session_seconds is not None and (
                isinstance(self.session_seconds, bool)
                or not isinstance(self.session_seconds, (int, float))
                or self.session_seconds <= 0):
            raise BadRequest("session_seconds must be a number > 0")
        self.body = {"seed": self.seed, "default": body.get("default", {}),
                     "operations": body.get("operations", {}), "accounts": accounts,
                     "unassumable_roles": self.unassumable_roles,
                     "session_seconds": self.session_seconds}

    def spec_for(self, account, operation):
        default, by_operation = self.by_account.get(account, self.specs)
        return by_operation.get(operation, default)


def _parse_specs(default, operations, where):
    """(the default spec, {operation: spec merged over the default}) of one configuration."""
    if not isinstance(operations, dict):
        raise BadRequest(f"{where}operations must be an object keyed by operation name")
    default_spec = FaultSpec.parse(default, f"{where}default")
    by_operation = {}
    for op, fields in operations.items():
        if op not in OPERATIONS:
            raise BadRequest(f"{where}operations: unknown operation {op!r}; known: {OPERATIONS}")
        if not isinstance(fields, dict):
            raise BadRequest(f"{where}operations.{op}: a fault spec must be a JSON object")
        by_operation[op] = FaultSpec.parse({**default, **fields}, f"{where}operations.{op}")
    return default_spec, by_operation


def generate_findings(gen):
    """Expands the compact generator form of POST /_emulator/findings."""
    if not isinstance(gen, dict):
        raise BadRequest("generate must be a JSON object")
    fields = {"taskId": None, "checkName": "IOT_POLICY_OVERLY_PERMISSIVE_CHECK",
              "policyNamePrefix": "WS_AUDIT_P", "count": None, "versionId": "1", "start": 0,
              "isSuppressed": False}
    unknown = sorted(set(gen) - set(fields))
    if unknown:
        raise BadRequest(f"generate: unknown key(s) {unknown}; known: {sorted(fields)}")
    g = {**fields, **gen}
    for name in ("taskId", "checkName", "policyNamePrefix", "versionId"):
        if not isinstance(g[name], str):
            raise BadRequest(f"generate.{name} must be a string")
    for name in ("count", "start"):
        if isinstance(g[name], bool) or not isinstance(g[name], int) or g[name] < 0:
            raise BadRequest(f"generate.{name} must be an integer >= 0")
    if not isinstance(g["isSuppressed"], bool):
        raise BadRequest("generate.isSuppressed must be a boolean")
    now = round(time.time(), 3)
    return [{
        "findingId": uuid.uuid4().hex,
        "taskId": g["taskId"],
        "checkName": g["checkName"],
        "taskStartTime": now,
        "findingTime": now,
        "severity": "CRITICAL",
        "nonCompliantResource": {
            "resourceType": "IOT_POLICY",
            "resourceIdentifier": {"policyVersionIdentifier": {
                "policyName": f"{g['policyNamePrefix']}{i:05d}",
                "policyVersionId": g["versionId"]}},
        },
        "relatedResources": [],
        "reasonForNonCompliance": "Policy allows broad access to IoT data plane actions: "
                                  "[iot:Subscribe, iot:Connect, iot:Publish].",
        "reasonForNonComplianceCode": "ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS",
        "isSuppressed": g["isSuppressed"],
    } for i in range(g["start"], g["start"] + g["count"])]


class AuditState:
    """The Device Defender state of one account in one region (as AWS keeps it): seeded
    findings, suppressions and the page tokens issued. Callers hold the emulator's lock."""

    def __init__(self):
        self.findings = []
        self.page_tokens = {}        # nextToken -> (filters, offset), findings and suppressions
        # (checkName, resourceIdentifier as sorted JSON) -> the suppression as the API shows
        # it, plus "createdAt" (epoch seconds), which decides the findings it covers.
        self.suppressions = {}

    def list_findings(self, request, _path):
        """ListAuditFindings over the seeded findings; raises BadRequest as the API's
        InvalidRequestException."""
        page_size = _page_size(request)
        for name in ("taskId", "checkName"):
            if name in request and not isinstance(request[name], str):
                raise BadRequest(f"{name} must be a string")
        suppressed = request.get("listSuppressedFindings")
        if suppressed is not None and not isinstance(suppressed, bool):
            raise BadRequest("listSuppressedFindings must be a boolean")
        # startTime/endTime are not modelled: the seeded findings are all "in range".
        filters = (request.get("taskId"), request.get("checkName"), suppressed,
                   json.dumps(request.get("resourceIdentifier"), sort_keys=True))
        offset = self._page_offset(request.get("nextToken"), filters)
        shown = [self._as_reported(f) for f in self.findings]
        matching = [f for f in shown if _finding_matches(f, request, suppressed)]
        return self._page("findings", matching, offset, page_size, filters)

    def _as_reported(self, finding):
        """A finding as the API reports it: `isSuppressed` is also true when a suppression of
        its check and resource existed, unexpired, when its audit started (so findings of
        audits that ran before the suppression was made keep what they had)."""
        if finding.get("isSuppressed"):
            return finding
        resource = (finding.get("nonCompliantResource") or {}).get("resourceIdentifier")
        found = self.suppressions.get(_suppression_key(finding.get("checkName"), resource))
        started = finding.get("taskStartTime")
        if found is None or not isinstance(started, (int, float)):
            return finding
        covers = found["createdAt"] <= started and (
            found.get("suppressIndefinitely") or started < found.get("expirationDate", 0))
        return {**finding, "isSuppressed": True} if covers else finding

    def describe_finding(self, _request, path):
        finding_id = unquote(path.rsplit("/", 1)[1])
        for finding in self.findings:
            if finding.get("findingId") == finding_id:
                return {"finding": self._as_reported(finding)}
        raise AwsError(404, "ResourceNotFoundException",
                       f"No audit finding with id {finding_id} exists.")

    def create_suppression(self, request, _path):
        key = _suppression_key(*_check_and_resource(request))
        fields = _suppression_fields(request, creating=True)
        if key in self.suppressions:
            raise AwsError(409, "ResourceAlreadyExistsException",
                           "The suppression already exists.")
        self.suppressions[key] = {"checkName": request["checkName"],
                                  "resourceIdentifier": request["resourceIdentifier"],
                                  **fields, "createdAt": time.time()}
        return {}

    def update_suppression(self, request, _path):
        key = _suppression_key(*_check_and_resource(request))
        fields = _suppression_fields(request, creating=False)
        found = self._suppression(key)
        if "expirationDate" in fields:
            found.pop("suppressIndefinitely", None)
        if fields.get("suppressIndefinitely"):
            found.pop("expirationDate", None)
        found.update(fields)
        return {}

    def describe_suppression(self, request, _path):
        return _shown(self._suppression(_suppression_key(*_check_and_resource(request))))

    def delete_suppression(self, request, _path):
        key = _suppression_key(*_check_and_resource(request))
        self._suppression(key)
        del self.suppressions[key]
        return {}

    def list_suppressions(self, request, _path):
        page_size = _page_size(request)
        filters = ("suppressions", request.get("checkName"),
                   json.dumps(request.get("resourceIdentifier"), sort_keys=True),
                   request.get("ascendingOrder", True))
        offset = self._page_offset(request.get("nextToken"), filters)
        matching = [_shown(found) for found in self.suppressions.values()
                    if request.get("checkName") in (None, found["checkName"])
                    and request.get("resourceIdentifier") in
                    (None, found["resourceIdentifier"])]
        if not request.get("ascendingOrder", True):
            matching.reverse()
        return self._page("suppressions", matching, offset, page_size, filters)

    def _page(self, key, matching, offset, page_size, filters):
        """One page of `matching`, with a token for the next one when more follow."""
        response = {key: matching[offset:offset + page_size]}
        if offset + page_size < len(matching):
            next_token = secrets.token_urlsafe(24)
            self.page_tokens[next_token] = (filters, offset + page_size)
            response["nextToken"] = next_token
        return response

    def _page_offset(self, token, filters):
        """Where a page starts: 0, or where the token's page ended. A token is only valid in
        the account and region that issued it, as AWS's are."""
        if token is None:
            return 0
        issued = self.page_tokens.get(token)
        if issued is None:
            raise BadRequest("The nextToken is not valid.")
        if issued[0] != filters:
            raise BadRequest("The nextToken was issued for a different request.")
        return issued[1]

    def _suppression(self, key):
        found = self.suppressions.get(key)
        if found is None:
            raise AwsError(404, "ResourceNotFoundException", "The suppression does not exist.")
        return found


# The operations the emulator serves itself (the rest goes to moto), each called as
# (state, request body as a JSON object, path).
_SERVED = {
    "ListAuditFindings": AuditState.list_findings,
    "DescribeAuditFinding": AuditState.describe_finding,
    "CreateAuditSuppression": AuditState.create_suppression,
    "UpdateAuditSuppression": AuditState.update_suppression,
    "DescribeAuditSuppression": AuditState.describe_suppression,
    "ListAuditSuppressions": AuditState.list_suppressions,
    "DeleteAuditSuppression": AuditState.delete_suppression,
}


class Emulator:
    """All mutable state, guarded by one lock: the audit state of each account and region,
    faults, the request log."""

    def __init__(self, moto_host, moto_port):
        self.moto_host, self.moto_port = moto_host, moto_port
        self.lock = threading.Lock()
        # moto's SQS is not thread-safe: a delete rewrites the queue's message list from a copy,
        # so a send or another delete at the same moment is undone (a message lost, or a deleted
        # one back). SQS requests are served one at a time; they are short.
        self.sqs_lock = threading.Lock()
        self.epoch = time.monotonic()
        self._clear()

    def _clear(self):
        self.audit = {}              # (account, region) -> AuditState
        self._set_faults(FaultConfig({}))
        self._clear_log()

    def _set_faults(self, config):
        self.faults = config
        # One generator for every draw, so a run's sequence of faults follows from the seed
        # (exactly so when requests arrive one at a time).
        self.rng = random.Random(config.seed)
        # (account, region, operation) -> (tokens, monotonic time of last refill): IoT's
        # quotas are per account, region and operation.
        self.buckets = {}

    def _clear_log(self):
        self.requests = []
        self.in_flight = 0
        self.max_in_flight = 0

    def _state(self, scope):
        """The audit state of (account, region); call with the lock held."""
        if scope not in self.audit:
            self.audit[scope] = AuditState()
        return self.audit[scope]

    def now(self):
        return round(time.monotonic() - self.epoch, 6)

    # --- control API -------------------------------------------------------------------------

    def health(self):
        status, _, _ = self.moto_request("GET", "/moto-api/config")
        if not 200 <= status < 300:     # moto answers 201 here
            raise http.client.HTTPException(f"moto answered {status} to GET /moto-api/config")
        return {"status": "ok"}

    def warm_up(self):
        """moto builds its IoT backend on the first IoT request (about 0.5 s); pay that before
        READY, so no test's first call runs into its client timeout. moto picks the service and
        region from the SigV4 credential scope and checks no signature."""
        scope = "Credential=warm-up/20240101/us-east-1/iot/aws4_request"
        self.moto_request("GET", "/policies", [
            ("Authorization", f"AWS4-HMAC-SHA256 {scope}, SignedHeaders=host, Signature=0")])

    def reset(self):
        self.moto_request("POST", "/moto-api/reset")
        with self.lock:
            self._clear()
        return {"status": "ok"}

    def add_findings(self, body):
        if not isinstance(body, dict) or not ({"findings", "generate"} & set(body)):
            raise BadRequest('expected {"findings": [...]} and/or {"generate": {...}}')
        unknown = sorted(set(body) - {"findings", "generate", "account", "region"})
        if unknown:
            raise BadRequest(f"unknown key(s) {unknown}; known: findings, generate, account, "
                             "region")
        scope = (body.get("account", DEFAULT_ACCOUNT), body.get("region", DEFAULT_REGION))
        if not (isinstance(scope[0], str) and _ACCOUNT_ID.fullmatch(scope[0])):
            raise BadRequest("account must be a 12-digit account id (a string)")
        if not (isinstance(scope[1], str) and _REGION.fullmatch(scope[1])):
            raise BadRequest("region must be a region name such as eu-west-1")
        added = []
        if "findings" in body:
            if not isinstance(body["findings"], list) or not all(
                    isinstance(f, dict) for f in body["findings"]):
                raise BadRequest("findings must be a list of AuditFinding objects")
            added += body["findings"]
        if "generate" in body:
            added += generate_findings(body["generate"])
        with self.lock:
            state = self._state(scope)
            state.findings += added
            return {"added": len(added), "total": len(state.findings)}

    def set_faults(self, body):
        config = FaultConfig(body)
        with self.lock:
            self._set_faults(config)
        return config.body

    def request_log(self):
        with self.lock:
            requests = [dict(entry) for entry in self.requests]
            max_in_flight = self.max_in_flight
        faults = Counter(entry["fault"] for entry in requests if entry["fault"])
        return {
            "requests": requests,
            "counts": dict(Counter(entry["operation"] for entry in requests)),
            "faults": {kind: faults[kind] for kind in FAULT_KINDS},
            "maxInFlight": max_in_flight,
        }

    def clear_log(self):
        with self.lock:
            in_flight = self.in_flight
            self._clear_log()
            # Requests still being served finish into entries no longer listed; keep counting
            # them so maxInFlight stays right.
            self.in_flight = self.max_in_flight = in_flight
        return {"status": "ok"}

    # --- AWS operations ----------------------------------------------------------------------

    def begin(self, operation, method, path, policy_name, version_id, scope):
        entry = {"operation": operation, "method": method, "path": path, "status": None,
                 "fault": None, "policyName": policy_name, "versionId": version_id,
                 "account": scope[0], "region": scope[1], "start": self.now(), "end": None}
        with self.lock:
            self.requests.append(entry)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return entry

    def finish(self, entry, status):
        with self.lock:
            entry["status"] = status
            entry["end"] = self.now()
            self.in_flight -= 1

    def draw_fault(self, scope, operation, spec):
        """Decides the fault for one request: the rate cap of its account, region and
        operation first, then one uniform draw that picks throttle, error or stall by their
        probabilities."""
        with self.lock:
            draw = self.rng.random()
            if spec.rate_per_sec:
                capacity = spec.burst or max(1, spec.rate_per_sec)
                now = time.monotonic()
                bucket = (*scope, operation)
                tokens, last = self.buckets.get(bucket, (capacity, now))
                tokens = min(capacity, tokens + (now - last) * spec.rate_per_sec)
                limited = tokens < 1
                self.buckets[bucket] = (tokens if limited else tokens - 1, now)
                if limited:
                    return "rate_limited"
        if draw < spec.throttle_rate:
            return "throttle"
        if draw < spec.throttle_rate + spec.error_rate:
            return "error"
        if draw < spec.throttle_rate + spec.error_rate + spec.stall_rate:
            return "stall"
        return None

    def serve_audit(self, scope, operation, path, body):
        """One of the Device Defender operations moto lacks, on the state of the request's
        account and region; raises BadRequest or AwsError as the API answers them."""
        request = _json_object(body)
        with self.lock:
            return _SERVED[operation](self._state(scope), request, path)

    # --- moto --------------------------------------------------------------------------------

    def moto_request(self, method, target, headers=(), body=None):
        """One request to moto; returns (status, headers, body) with hop-by-hop headers
        removed. A fresh connection each time: moto's server (werkzeug's) answers every
        request with "Connection: close", so a kept connection would never be reused."""
        conn = http.client.HTTPConnection(self.moto_host, self.moto_port, timeout=120)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            conn.endheaders(body or None)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        kept = [(n, v) for n, v in response.getheaders() if n.lower() not in _HOP_BY_HOP]
        return response.status, kept, data


def _page_size(request):
    page_size = request.get("maxResults", LIST_FINDINGS_DEFAULT_PAGE)
    if (isinstance(page_size, bool) or not isinstance(page_size, int)
            or not 1 <= page_size <= LIST_FINDINGS_MAX_PAGE):
        raise BadRequest(f"maxResults must be between 1 and {LIST_FINDINGS_MAX_PAGE}")
    return page_size


def _check_and_resource(request):
    if not isinstance(request.get("checkName"), str):
        raise BadRequest("checkName must be a string")
    if not isinstance(request.get("resourceIdentifier"), dict):
        raise BadRequest("resourceIdentifier must be an object")
    return request["checkName"], request["resourceIdentifier"]


def _suppression_key(check_name, resource):
    return check_name, json.dumps(resource, sort_keys=True)


def _suppression_fields(request, creating):
    """The fields a create or update sets, validated as the API does."""
    fields = {}
    if "expirationDate" in request:
        if isinstance(request["expirationDate"], bool) or not isinstance(
                request["expirationDate"], (int, float)):
            raise BadRequest("expirationDate must be a timestamp (epoch seconds)")
        fields["expirationDate"] = request["expirationDate"]
    if "suppressIndefinitely" in request:
        if not isinstance(request["suppressIndefinitely"], bool):
            raise BadRequest("suppressIndefinitely must be a boolean")
        fields["suppressIndefinitely"] = request["suppressIndefinitely"]
    if "description" in request:
        if not isinstance(request["description"], str) or len(request["description"]) > 1000:
            raise BadRequest("description must be a string of at most 1000 characters")
        fields["description"] = request["description"]
    token = request.get("clientRequestToken")
    if creating and not (isinstance(token, str) and re.fullmatch(r"[a-zA-Z0-9-_]{1,64}", token)):
        raise BadRequest("clientRequestToken must be 1 to 64 of [a-zA-Z0-9-_]")
    if creating and not (fields.get("suppressIndefinitely") or "expirationDate" in fields):
        raise BadRequest("a suppression needs expirationDate or suppressIndefinitely")
    return fields


def _shown(suppression):
    """A suppression as the API returns it (without the emulator's own bookkeeping)."""
    return {k: v for k, v in suppression.items() if k != "createdAt"}


def _finding_matches(finding, request, suppressed):
    if "taskId" in request and finding.get("taskId") != request["taskId"]:
        return False
    if "checkName" in request and finding.get("checkName") != request["checkName"]:
        return False
    if suppressed is not None and bool(finding.get("isSuppressed", False)) != suppressed:
        return False
    if "resourceIdentifier" in request:
        resource = finding.get("nonCompliantResource") or {}
        return resource.get("resourceIdentifier") == request["resourceIdentifier"]
    return True


def _json_object(body):
    try:
        request = json.loads(body or b"{}")
    except ValueError as e:
        raise BadRequest(f"request body is not JSON: {e}") from None
    if not isinstance(request, dict):
        raise BadRequest("request body must be a JSON object")
    return request


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"    # keep-alive towards clients: every answer has a length
    server_version = "iot-emulator"
    # Headers and body go out in separate writes; with Nagle's algorithm on, the body waits for
    # the client's delayed ACK (40 ms per request on Linux).
    disable_nagle_algorithm = True

    def do_GET(self):
        self.answered = None    # status of the answer sent (or being sent); None: no answer
        started = time.monotonic()
        path = urlsplit(self.path).path
        served = "control"
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                self.close_connection = True
                self.send_json(411, {"message": "chunked request bodies are not supported"})
            elif path.startswith("/_emulator/"):
                self.control(path, self.read_body())
            elif path.startswith("/moto-api/"):
                served = "moto-api"
                self.forward(self.read_body())
            else:
                served = self.aws_operation(path, self.read_body())
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (typically a timeout during a stall); nothing left to answer.
            self.close_connection = True
        log.info("%s %s -> %s %s %.1f ms", self.command, self.path, self.answered, served,
                 (time.monotonic() - started) * 1000)

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    @property
    def emulator(self):
        return self.server.emulator

    def read_body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def aws_operation(self, path, body):
        """Serves one AWS operation with its faults; returns a description for the log."""
        operation, policy_name, version_id = classify(self.command, path)
        role = assume_role_request(self.headers, body) if operation == "Other" else None
        if role:
            operation = "AssumeRole"
        scope, access_key = request_scope(self.headers, self.path)
        entry = self.emulator.begin(operation, self.command, path, policy_name, version_id,
                                    scope)
        if role:
            entry["roleArn"], entry["roleSessionName"], external_id = role
            if external_id is not None:
                entry["externalId"] = external_id
        fault = None
        try:
            faults = self.emulator.faults     # one configuration for the whole request
            spec = faults.spec_for(scope[0], operation)
            if spec.latency_ms:
                time.sleep(spec.latency_ms / 1000)
            fault = self.emulator.draw_fault(scope, operation, spec)
            if not fault and session_expired(scope, access_key):
                fault = "expired"
            elif not fault and role and role[0] in faults.unassumable_roles:
                fault = "denied"
            entry["fault"] = fault
            if fault == "expired":
                self.send_aws_error(403, "ExpiredTokenException",
                                    "The security token included in the request is expired")
            elif fault == "denied":
                self.send_aws_error(403, "AccessDenied", f"Account {scope[0]} is not authorized "
                                    f"to perform: sts:AssumeRole on resource: {role[0]}")
            elif fault in ("throttle", "rate_limited"):
                self.send_aws_error(400, "ThrottlingException", "Rate exceeded.")
            elif fault == "error":
                self.send_aws_error(500, "InternalFailureException",
                                    "An unexpected error has occurred.")
            elif fault == "stall" and spec.stall_action == "drop":
                time.sleep(spec.stall_ms / 1000)
                self.close_connection = True       # close without an answer
            else:
                if fault == "stall":
                    time.sleep(spec.stall_ms / 1000)
                if operation in _SERVED:
                    self.serve(scope, operation, path, body)
                elif operation == "ListTargetsForPolicy":
                    self.list_targets_for_policy(body)
                else:
                    self.forward(body)
        finally:
            self.emulator.finish(entry, self.answered)
        return f"{operation} fault={fault}" if fault else operation

    def serve(self, scope, operation, path, body):
        """One of the Device Defender operations moto lacks, served from the emulator's state."""
        try:
            response = self.emulator.serve_audit(scope, operation, path, body)
        except BadRequest as e:
            self.send_aws_error(400, "InvalidRequestException", str(e))
        except AwsError as e:
            self.send_aws_error(e.status, e.code, e.message)
        else:
            self.send_json(200, response, [("x-amzn-RequestId", str(uuid.uuid4()))])

    def list_targets_for_policy(self, body):
        """moto answers ListTargetsForPolicy with every target and ignores pageSize and marker;
        the page is cut here as the API does (pageSize 1 to 250; the marker is the offset)."""
        query = dict(parse_qsl(urlsplit(self.path).query))
        try:
            page_size = int(query.get("pageSize", LIST_FINDINGS_MAX_PAGE))
            offset = int(query.get("marker") or 0)
        except ValueError:
            self.send_aws_error(400, "InvalidRequestException", "pageSize and marker are numbers")
            return
        if not 1 <= page_size <= LIST_FINDINGS_MAX_PAGE or offset < 0:
            self.send_aws_error(400, "InvalidRequestException",
                                f"pageSize must be between 1 and {LIST_FINDINGS_MAX_PAGE}")
            return
        headers = [(n, v) for n, v in self.headers.items() if n.lower() not in _HOP_BY_HOP]
        if body:
            headers.append(("Content-Length", str(len(body))))
        status, response_headers, data = self.emulator.moto_request(
            self.command, self.path, headers, body)
        if status != 200:
            self.send(status, response_headers, data)
            return
        targets = json.loads(data).get("targets", [])
        answer = {"targets": targets[offset:offset + page_size]}
        if offset + page_size < len(targets):
            answer["nextMarker"] = str(offset + page_size)
        self.send_json(200, answer, [("x-amzn-RequestId", str(uuid.uuid4()))])

    def forward(self, body):
        headers = [(n, v) for n, v in self.headers.items() if n.lower() not in _HOP_BY_HOP]
        if body:
            headers.append(("Content-Length", str(len(body))))
        try:
            if self.is_sqs():
                with self.emulator.sqs_lock:
                    answer = self.emulator.moto_request(self.command, self.path, headers, body)
            else:
                answer = self.emulator.moto_request(self.command, self.path, headers, body)
            status, response_headers, data = answer
        except (OSError, http.client.HTTPException) as e:
            log.error("moto did not answer %s %s: %r", self.command, self.path, e)
            self.send_json(502, {"message": f"moto did not answer: {e!r}"})
        else:
            self.send(status, response_headers, data)

    def is_sqs(self):
        """An SQS request, by its signing scope (every SDK signs) or its JSON-protocol target."""
        return ("/sqs/aws4_request" in self.headers.get("Authorization", "")
                or self.headers.get("X-Amz-Target", "").startswith("AmazonSQS."))

    def control(self, path, body):
        em = self.emulator
        routes = {
            ("GET", "/_emulator/health"): lambda _: em.health(),
            ("POST", "/_emulator/findings"): em.add_findings,
            ("POST", "/_emulator/reset"): lambda _: em.reset(),
            ("GET", "/_emulator/requests"): lambda _: em.request_log(),
            ("DELETE", "/_emulator/requests"): lambda _: em.clear_log(),
            ("GET", "/_emulator/faults"): lambda _: em.faults.body,
            ("POST", "/_emulator/faults"): em.set_faults,
        }
        action = routes.get((self.command, path.rstrip("/")))
        if action is None:
            self.send_json(404, {"message": f"no control endpoint {self.command} {path}"})
            return
        try:
            request = json.loads(body or b"{}")
        except ValueError as e:
            self.send_json(400, {"message": f"request body is not JSON: {e}"})
            return
        try:
            answer = action(request)
        except BadRequest as e:
            self.send_json(400, {"message": str(e)})
        except (OSError, http.client.HTTPException) as e:
            self.send_json(503, {"message": f"moto did not answer: {e!r}"})
        else:
            self.send_json(200, answer)

    # --- answers -----------------------------------------------------------------------------

    def send_aws_error(self, status, code, message):
        """An error as AWS services (and moto) send it. restJson1 (IoT) and awsJson (SQS): the
        SDK takes the code from the x-amzn-ErrorType header (the body's __type is the
        fallback). A form-encoded request is of the query protocol (STS, SNS): an XML
        ErrorResponse."""
        request_id = str(uuid.uuid4())
        if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            party = "Receiver" if status >= 500 else "Sender"
            body = (f"<ErrorResponse><Error><Type>{party}</Type><Code>{escape(code)}</Code>"
                    f"<Message>{escape(message)}</Message></Error>"
                    f"<RequestId>{request_id}</RequestId></ErrorResponse>")
            self.send(status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)],
                      body.encode())
            return
        self.send_json(status, {"__type": code, "message": message},
                       [("x-amzn-ErrorType", code), ("x-amzn-RequestId", request_id)])

    def send_json(self, status, obj, headers=()):
        self.send(status, [("Content-Type", "application/json"), *headers],
                  json.dumps(obj).encode())

    def send(self, status, headers, body):
        self.answered = status
        # send_response_only: forwarded answers already carry moto's Server and Date headers.
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format, *args):
        log.debug(format, *args)


class FrontServer(http.server.ThreadingHTTPServer):
    daemon_threads = True            # a stalled request must not hold up shutdown
    request_queue_size = 128         # clients open many connections at once under load

    def __init__(self, address, emulator):
        self.emulator = emulator
        super().__init__(address, Handler)

    def server_bind(self):
        # HTTPServer.server_bind resolves the host name (socket.getfqdn), which can stall on a
        # machine without DNS; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            log.debug("connection from %s ended: %r", client_address, sys.exc_info()[1])
        else:
            log.exception("error while serving %s", client_address)


def _speed_up_moto_routing():
    """moto's server lists its own package directory (about 175 stat calls) twice for every
    request to find the backend; the list never changes while running, so compute it once."""
    from moto import backends
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


def _speed_up_moto_sqs():
    """moto's SQS (the fan-out queue of the tests and benchmark) works out the state of every
    message in the queue, each with a datetime computation, for every message it sends or
    receives: a receive checks each message's retention by recomputing all queue attributes,
    three scans of the queue each. At 10,000 jobs that is quadratic and the emulator, not the
    function, sets the pace. Same answers, cheaper: message visibility and delay from the
    epoch clock moto's own helper reads (`unix_time_millis` is `utcnow` minus the epoch), and
    the retention check from the one attribute it needs."""
    from moto.sqs import models

    def now_ms():
        return time.time() * 1000.0

    models.Message.visible = property(lambda self: now_ms() > self.visible_at)
    models.Message.delayed = property(lambda self: now_ms() < self.delayed_until)

    def is_message_valid_based_on_retention_period(self, queue_name, message):
        retention = int(self.get_queue(queue_name).message_retention_period)
        return retention + message.sent_timestamp / 1000 > time.time()

    models.SQSBackend.is_message_valid_based_on_retention_period = \
        is_message_valid_based_on_retention_period


def _cap_moto_sessions(emulator):
    """Sessions from moto's STS last at most the fault configuration's session_seconds, so
    that tests see credentials expire and renewed within seconds (moto, unlike STS, takes any
    DurationSeconds; the SDKs ask for an hour)."""
    from moto.sts import models
    assume_role = models.STSBackend.assume_role

    def capped(self, **kwargs):
        cap = emulator.faults.session_seconds
        if cap:
            kwargs["duration"] = min(kwargs["duration"], cap)
        return assume_role(self, **kwargs)

    models.STSBackend.assume_role = capped


def _wait_for_eof(stop):
    # os.read, not sys.stdin: a daemon thread blocked inside a buffered reader holds its lock,
    # and the interpreter aborts at exit when it cannot take that lock.
    while os.read(sys.stdin.fileno(), 65536):
        pass
    stop.set()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="front port (default 0: a free one)")
    parser.add_argument("--port-file", help="also write the endpoint URL to this file")
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="stop when stdin reaches end of file (the parent went away)")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    logging.basicConfig(stream=sys.stderr, format="iot_emulator: %(message)s",
                        level=logging.INFO if args.verbose else logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.ERROR)
    # stdout carries only the READY line; libraries that print (moto does) go to stderr.
    ready_out, sys.stdout = sys.stdout, sys.stderr

    stop = threading.Event()
    # The handler only records the signal: it runs on the main thread, and Event.set() there
    # would wait forever for the lock the same thread holds when the signal lands inside
    # stop.wait() (seen: a SIGTERM right after READY hung the process).
    signalled = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, _frame: signalled.append(signum))
    if args.exit_on_stdin_eof:
        threading.Thread(target=_wait_for_eof, args=(stop,), daemon=True, name="stdin").start()

    from moto.server import ThreadedMotoServer
    _speed_up_moto_routing()
    _speed_up_moto_sqs()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    emulator = Emulator(*moto.get_host_and_port())
    _cap_moto_sessions(emulator)
    emulator.warm_up()
    front = FrontServer(("127.0.0.1", args.port), emulator)
    # A short poll interval: shutdown() waits for the serving loop to look.
    threading.Thread(target=front.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                     name="front").start()

    url = f"http://127.0.0.1:{front.server_port}"
    # Through the front server to moto: both answer. (http.client, not urllib: no proxy
    # settings from the environment apply to loopback.)
    probe = http.client.HTTPConnection("127.0.0.1", front.server_port, timeout=30)
    probe.request("GET", "/_emulator/health")
    health = probe.getresponse()
    if health.status != 200:
        raise SystemExit(f"iot_emulator: not healthy: {health.status} {health.read()!r}")
    probe.close()
    if args.port_file:
        tmp = f"{args.port_file}.tmp"
        with open(tmp, "w") as f:
            f.write(url + "\n")
        os.replace(tmp, args.port_file)   # readers never see a half-written file
    print(f"READY {url}", file=ready_out, flush=True)

    # Polled, not waited on: see the signal handler above.
    while not (signalled or stop.is_set()):
        time.sleep(0.1)
    front.shutdown()
    front.server_close()
    moto.stop()
    if args.port_file:
        os.remove(args.port_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
