"""The spiking router on synthetic embeddings (no model): it learns separable targets, defers to the fallback when
unsure, counts its synaptic operations as a spike-driven chip would, and saves and loads exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from modelops_shared import snn_router

LABELS = ("chat", "docs", "sql")


def clusters(per_label: int, seed: int, dim: int = 32) -> tuple[np.ndarray, list[str]]:
    """Unit vectors around one random centre per label."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(size=(len(LABELS), dim))
    rows = np.concatenate([centre + 0.4 * rng.normal(size=(per_label, dim)) for centre in centres])
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows.astype(np.float32), [label for label in LABELS for _ in range(per_label)]


@pytest.fixture(scope="module")
def trained() -> snn_router.SpikingRouter:
    x, y = clusters(60, seed=1)
    router = snn_router.fit(x, y, snn_router.RouterConfig(labels=LABELS, input_dim=0, hidden=32), epochs=30)
    assert router is not None
    return router


def test_it_learns_separable_targets_with_few_spikes(trained: snn_router.SpikingRouter):
    x, y = clusters(30, seed=2)
    measured = snn_router.evaluate(trained, x, y)
    assert measured["accuracy"] >= 0.95
    assert measured["spike_rate"] < 0.06
    assert trained.config.input_dim == 32
    assert trained.config.scale > 0


def test_latency_coding_fires_each_input_at_most_once(trained: snn_router.SpikingRouter):
    x, _ = clusters(5, seed=3)
    spikes = trained.encode(torch.as_tensor(x))
    assert spikes.shape == (trained.config.steps, 15, 64)
    assert int(spikes.sum(dim=0).max()) <= 1


def test_synaptic_operations_count_each_spike_once_per_outgoing_synapse(trained: snn_router.SpikingRouter):
    x, _ = clusters(1, seed=4)
    inputs = trained.encode(torch.as_tensor(x[:1]))
    _, hidden = trained(inputs)
    expected = int(inputs.sum()) * 32 + int(hidden.sum()) * len(LABELS)
    assert trained.decide(x[0]).synaptic_ops == expected
    assert snn_router.multiply_accumulates([64, 32, 3]) == 64 * 32 + 32 * 3


def test_an_unsure_decision_goes_to_the_fallback(trained: snn_router.SpikingRouter):
    x, _ = clusters(1, seed=5)
    sure = trained.decide(x[0])
    assert not sure.fallback
    assert sure.label == sure.winner
    config = snn_router.RouterConfig(**{**vars(trained.config), "min_margin": 10_000, "fallback": "docs"})
    unsure = snn_router.SpikingRouter(config)
    unsure.load_state_dict(trained.state_dict())
    decision = unsure.decide(x[0])
    assert decision.fallback
    assert (decision.label, decision.winner, decision.margin) == ("docs", sure.winner, sure.margin)


def test_saved_and_loaded_it_decides_the_same(trained: snn_router.SpikingRouter, tmp_path):
    snn_router.save(trained, tmp_path)
    loaded = snn_router.load(tmp_path)
    x, _ = clusters(10, seed=6)
    assert [trained.decide(row) for row in x] == [loaded.decide(row) for row in x]
    config = json.loads((tmp_path / snn_router.CONFIG).read_text())
    (tmp_path / snn_router.CONFIG).write_text(json.dumps({**config, "hidden": 16}))
    with pytest.raises(ValueError, match="not a router"):
        snn_router.load(tmp_path)


def test_a_config_refuses_one_target_or_an_unknown_fallback():
    with pytest.raises(ValueError, match="two distinct"):
        snn_router.RouterConfig(labels=("chat",), input_dim=8)
    with pytest.raises(ValueError, match="fallback"):
        snn_router.RouterConfig(labels=LABELS, input_dim=8, fallback="poetry")


def test_a_budget_becomes_whole_epochs():
    assert snn_router.epochs_for(100, 10, epochs=2.5, max_steps=None) == 3
    assert snn_router.epochs_for(100, 10, epochs=None, max_steps=25) == 3


def test_training_stops_when_told():
    x, y = clusters(10, seed=7)
    seen = []
    stopped = snn_router.fit(
        x,
        y,
        snn_router.RouterConfig(labels=LABELS, input_dim=0),
        epochs=5,
        on_epoch=lambda e, _: seen.append(e) or e < 2,
    )
    assert stopped is None
    assert seen == [1, 2]
