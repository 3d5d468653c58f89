"""The evaluator's per-item metrics, its suites and its aggregates: pure functions, no model."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest
from modelops_contracts import MetricSpec
from modelops_evaluator.domain import MetricUnusable, SuiteUnusable
from modelops_evaluator.metrics import scorers
from modelops_evaluator.reports import aggregates
from modelops_evaluator.subjects import choose
from modelops_evaluator.suites import Item, items_of


def score(name: str, answer: str, reference: str, **params: object) -> float:
    return scorers([MetricSpec(name=name, params=params)])[name](answer, reference)


def test_exact_and_normalized_match():
    assert score("exact_match", "  Paris\n", "Paris") == 1.0
    assert score("exact_match", "paris", "Paris") == 0.0
    assert score("normalized_match", "The  Paris!", "paris") == 1.0
    assert score("normalized_match", "Lyon", "Paris") == 0.0


def test_regex_match_is_whole_answer_unless_searching():
    assert score("regex_match", " 42 ", "", pattern=r"\d+") == 1.0
    assert score("regex_match", "it is 42", "", pattern=r"\d+") == 0.0
    assert score("regex_match", "it is 42", "", pattern=r"\d+", search=True) == 1.0


def test_json_valid_with_and_without_a_schema():
    schema = {"type": "object", "required": ["age"], "properties": {"age": {"type": "integer"}}}
    assert score("json_valid", '{"age": 3}', "") == 1.0
    assert score("json_valid", "{age: 3}", "") == 0.0
    assert score("json_valid", '{"age": 3}', "", schema=schema) == 1.0
    assert score("json_valid", '{"age": "3"}', "", schema=schema) == 0.0


def test_rouge_l_is_the_f1_of_the_longest_common_subsequence():
    assert score("rouge_l", "the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    # LCS "the cat the mat" = 4 of 6 answer words and 4 of 5 reference words: F1 = 2·(2/3·4/5)/(2/3+4/5)
    assert score("rouge_l", "the cat sat on the mat", "the cat saw the mat", stemmer=False) == pytest.approx(8 / 11)
    assert score("rouge_l", "dogs", "the cat") == 0.0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (MetricSpec(name="bleu_9000"), "no metric 'bleu_9000'"),
        (MetricSpec(name="regex_match"), "needs `pattern`"),
        (MetricSpec(name="regex_match", params={"pattern": "("}), "not a regular expression"),
        (MetricSpec(name="json_valid", params={"schema": {"type": "nonsense"}}), "not a JSON Schema"),
        (MetricSpec(name="perplexity", params={"window": 3}), "takes no parameters"),
    ],
)
def test_bad_metrics_fail_before_any_item_runs(spec, message):
    with pytest.raises(MetricUnusable, match=message):
        scorers([spec])


def test_perplexity_is_not_an_answer_metric():
    assert scorers([MetricSpec(name="perplexity"), MetricSpec(name="exact_match")]).keys() == {"exact_match"}


def test_sft_and_chat_rows_become_items():
    sft = items_of(pa.Table.from_pylist([{"prompt": "2+2=", "completion": "4"}]), max_items=None, seed=0)
    assert (sft[0].prompt, sft[0].reference, sft[0].messages) == ("2+2=", "4", None)
    chat_rows = [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Capital of France?"},
                {"role": "assistant", "content": "Paris"},
            ]
        }
    ]
    (chat,) = items_of(pa.Table.from_pylist(chat_rows), max_items=None, seed=0)
    assert chat.reference == "Paris"
    assert [m["role"] for m in chat.messages or ()] == ["system", "user"]
    assert '"Capital of France?"' in chat.question


def test_multiple_choice_rows_expect_their_right_option():
    rows = [{"prompt": "The capital of France is", "choices": ["Lyon", "Paris"], "answer": 1}]
    (item,) = items_of(pa.Table.from_pylist(rows), max_items=None, seed=0)
    assert (item.reference, item.choices, item.answer) == ("Paris", ("Lyon", "Paris"), 1)


async def test_multiple_choice_picks_the_likeliest_option_raw_and_per_character():
    class Scripted:
        """Log-likelihoods by continuation, as a model would give them."""

        async def loglikelihood(self, requests):
            given = {" Paris": -2.0, " Lyon": -3.0, " a": -0.5, " a much longer option": -4.0}
            return [(given[continuation], 1) for _, continuation in requests]

    items = [
        Item(0, "Paris", prompt="Capital?", choices=("Lyon", "Paris"), answer=1),
        Item(1, "a much longer option", prompt="Pick", choices=("a", "a much longer option"), answer=1),
    ]
    acc, acc_norm = await choose(Scripted(), items)
    assert acc == [1.0, 0.0]  # raw: the short option wins the second
    assert acc_norm == [1.0, 1.0]  # per character: -4/20 beats -0.5/1


def test_a_seeded_sample_is_the_same_items_in_suite_order():
    table = pa.Table.from_pylist([{"prompt": str(i), "completion": str(i)} for i in range(100)])
    first = [item.index for item in items_of(table, max_items=10, seed=3)]
    assert first == sorted(first)
    assert len(set(first)) == 10
    assert first == [item.index for item in items_of(table, max_items=10, seed=3)]
    assert first != [item.index for item in items_of(table, max_items=10, seed=4)]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "no rows"),
        ([{"prompt": "p", "chosen": "a", "rejected": "b"}], "needs sft"),
        ([{"messages": [{"role": "user", "content": "hi"}]}], "row 0"),
    ],
)
def test_rows_without_an_expected_answer_are_no_suite(rows, message):
    table = pa.Table.from_pylist(rows) if rows else pa.table({"prompt": pa.array([], pa.string())})
    with pytest.raises(SuiteUnusable, match=message):
        items_of(table, max_items=None, seed=0)


def test_aggregates_are_means_and_token_weighted_perplexity():
    totals = aggregates({"exact_match": [1.0, 0.0, 1.0, 1.0]}, [(-2.0, 1), (-6.0, 3)], 4)
    assert totals["exact_match"] == 0.75
    assert totals["perplexity"] == pytest.approx(math.exp(8 / 4))
    assert totals["items"] == 4


def test_a_plugin_package_adds_a_metric_by_entry_point():
    """plugins/example-plugin registers `example_within_words` in the `modelops.eval_metrics` group."""
    assert score("example_within_words", "Paris", "Paris") == 1.0
    assert score("example_within_words", "The capital is Paris", "Paris") == 0.0
    assert score("example_within_words", "The capital is Paris", "Paris", max_words=4) == 1.0
    with pytest.raises(MetricUnusable, match="positive integer"):
        scorers([MetricSpec(name="example_within_words", params={"max_words": 0})])
