"""The SubjectAccessReviews that decide an impersonation, and the identity that results — kube-apiserver's
legacy impersonation rules (peers.md §3.2), pure:

- user ``system:serviceaccount:<ns>:<name>`` with a valid namespace and name (as kube-apiserver's
  ``SplitUsername``; otherwise it is an ordinary user): ``impersonate`` on ``serviceaccounts`` ``<name>`` in ``<ns>``
  (core group); when no groups are asked, the target gets ``system:serviceaccounts`` and
  ``system:serviceaccounts:<ns>``;
- any other user: ``users`` (core); each group: ``groups`` (core); the uid: ``uids`` in
  ``authentication.k8s.io``; each extra value: ``userextras/<key>`` in ``authentication.k8s.io``.

Each review asks about the caller: its username, groups, uid and extras. They are listed in
kube-apiserver's order (user, groups, extras, uid), the order in which it stops at the first denial.

Only a JSON ``true`` in ``status.allowed`` allows (``allowed_by``), and never with ``status.denied`` true
(kube-apiserver's webhook authorizer reads both together as a denial): the string ``"false"`` is truthy
in Python and was read as an allow.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from kube_oidc_proxy.authn.model import SYSTEM_AUTHENTICATED, UserInfo
from kube_oidc_proxy.authz.requested import ImpersonationRequest
from kube_oidc_proxy.identity import reserved_extra_key

SA_PREFIX = "system:serviceaccount:"
# The extras that record who asked, as the Tremolo proxy names them (RBAC and audit tooling use these).
ORIGINAL_USER = "originaluser.jetstack.io-user"
ORIGINAL_GROUPS = "originaluser.jetstack.io-groups"
ORIGINAL_UID = "originaluser.jetstack.io-uid"
ORIGINAL_EXTRA = "originaluser.jetstack.io-extra"


@dataclass(frozen=True, slots=True)
class Attributes:
    """``resourceAttributes`` of one SubjectAccessReview (verb is always ``impersonate``)."""

    resource: str
    name: str
    group: str = ""
    subresource: str = ""
    namespace: str = ""

    def forbidden_message(self, caller: str) -> str:
        """kube-apiserver's wording for a denied impersonation."""
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        scope = f'in the namespace "{self.namespace}"' if self.namespace else "at the cluster scope"
        return (
            f'{resource} "{self.name}" is forbidden: User "{caller}" cannot impersonate resource '
            f'"{resource}" in API group "{self.group}" {scope}'
        )


_DNS1123_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def service_account(username: str) -> tuple[str, str] | None:
    """(namespace, name) when kube-apiserver reads ``username`` as a service account (serviceaccount.
    SplitUsername: a valid namespace and a valid name), else None: then it is an ordinary user."""
    if not username.startswith(SA_PREFIX):
        return None
    parts = username[len(SA_PREFIX) :].split(":")
    if len(parts) != 2:
        return None
    namespace, name = parts
    if len(namespace) > 63 or not _DNS1123_LABEL.fullmatch(namespace):
        return None
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(name):
        return None
    return namespace, name


def reviews_for(request: ImpersonationRequest) -> list[Attributes]:
    checks: list[Attributes] = []
    account = service_account(request.user)
    if account is not None:
        namespace, name = account
        checks.append(Attributes("serviceaccounts", name, namespace=namespace))
    else:
        checks.append(Attributes("users", request.user))
    checks += [Attributes("groups", group) for group in request.groups]
    for key, values in request.extra.items():
        checks += [Attributes("userextras", v, group="authentication.k8s.io", subresource=key) for v in values]
    if request.uid:
        checks.append(Attributes("uids", request.uid, group="authentication.k8s.io"))
    return checks


def allowed_by(answer: Any) -> bool:
    """Whether kube-apiserver's SubjectAccessReview answer allows: ``status.allowed`` exactly JSON true and
    ``status.denied`` not true. Anything else (``"false"``, ``1``, ``"true"``, null, missing, a ``status``
    that is not an object, ``denied`` of any other type) is a denial."""
    status = answer.get("status") if isinstance(answer, dict) else None
    if not isinstance(status, dict):
        return False
    return status.get("allowed") is True and status.get("denied", False) is False


def review_body(caller: UserInfo, attributes: Attributes) -> dict[str, Any]:
    groups = list(caller.groups)
    if SYSTEM_AUTHENTICATED not in groups:
        groups.append(SYSTEM_AUTHENTICATED)  # as kube-apiserver's authenticator adds it to every caller
    spec: dict[str, Any] = {
        "user": caller.username,
        "groups": groups,
        "resourceAttributes": {
            "verb": "impersonate",
            "group": attributes.group,
            "resource": attributes.resource,
            "subresource": attributes.subresource,
            "name": attributes.name,
            "namespace": attributes.namespace,
        },
    }
    if caller.uid:
        spec["uid"] = caller.uid
    if caller.extra:
        spec["extra"] = {k: list(v) for k, v in caller.extra.items()}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


def target_user(request: ImpersonationRequest, caller: UserInfo) -> UserInfo:
    """Who the request goes out as: the target, with the caller recorded in the originaluser extras."""
    groups = request.groups
    account = service_account(request.user)
    if not groups and account is not None:
        groups = ("system:serviceaccounts", f"system:serviceaccounts:{account[0]}")
    # requested.py refuses reserved keys; dropping them here too keeps the record the proxy's alone
    extra = {k: v for k, v in request.extra.items() if not reserved_extra_key(k)}
    extra[ORIGINAL_USER] = (caller.username,)
    if caller.groups:
        extra[ORIGINAL_GROUPS] = caller.groups
    if caller.uid:
        extra[ORIGINAL_UID] = (caller.uid,)
    if caller.extra:
        extra[ORIGINAL_EXTRA] = (json.dumps({k: list(v) for k, v in caller.extra.items()}, sort_keys=True),)
    return UserInfo(username=request.user, uid=request.uid, groups=groups, extra=extra)
