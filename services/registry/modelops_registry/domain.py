"""Governance rules, pure: which stage moves are possible, and whether a policy allows one."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from modelops_contracts import Stage

ROLES = ("viewer", "developer", "approver", "admin")

TRANSITIONS: dict[Stage, frozenset[Stage]] = {
    Stage.DEV: frozenset({Stage.STAGING, Stage.ARCHIVED, Stage.REVOKED}),
    Stage.STAGING: frozenset({Stage.PROD, Stage.DEV, Stage.ARCHIVED, Stage.REVOKED}),
    Stage.PROD: frozenset({Stage.STAGING, Stage.ARCHIVED, Stage.REVOKED}),
    Stage.ARCHIVED: frozenset({Stage.REVOKED}),
    Stage.REVOKED: frozenset(),  # final: a revoked artifact is never served again
}

_COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
}
_THRESHOLD = re.compile(r"^\s*(<=|>=|<|>|==)\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*$")


class PolicyViolation(Exception):
    """A promotion the rules or the policy forbid; the message says which rule."""


Thresholds = Mapping[str, tuple[str, float]]


@dataclass(frozen=True)
class StageRule:
    roles: frozenset[str]
    thresholds: Thresholds = field(default_factory=dict)
    # Thresholds bind only artifacts that are evaluated (an imported base model reports no eval_loss).
    threshold_kinds: frozenset[str] = frozenset({"adapter", "merged_model"})
    # Thresholds of one kind besides (a quantized model's perplexity_change, measured when it was made).
    kind_thresholds: Mapping[str, Thresholds] = field(default_factory=dict)
    distinct_approver: bool = False

    def thresholds_of(self, kind: str) -> Thresholds:
        return {**(self.thresholds if kind in self.threshold_kinds else {}), **self.kind_thresholds.get(kind, {})}


@dataclass(frozen=True)
class DeployRule:
    """What may be served: artifacts in `stages`; and, when `fine_tuning_jobs`, the adapter of a job created through
    the OpenAI fine-tuning API from the moment it succeeds (in dev), as OpenAI serves `fine_tuned_model` at once."""

    stages: frozenset[Stage] = frozenset({Stage.STAGING, Stage.PROD})
    fine_tuning_jobs: bool = True


@dataclass(frozen=True)
class Policy:
    rules: Mapping[Stage, StageRule]
    deploy: DeployRule = DeployRule()

    @classmethod
    def from_yaml(cls, text: str) -> Policy:
        document: dict[str, Any] = yaml.safe_load(text) or {}
        deploy = document.get("deploy") or {}
        stages = frozenset(Stage(stage) for stage in deploy.get("stages", [s.value for s in DeployRule.stages]))
        if Stage.REVOKED in stages:
            raise ValueError("policy deploy.stages: a revoked artifact is never served")
        deploy_rule = DeployRule(stages, bool(deploy.get("fine_tuning_jobs", DeployRule.fine_tuning_jobs)))
        rules = {}
        for stage_name, rule in (document.get("stages") or {}).items():
            roles = frozenset(rule.get("roles") or ())
            unknown = roles - set(ROLES)
            if unknown:
                raise ValueError(f"policy for {stage_name}: unknown roles {sorted(unknown)}")
            rules[Stage(stage_name)] = StageRule(
                roles=roles,
                thresholds=_thresholds(stage_name, rule.get("metrics")),
                threshold_kinds=frozenset(rule.get("metrics_apply_to") or StageRule.threshold_kinds),
                kind_thresholds={
                    kind: _thresholds(stage_name, metrics) for kind, metrics in (rule.get("metrics_of") or {}).items()
                },
                distinct_approver=bool(rule.get("distinct_approver", False)),
            )
        return cls(rules, deploy_rule)

    @classmethod
    def from_file(cls, path: Path) -> Policy:
        return cls.from_yaml(path.read_text())


@dataclass(frozen=True)
class PromotionRequest:
    kind: str
    current: Stage
    target: Stage
    actor: str
    actor_role: str
    submitter: str
    metrics: Mapping[str, float]


def _thresholds(stage_name: str, metrics: Mapping[str, Any] | None) -> Thresholds:
    thresholds = {}
    for metric, expression in (metrics or {}).items():
        match = _THRESHOLD.match(str(expression))
        if not match:
            raise ValueError(f"policy for {stage_name}: bad threshold {metric}: {expression!r}")
        thresholds[metric] = (match.group(1), float(match.group(2)))
    return thresholds


def check_promotion(policy: Policy, request: PromotionRequest) -> None:
    """Raise PolicyViolation unless the move exists and the policy's role, metric and approver rules hold."""
    if request.target not in TRANSITIONS[request.current]:
        raise PolicyViolation(f"cannot move an artifact from {request.current} to {request.target}")
    rule = policy.rules.get(request.target)
    if rule is None:
        raise PolicyViolation(f"the policy allows no promotion to {request.target}")
    if request.actor_role not in rule.roles:
        raise PolicyViolation(f"role {request.actor_role} may not promote to {request.target}")
    for metric, (comparator, bound) in rule.thresholds_of(request.kind).items():
        value = request.metrics.get(metric)
        if value is None:
            raise PolicyViolation(f"{request.target} needs metric {metric} {comparator} {bound:g}; it was not reported")
        if not _COMPARATORS[comparator](value, bound):
            raise PolicyViolation(f"{request.target} needs {metric} {comparator} {bound:g}; it is {value:g}")
    if rule.distinct_approver and request.actor == request.submitter:
        raise PolicyViolation(f"{request.target} needs an approver other than the submitter {request.submitter}")
