"""Schemathesis hooks for scripts/schemathesis.sh: destructive key operations
act on throwaway keys, never on the key the run authenticates with.

The run's own key (LATCHKEY_KEY, id LATCHKEY_KEY_ID) must keep working from
the first request to the last. Revoking, deleting, rolling or restricting it
(updateKey can set allowed_ips or an expiry) would turn every later answer
into 401/403 and hide the API behind it. So:

- revokeKey, deleteKey, rollKey, updateKey, upgradeKey and cloneKey aimed at
  the run's key are pointed at a fresh throwaway key instead (the stateful
  phase's links from createKey already give them keys the run created);
- upgradeKey aimed at anything but an imported legacy key is pointed at the
  next one not yet handed out (scripts/schemathesis.sh imports 60), so
  upgrades really happen; a legacy key upgraded twice is 409, as documented;
- revokeMe always authenticates with a fresh throwaway key (an auth
  provider: the run's key is given here, not on the command line).

The throwaway keys are made through the API itself (POST /api/v1/keys).

A few rules the server checks cannot be written in JSON Schema: a time that
must be in the future (`expires_at`), a CIDR range whose host bits must be
zero, an IMEI's Luhn check digit, an id in a body that must name an existing
client or customer (and, on a customer asset's update, its own customer), a
client or customer that must keep a name, business name, email or phone
after a change, and `after` needing `sort=updated_at`. The document states each in
prose; for requests schemathesis means to be valid (positive cases) this file
makes those values true before they are sent, so the check that valid
requests are accepted tests everything else. Invalid (negative) cases are
sent as generated.
"""

import ast
import datetime
import ipaddress
import json
import os
import threading
import urllib.error
import urllib.request
import uuid

import schemathesis

# CPython 3.11 keeps the AST constructor's recursion depth in shared state:
# two threads in `ast.parse` at once (Hypothesis parses its own source to
# describe lambdas; this run has two workers) can fail with "SystemError: AST
# constructor recursion depth mismatch" (python/cpython#106905, fixed in
# 3.12). One parse at a time.
_ast_parse = ast.parse
_ast_lock = threading.Lock()


def _serial_parse(*args, **kwargs):
    with _ast_lock:
        return _ast_parse(*args, **kwargs)


ast.parse = _serial_parse

BASE = os.environ["LATCHKEY_URL"]
KEY = os.environ["LATCHKEY_KEY"]
KEY_ID = os.environ["LATCHKEY_KEY_ID"]

# Imported legacy keys, for upgradeKey: each is handed out once.
with open(os.environ["LATCHKEY_LEGACY_IDS"]) as f:
    LEGACY = [line.strip() for line in f if line.strip()]
ALL_LEGACY = set(LEGACY)

ON_A_KEY = {"revokeKey", "deleteKey", "rollKey", "updateKey", "upgradeKey", "cloneKey"}


