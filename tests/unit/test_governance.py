"""Governance rules: the stage machine and the policy's role, metric and approver checks."""

import pytest
from modelops_contracts import Stage
from modelops_registry.domain import TRANSITIONS, Policy, PolicyViolation, PromotionRequest, Report, check_promotion
from modelops_registry.settings import DEFAULT_POLICY

POLICY = Policy.from_file(DEFAULT_POLICY)


def _request(**overrides) -> PromotionRequest:
    fields = {
        "kind": "adapter",
        "current": Stage.DEV,
        "target": Stage.STAGING,
        "actor": "bob",
        "actor_role": "approver",
        "submitter": "alice",
        "metrics": {"eval_loss": 1.5},
        "reports": [Report("r-1", "held-out", {"exact_match": 0.8})],
    }
    return PromotionRequest(**{**fields, **overrides})


def _to_prod(**overrides) -> PromotionRequest:
    return _request(current=Stage.STAGING, target=Stage.PROD, **overrides)


def test_the_happy_path_dev_staging_prod():
    check_promotion(POLICY, _request(reports=[]))
    check_promotion(POLICY, _to_prod())


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"target": Stage.PROD}, "cannot move an artifact from dev to prod"),
        ({"actor_role": "developer"}, "role developer may not promote to staging"),
        ({"metrics": {"eval_loss": 2.5}}, "eval_loss <= 2; it is 2.5"),
        ({"metrics": {}}, "it was not reported"),
        ({"current": Stage.STAGING, "target": Stage.PROD, "actor": "alice"}, "other than the submitter alice"),
        ({"target": Stage.REVOKED}, "role approver may not promote to revoked"),
        ({"current": Stage.REVOKED, "target": Stage.DEV, "actor_role": "admin"}, "from revoked to dev"),
    ],
    ids=["skip-staging", "role", "threshold", "missing-metric", "self-approval", "revoke-role", "revoked-final"],
)
def test_violations_say_which_rule(overrides, reason):
    with pytest.raises(PolicyViolation, match=reason):
        check_promotion(POLICY, _request(**overrides))


def test_thresholds_bind_only_evaluated_kinds():
    check_promotion(POLICY, _request(kind="base_model", metrics={}))


def test_a_quantized_model_is_gated_on_its_perplexity_change_not_on_a_training_metric():
    check_promotion(POLICY, _request(kind="quantized_model", metrics={"perplexity_change": 0.016}))
    with pytest.raises(PolicyViolation, match=r"perplexity_change <= 0\.05; it is 0\.09"):
        check_promotion(POLICY, _request(kind="quantized_model", metrics={"perplexity_change": 0.09}))
    with pytest.raises(PolicyViolation, match=r"perplexity_change .* not reported"):
        check_promotion(POLICY, _request(kind="quantized_model", metrics={"eval_loss": 1.0}))


def test_revoked_is_final_and_reachable_from_everywhere_else():
    assert TRANSITIONS[Stage.REVOKED] == frozenset()
    assert all(Stage.REVOKED in targets for stage, targets in TRANSITIONS.items() if stage is not Stage.REVOKED)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("stages: {staging: {roles: [wizard]}}", "unknown roles"),
        ("stages: {staging: {roles: [admin], metrics: {eval_loss: 'about 2'}}}", "bad threshold"),
        ("stages: {limbo: {roles: [admin]}}", "limbo"),
        ("deploy: {stages: [staging, revoked]}", "never served"),
        ("deploy: {stages: [limbo]}", "limbo"),
    ],
)
def test_a_bad_policy_file_is_refused(text, error):
    with pytest.raises(ValueError, match=error):
        Policy.from_yaml(text)


def test_a_stage_missing_from_the_policy_cannot_be_entered():
    policy = Policy.from_yaml("stages: {staging: {roles: [approver]}}")
    with pytest.raises(PolicyViolation, match="allows no promotion to archived"):
        check_promotion(policy, _request(target=Stage.ARCHIVED))


def test_the_deploy_rule_defaults_to_staging_and_prod_and_can_be_changed():
    default = Policy.from_file(DEFAULT_POLICY).deploy
    assert default.stages == {Stage.STAGING, Stage.PROD}
    assert default.fine_tuning_jobs
    changed = Policy.from_yaml("deploy: {stages: [prod], fine_tuning_jobs: false}").deploy
    assert (changed.stages, changed.fine_tuning_jobs) == ({Stage.PROD}, False)


def test_prod_needs_a_signed_eval_report():
    with pytest.raises(PolicyViolation, match="prod needs a signed eval report; there is none"):
        check_promotion(POLICY, _to_prod(reports=[]))
    check_promotion(POLICY, _to_prod(kind="base_model", metrics={}, reports=[]))  # imported, not evaluated


def test_no_regression_beyond_the_allowance_against_what_is_in_prod_on_the_same_suite():
    incumbents = [Report("old", "held-out", {"exact_match": 0.85}), Report("x", "other", {"exact_match": 0.99})]
    check_promotion(POLICY, _to_prod(reports=[Report("r", "held-out", {"exact_match": 0.84})], incumbents=incumbents))
    fell = r"exact_match to worsen by at most 0\.02 .* \(0\.85\); report r-1 has 0\.8"
    with pytest.raises(PolicyViolation, match=fell):
        check_promotion(POLICY, _to_prod(incumbents=incumbents))
    # The newest report of a suite is the one that counts.
    newer = [Report("new", "held-out", {"exact_match": 0.9}), Report("r-1", "held-out", {"exact_match": 0.8})]
    check_promotion(POLICY, _to_prod(reports=newer, incumbents=incumbents))


STRICT = Policy.from_yaml("""
stages:
  prod:
    roles: [approver]
    evaluations:
      - suite: held-out
        kinds: [adapter]
        metrics: {exact_match: ">= 0.7"}
        max_regression: {perplexity: 0.5}
""")


@pytest.mark.parametrize(
    ("reports", "incumbents", "reason"),
    [
        ([Report("r", "other", {"exact_match": 0.9})], [], "needs a signed eval report on suite held-out"),
        ([Report("r", "held-out", {"exact_match": 0.6})], [], r"exact_match >= 0\.7 on suite held-out; report r: 0\.6"),
        ([Report("r", "held-out", {"perplexity": 3.0})], [], "exact_match >= 0.7 .* not measured"),
        (
            [Report("r", "held-out", {"exact_match": 0.9, "perplexity": 4.0})],
            [Report("p", "held-out", {"perplexity": 3.0})],
            r"perplexity to worsen by at most 0\.5 .* \(3\); report r has 4",
        ),
        (
            [Report("r", "held-out", {"exact_match": 0.9})],
            [Report("p", "held-out", {"perplexity": 3.0})],
            "lacks it",
        ),
    ],
    ids=["other-suite", "threshold", "unmeasured", "perplexity-rose", "incomparable"],
)
def test_a_named_suite_its_thresholds_and_a_lower_is_better_regression(reports, incumbents, reason):
    with pytest.raises(PolicyViolation, match=reason):
        check_promotion(STRICT, _to_prod(reports=reports, incumbents=incumbents, actor_role="approver"))


def test_a_report_that_passes_a_named_suite():
    reports = [Report("r", "held-out", {"exact_match": 0.9, "perplexity": 3.2})]
    check_promotion(STRICT, _to_prod(reports=reports, incumbents=[Report("p", "held-out", {"perplexity": 3.0})]))
