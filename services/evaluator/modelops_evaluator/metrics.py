"""Per-item metrics of an answer against the expected one, loaded from the `modelops.eval_metrics` entry-point group.

A metric's entry point loads a factory: given the job's parameters for it, it returns a scorer `(answer, reference)
-> float` (1.0 right, 0.0 wrong, or a degree in between), or raises ValueError when the parameters are wrong, so that
a bad pattern fails the job before any item runs. The built-ins below are registered the same way (this package's
pyproject), so a plugin package adds a metric exactly as they are added. `perplexity` and `multiple_choice` are not
among them: they score the model's token probabilities (of the reference; of each option), not an answer (see
`subjects`).
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Mapping
from functools import cache
from importlib.metadata import entry_points
from typing import Any

import jsonschema
from modelops_contracts import MetricSpec
from rouge_score import rouge_scorer

from .domain import MetricUnusable

GROUP = "modelops.eval_metrics"
PERPLEXITY = "perplexity"
MULTIPLE_CHOICE = "multiple_choice"
LIKELIHOOD_METRICS = (PERPLEXITY, MULTIPLE_CHOICE)

Scorer = Callable[[str, str], float]


def exact_match(params: Mapping[str, Any]) -> Scorer:
    """The answer is the reference, but for surrounding whitespace."""
    return lambda answer, reference: float(answer.strip() == reference.strip())


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _normalized(text: str) -> str:
    """SQuAD's normalization: lower case, no punctuation, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def normalized_match(params: Mapping[str, Any]) -> Scorer:
    """The answer is the reference once both are normalized as SQuAD does."""
    return lambda answer, reference: float(_normalized(answer) == _normalized(reference))


def regex_match(params: Mapping[str, Any]) -> Scorer:
    """The whole answer (whitespace-trimmed) matches `pattern`; with `"search": true`, some part of it does."""
    pattern = params.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("needs `pattern`, a regular expression")
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise ValueError(f"`pattern` is not a regular expression: {error}") from None
    match = compiled.search if params.get("search") else compiled.fullmatch
    return lambda answer, reference: float(match(answer.strip()) is not None)


def json_valid(params: Mapping[str, Any]) -> Scorer:
    """The answer is one JSON value; with `schema` (a JSON Schema), one that the schema accepts."""
    schema = params.get("schema")
    validator = None
    if schema is not None:
        try:
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
        except jsonschema.SchemaError as error:
            raise ValueError(f"`schema` is not a JSON Schema: {error.message}") from None
        validator = cls(schema)

    def score(answer: str, reference: str) -> float:
        try:
            value = json.loads(answer)
        except ValueError:
            return 0.0
        return float(validator is None or validator.is_valid(value))

    return score


def rouge_l(params: Mapping[str, Any]) -> Scorer:
    """ROUGE-L F1 (longest common subsequence of words), Google's `rouge-score` with Porter stemming."""
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=bool(params.get("stemmer", True)))
    return lambda answer, reference: float(scorer.score(reference, answer)["rougeL"].fmeasure)


@cache
def _factories() -> dict[str, Any]:
    return {entry.name: entry for entry in entry_points(group=GROUP)}


def scorers(specs: list[MetricSpec]) -> dict[str, Scorer]:
    """A scorer for every answer metric the job names (not the likelihood ones); MetricUnusable for an unknown name,
    a plugin that fails to load, or wrong parameters."""
    found = {}
    for spec in specs:
        if spec.name in LIKELIHOOD_METRICS:
            if spec.params:
                raise MetricUnusable(f"{spec.name} takes no parameters")
            continue
        entry = _factories().get(spec.name)
        if entry is None:
            known = sorted([*_factories(), *LIKELIHOOD_METRICS])
            raise MetricUnusable(f"no metric {spec.name!r} in entry-point group {GROUP} (installed: {known})")
        try:
            found[spec.name] = entry.load()(spec.params)
        except ValueError as error:
            raise MetricUnusable(f"metric {spec.name}: {error}") from None
        except Exception as error:
            raise MetricUnusable(f"metric {spec.name} failed to load: {error!r}") from None
    return found