def throwaway():
    """A new key (id, secret), made with the run's key."""
    body = json.dumps(
        {"name": "schemathesis throwaway", "permissions": ["keys:read", "keys:write"]}
    ).encode()
    req = urllib.request.Request(
        BASE + "/api/v1/keys",
        data=body,
        method="POST",
        headers={"Authorization": "Bearer " + KEY, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        key = json.load(r)["key"]
    return key["id"], key["secret"]


def _call(method, path, body=None):
    req = urllib.request.Request(
        BASE + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": "Bearer " + KEY, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, None


_client_id = []


def existing_client_id(candidate):
    """`candidate` if it names a client, else one made for the run."""
    if isinstance(candidate, str) and candidate.isascii() and candidate.replace("_", "").isalnum():
        if _call("GET", "/api/v1/clients/" + candidate)[0] == 200:
            return candidate
    if not _client_id:
        status, body = _call("POST", "/api/v1/clients", {"business_name": "Schemathesis client"})
        assert status == 201, status
        _client_id.append(body["client"]["id"])
    return _client_id[0]


_customer_id = []


def existing_customer_id(candidate):
    """`candidate` if it names a RepairShopr-compatible customer, else one made for the run."""
    if isinstance(candidate, int) and not isinstance(candidate, bool) and 0 < candidate < 2**63:
        if _call("GET", "/api/v1/customers/%d" % candidate)[0] == 200:
            return candidate
    # Integer ids are easy to guess: rsDeleteCustomer may have deleted the one made before.
    if not _customer_id or _call("GET", "/api/v1/customers/%d" % _customer_id[0])[0] != 200:
        status, body = _call("POST", "/api/v1/customers", {"business_name": "Schemathesis customer"})
        assert status == 200, status
        _customer_id[:] = [body["customer"]["id"]]
    return _customer_id[0]


def future(value):
    try:
        t = datetime.datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return value
    if t.tzinfo is None:
        return value
    now = datetime.datetime.now(datetime.timezone.utc)
    if t > now + datetime.timedelta(minutes=1):
        return value
    return (now + datetime.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


def zero_host_bits(entry):
    if not isinstance(entry, str) or "/" not in entry:
        return entry
    try:
        return str(ipaddress.ip_network(entry, strict=False))
    except ValueError:
        return entry


def luhn(value):
    if not isinstance(value, str):
        return value
    digits = [int(c) for c in value if c.isdigit()]
    if len(digits) != 15:
        return value
    total = 0
    for i, d in enumerate(reversed(digits[:14])):
        total += (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 == 0 else d
    check = str((10 - total % 10) % 10)
    last = max(i for i, c in enumerate(value) if c.isdigit())
    return value[:last] + check + value[last + 1 :]


IDENTITY = ("first_name", "last_name", "business_name", "email", "phone")
RS_IDENTITY = ("firstname", "lastname", "business_name", "email", "phone")


def _blank(value):
    return value is None or (isinstance(value, str) and not value.strip())


def fresh_idempotency_key(case):
    """A retry with the same Idempotency-Key and body gets the first answer
    (24 h), even when what it made was deleted since: by design, but the
    stateful phase would then look for a resource that is gone. Each request
    gets its own key, kept valid (1-255 visible ASCII characters)."""
    headers = case.headers or {}
    for name in list(headers):
        value = headers[name]
        if name.lower() == "idempotency-key" and isinstance(value, str) and 0 < len(value) <= 255:
            if all("!" <= c <= "~" for c in value):
                headers[name] = value[:222] + "-" + uuid.uuid4().hex


def make_true(case, op):
    """Makes a positive case's unexpressible rules hold (see the top)."""
    fresh_idempotency_key(case)
    if case.query and "after" in case.query:
        case.query["sort"] = "updated_at"
    body = case.body if isinstance(case.body, dict) else None
    if body is None:
        return
    if isinstance(body.get("expires_at"), str):
        body["expires_at"] = future(body["expires_at"])
    if isinstance(body.get("allowed_ips"), list):
        body["allowed_ips"] = [zero_host_bits(e) for e in body["allowed_ips"]]
    if "imei" in body:
        body["imei"] = luhn(body["imei"])
    identity = {"updateClient": IDENTITY, "rsUpdateCustomer": RS_IDENTITY}.get(op)
    if identity and any(_blank(body[f]) for f in identity if f in body):
        if all(_blank(body[f]) for f in identity if f in body):
            # A change may not leave a client with no name, business name,
            # email or phone; which it has depends on earlier requests.
            body["business_name"] = "Schemathesis Ltd"
    if op in ("createOrder", "updateOrder", "addClientDevice") and isinstance(body.get("client_id"), str):
        body["client_id"] = existing_client_id(body["client_id"])
    if op in ("rsCreateTicket", "rsUpdateTicket", "rsCreateCustomerAsset") and "customer_id" in body:
        body["customer_id"] = existing_customer_id(body["customer_id"])
    if op == "rsUpdateCustomerAsset" and "customer_id" in body:
        # An asset stays with its customer: the only customer_id it takes is its own.
        asset = (case.path_parameters or {}).get("id")
        status, found = _call("GET", "/api/v1/customer_assets/%s" % asset)
        if status == 200:
            body["customer_id"] = found["customer_asset"]["customer_id"]
    if isinstance(body.get("properties"), dict) and "imei" in body["properties"]:
        body["properties"]["imei"] = luhn(body["properties"]["imei"])


def _positive(case):
    meta = getattr(case, "meta", None)
    try:
        return meta is not None and meta.generation.mode.is_positive
    except AttributeError:
        return False


def _operation_id(case):
    return case.operation.definition.raw.get("operationId")


@schemathesis.hook
def before_call(context, case, kwargs):
    op = _operation_id(case)
    if _positive(case):
        make_true(case, op)
    if op == "upgradeKey" and (case.path_parameters or {}).get("id") not in ALL_LEGACY and LEGACY:
        case.path_parameters["id"] = LEGACY.pop()
    elif op in ON_A_KEY and (case.path_parameters or {}).get("id") == KEY_ID:
        case.path_parameters["id"] = throwaway()[0]


@schemathesis.auth(refresh_interval=None).skip_for(operation_id="revokeMe")
class RunKey:
    """Every operation but revokeMe authenticates with the run's key."""

    def get(self, case, ctx):
        return KEY

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = "Bearer " + data


@schemathesis.auth(refresh_interval=None).apply_to(operation_id="revokeMe")
class ThrowawayKey:
    """revokeMe authenticates with a new throwaway key every time."""

    def get(self, case, ctx):
        return throwaway()[1]

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = "Bearer " + data
