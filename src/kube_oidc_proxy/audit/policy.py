"""The audit Policy (audit.k8s.io/v1), with kube-apiserver's matching rules
(k8s.io/apiserver pkg/audit/policy/checker.go): the first rule that matches decides the level; a rule
matches when every field it sets matches — users, userGroups (any), verbs, and either resources (with
groups, ``*``, ``resource/*``, ``*/subresource`` and resourceNames) and namespaces (``""`` for cluster
scope) for resource requests, or nonResourceURLs (exact, ``*``, or a ``prefix*``) for the others. No
rule matching means level None. Pure: the file is parsed once, then only data is consulted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

import yaml

from kube_oidc_proxy.authn.model import UserInfo
from kube_oidc_proxy.requestinfo import RequestInfo

Level = Literal["None", "Metadata", "Request", "RequestResponse"]
LEVELS: Final[tuple[Level, ...]] = ("None", "Metadata", "Request", "RequestResponse")
STAGES: Final = frozenset({"RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"})
API_VERSIONS: Final = frozenset({"audit.k8s.io/v1", "audit.k8s.io/v1beta1"})


class PolicyError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class GroupResources:
    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    level: Level
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool | None = None

    def matches(self, user: UserInfo | None, info: RequestInfo) -> bool:
        if self.users and (user is None or user.username not in self.users):
            return False
        if self.user_groups and (user is None or not set(user.groups) & set(self.user_groups)):
            return False
        if self.verbs and info.verb not in self.verbs:
            return False
        if self.namespaces or self.resources:
            return self._matches_resource(info)
        if self.non_resource_urls:
            return not info.is_resource_request and any(_path_matches(info.path, s) for s in self.non_resource_urls)
        return True

    def _matches_resource(self, info: RequestInfo) -> bool:
        if not info.is_resource_request:
            return False
        if self.namespaces and info.namespace not in self.namespaces:
            return False
        if not self.resources:
            return True
        combined = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
        for gr in self.resources:
            if gr.group != info.api_group:
                continue
            if not gr.resources:
                return True
            if gr.resource_names and info.name not in gr.resource_names:
                continue
            for res in gr.resources:
                if res in (combined, "*"):
                    return True
                if info.subresource and res.startswith("*/") and res[2:] == info.subresource:
                    return True
                if res.endswith("/*") and res[:-2] == info.resource:
                    return True
        return False


def _path_matches(path: str, spec: str) -> bool:
    return spec in ("*", path) or (spec.endswith("*") and path.startswith(spec.rstrip("*")))


@dataclass(frozen=True, slots=True)
class Decision:
    level: Level
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False


NONE: Final = Decision("None")


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...] = ()
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False

    _decisions: tuple[Decision, ...] = field(init=False, repr=False, compare=False)  # one per rule

    def __post_init__(self) -> None:
        decisions = []
        for rule in self.rules:
            omit_fields = self.omit_managed_fields if rule.omit_managed_fields is None else rule.omit_managed_fields
            level_none = rule.level == "None"
            decisions.append(
                NONE if level_none else Decision(rule.level, self.omit_stages | rule.omit_stages, omit_fields)
            )
        object.__setattr__(self, "_decisions", tuple(decisions))  # a request must not build its own

    def decide(self, user: UserInfo | None, info: RequestInfo) -> Decision:
        for rule, decision in zip(self.rules, self._decisions, strict=True):
            if rule.matches(user, info):
                return decision
        return NONE


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where} must be a list of strings")
    return tuple(value)


def _stages(value: Any, where: str) -> frozenset[str]:
    stages = frozenset(_strings(value, where))
    unknown = stages - STAGES
    if unknown:
        raise PolicyError(f"{where}: unknown stage {sorted(unknown)[0]!r} (one of {', '.join(sorted(STAGES))})")
    return stages


def _rule(raw: Any, index: int) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(raw, dict):
        raise PolicyError(f"{where} must be a mapping")
    level = raw.get("level")
    if level not in LEVELS:
        raise PolicyError(f"{where}.level must be one of {', '.join(LEVELS)}, got {level!r}")
    resources = []
    for j, gr in enumerate(raw.get("resources") or []):
        if not isinstance(gr, dict):
            raise PolicyError(f"{where}.resources[{j}] must be a mapping")
        names = _strings(gr.get("resourceNames"), f"{where}.resources[{j}].resourceNames")
        kinds = _strings(gr.get("resources"), f"{where}.resources[{j}].resources")
        if names and any("*" in r for r in kinds):
            raise PolicyError(f"{where}.resources[{j}]: resourceNames cannot be used with wildcard resources")
        resources.append(GroupResources(str(gr.get("group") or ""), kinds, names))
    urls = _strings(raw.get("nonResourceURLs"), f"{where}.nonResourceURLs")
    if urls and (resources or raw.get("namespaces")):
        raise PolicyError(f"{where}: rules cannot apply to both regular resources and non-resource URLs")
    for url in urls:
        if not url.startswith("/") and url != "*":
            raise PolicyError(f"{where}.nonResourceURLs: {url!r} must start with / or be *")
        if "*" in url[:-1]:
            raise PolicyError(f"{where}.nonResourceURLs: {url!r} may only end in *")
    managed = raw.get("omitManagedFields")
    return Rule(
        level=level,
        users=_strings(raw.get("users"), f"{where}.users"),
        user_groups=_strings(raw.get("userGroups"), f"{where}.userGroups"),
        verbs=_strings(raw.get("verbs"), f"{where}.verbs"),
        resources=tuple(resources),
        namespaces=_strings(raw.get("namespaces"), f"{where}.namespaces"),
        non_resource_urls=urls,
        omit_stages=_stages(raw.get("omitStages"), f"{where}.omitStages"),
        omit_managed_fields=bool(managed) if managed is not None else None,
    )


def parse_policy(text: str) -> Policy:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or raw.get("kind") != "Policy" or raw.get("apiVersion") not in API_VERSIONS:
        raise PolicyError("expected kind: Policy, apiVersion: audit.k8s.io/v1")
    rules = raw.get("rules")
    if not isinstance(rules, list) or not rules:
        raise PolicyError("a policy needs at least one rule")
    return Policy(
        rules=tuple(_rule(r, i) for i, r in enumerate(rules)),
        omit_stages=_stages(raw.get("omitStages"), "omitStages"),
        omit_managed_fields=bool(raw.get("omitManagedFields", False)),
    )
