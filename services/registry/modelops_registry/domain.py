"""Governance rules, pure: which stage moves are possible, and whether a policy allows one."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
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
ANY_SUITE = "*"
# Metrics where less is better; a regression of any other is a fall.
LOWER_IS_BETTER = frozenset({"perplexity", "eval_loss"})


@dataclass(frozen=True)
class EvaluationRule:
    """An artifact of `kinds` needs a signed eval report on `suite` (any suite: "*"; then every suite it was evaluated
    on is checked) whose aggregates meet `thresholds` and fall at most `max_regression` below the reports, on that
    suite, of what is in the stage now on the same base."""

    suite: str = ANY_SUITE
    kinds: frozenset[str] = frozenset({"adapter", "merged_model", "quantized_model"})
    thresholds: Thresholds = field(default_factory=dict)
    max_regression: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    """A registered eval report, as the registry signed it: its suite and aggregates."""

    id: str
    suite: str
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class StageRule:
    roles: frozenset[str]
    thresholds: Thresholds = field(default_factory=dict)
    # Thresholds bind only artifacts that are evaluated (an imported base model reports no eval_loss).
    threshold_kinds: frozenset[str] = frozenset({"adapter", "merged_model"})
    # Thresholds of one kind besides (a quantized model's perplexity_change, measured when it was made).
    kind_thresholds: Mapping[str, Thresholds] = field(default_factory=dict)
    evaluations: tuple[EvaluationRule, ...] = ()
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
                evaluations=tuple(_evaluation_rule(stage_name, e) for e in rule.get("evaluations") or ()),
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
    # The artifact's eval reports, and those of what is in the target stage now on the same base; newest first.
    reports: Sequence[Report] = ()
    incumbents: Sequence[Report] = ()


def _thresholds(stage_name: str, metrics: Mapping[str, Any] | None) -> Thresholds:
    thresholds = {}
    for metric, expression in (metrics or {}).items():
        match = _THRESHOLD.match(str(expression))
        if not match:
            raise ValueError(f"policy for {stage_name}: bad threshold {metric}: {expression!r}")
        thresholds[metric] = (match.group(1), float(match.group(2)))
    return thresholds


def _evaluation_rule(stage_name: str, rule: Mapping[str, Any]) -> EvaluationRule:
    unknown = set(rule) - {"suite", "kinds", "metrics", "max_regression"}
    if unknown:
        raise ValueError(f"policy for {stage_name}: unknown evaluation settings {sorted(unknown)}")
    return EvaluationRule(
        suite=str(rule.get("suite", ANY_SUITE)),
        kinds=frozenset(rule.get("kinds") or EvaluationRule.kinds),
        thresholds=_thresholds(stage_name, rule.get("metrics")),
        max_regression={metric: float(points) for metric, points in (rule.get("max_regression") or {}).items()},
    )


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
    for evaluation in rule.evaluations:
        if request.kind in evaluation.kinds:
            _check_reports(evaluation, request)
    if rule.distinct_approver and request.actor == request.submitter:
        raise PolicyViolation(f"{request.target} needs an approver other than the submitter {request.submitter}")


def _check_reports(rule: EvaluationRule, request: PromotionRequest) -> None:
    """The artifact's newest report on each suite the rule names meets its thresholds and does not regress."""
    newest: dict[str, Report] = {}
    for report in request.reports:
        newest.setdefault(report.suite, report)
    suites = list(newest) if rule.suite == ANY_SUITE else [rule.suite]
    where = "" if rule.suite == ANY_SUITE else f" on suite {rule.suite}"
    if not suites or suites[0] not in newest:
        raise PolicyViolation(
            f"{request.target} needs a signed eval report{where}; there is none (run `modelops eval run`)"
        )
    for suite in suites:
        report = newest[suite]
        for metric, (comparator, bound) in rule.thresholds.items():
            value = report.metrics.get(metric)
            if value is None or not _COMPARATORS[comparator](value, bound):
                found = "not measured" if value is None else f"{value:g}"
                raise PolicyViolation(
                    f"{request.target} needs {metric} {comparator} {bound:g} on suite {suite};"
                    f" report {report.id}: {found}"
                )
        for metric, allowed in rule.max_regression.items():
            _check_regression(request.target, report, metric, allowed, request.incumbents)


def _check_regression(target: Stage, report: Report, metric: str, allowed: float, incumbents: Sequence[Report]) -> None:
    held = [r.metrics[metric] for r in incumbents if r.suite == report.suite and metric in r.metrics]
    if not held:
        return  # nothing in the stage was measured so on this suite: nothing to regress from
    lower_is_better = metric in LOWER_IS_BETTER
    best = min(held) if lower_is_better else max(held)
    value = report.metrics.get(metric)
    if value is None:
        raise PolicyViolation(
            f"{target} compares {metric} on suite {report.suite} with what is in {target}; report {report.id} lacks it"
        )
    fall = value - best if lower_is_better else best - value
    if fall > allowed:
        raise PolicyViolation(
            f"{target} allows {metric} to worsen by at most {allowed:g} from what is in {target}"
            f" on suite {report.suite} ({best:g}); report {report.id} has {value:g}"
        )
