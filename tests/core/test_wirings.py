"""Wirings: layer sizes, synapse counts, seeding, reachability, serialisation, bad numbers, plot."""

from __future__ import annotations

import json
from collections import deque

import numpy as np
import pytest

from drive.core.wirings import NCP, FullyConnected, Random, Wiring, ncp19, plot_wiring


def _reachable_from_inputs(w: Wiring) -> set[int]:
    seen = set(np.nonzero(w.sensory_adjacency.any(0))[0].tolist())
    todo = deque(seen)
    while todo:
        i = todo.popleft()
        for j in np.nonzero(w.adjacency[i])[0].tolist():
            if j not in seen:
                seen.add(j)
                todo.append(j)
    return seen


def _reaches_motor(w: Wiring) -> set[int]:
    seen = set(w.motor_indices)
    todo = deque(seen)
    while todo:
        j = todo.popleft()
        for i in np.nonzero(w.adjacency[:, j])[0].tolist():
            if i not in seen:
                seen.add(i)
                todo.append(i)
    return seen


def test_ncp19_has_19_neurons_in_paper_layers_and_253_synapses():
    w = ncp19()
    assert (w.units, w.input_dim, w.output_dim) == (19, 32, 1)
    assert len(w.neurons_of_layer("inter")) == 12
    assert len(w.neurons_of_layer("command")) == 6
    assert w.neurons_of_layer("motor") == [0]
    assert w.total_synapse_count == 253
    assert w.sensory_synapse_count == 32 * 6 == int(np.count_nonzero(w.sensory_adjacency))
    assert w.synapse_count == int(np.count_nonzero(w.adjacency))


@pytest.mark.parametrize("seed", range(5))
def test_ncp19_synapse_count_holds_for_every_seed(seed):
    assert abs(ncp19(seed=seed).total_synapse_count - 253) <= 2


def test_ncp_layers_are_wired_only_forward_except_command_recurrence():
    w = ncp19(seed=3)
    inter, cmd, motor = (set(w.neurons_of_layer(n)) for n in ("inter", "command", "motor"))
    # sensory synapses land on inter neurons only
    assert set(np.nonzero(w.sensory_adjacency.any(0))[0]) <= inter
    allowed = (
        {(a, b) for a in inter for b in cmd} | {(a, b) for a in cmd for b in cmd} | {(a, b) for a in cmd for b in motor}
    )
    pairs = set(zip(*np.nonzero(w.adjacency)))
    assert pairs <= allowed
    # each sensory input synapses onto exactly sensory_fanout inter neurons, each inter onto inter_fanout commands
    assert (np.count_nonzero(w.sensory_adjacency, axis=1) == 6).all()
    assert all(np.count_nonzero(w.adjacency[i, sorted(cmd)]) == 4 for i in inter)
    recurrent = sum(1 for a, b in pairs if a in cmd and b in cmd)
    assert recurrent == 7
    assert np.count_nonzero(w.adjacency[sorted(cmd)][:, sorted(motor)]) == 6


@pytest.mark.parametrize("which", ["ncp19", "small"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_neuron_reachable_from_inputs_and_reaches_a_motor_neuron(which, seed, make_small_ncp):
    w = ncp19(seed=seed) if which == "ncp19" else make_small_ncp(seed=seed)
    assert _reachable_from_inputs(w) == set(range(w.units))
    assert _reaches_motor(w) == set(range(w.units))


def test_same_seed_same_wiring_different_seed_different_wiring():
    assert ncp19(seed=5) == ncp19(seed=5)
    assert not np.array_equal(ncp19(seed=5).adjacency, ncp19(seed=6).adjacency)
    assert np.array_equal(
        FullyConnected(7, 2, input_dim=3, seed=1).adjacency, FullyConnected(7, 2, input_dim=3, seed=1).adjacency
    )


def test_polarities_are_plus_minus_one_and_both_occur():
    w = ncp19()
    values = set(np.unique(w.adjacency).tolist()) | set(np.unique(w.sensory_adjacency).tolist())
    assert values == {-1, 0, 1}


def test_to_dict_from_dict_round_trip_through_json_is_exact():
    for w in (ncp19(seed=2), FullyConnected(5, 2, input_dim=3, self_connections=False), Random(like=ncp19(), seed=4)):
        back = Wiring.from_dict(json.loads(json.dumps(w.to_dict())))
        assert type(back) is type(w)
        assert back == w
        assert np.array_equal(back.adjacency, w.adjacency)
        assert np.array_equal(back.sensory_adjacency, w.sensory_adjacency)
        assert back.neuron_labels == w.neuron_labels


def test_build_later_and_conflicting_input_dim():
    w = NCP(4, 3, 1, 2, 2, 2, 2, seed=0)
    assert not w.is_built and w.input_dim is None
    with pytest.raises(ValueError, match="not built"):
        _ = w.sensory_synapse_count
    w.build(9)
    assert w.input_dim == 9 and w.sensory_synapse_count >= 9 * 2
    with pytest.raises(ValueError, match="input_dim=10"):
        w.build(10)


def test_fully_connected_counts_and_self_connections():
    w = FullyConnected(units=6, output_dim=2, input_dim=4, self_connections=False)
    assert w.synapse_count == 6 * 6 - 6
    assert w.sensory_synapse_count == 24
    assert w.motor_indices == [0, 1]
    assert w.neuron_labels[:3] == ["motor0", "motor1", "n0"]


def test_random_keeps_counts_and_polarity_mix_of_the_model_wiring():
    like = ncp19(seed=1)
    r = Random(like=like, seed=9)
    assert r.synapse_count == like.synapse_count
    assert r.sensory_synapse_count == like.sensory_synapse_count
    assert (r.adjacency == 1).sum() == (like.adjacency == 1).sum()
    assert not np.array_equal(r.adjacency, like.adjacency)


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        (dict(inter=0), "inter=0"),
        (dict(command=-1), "command=-1"),
        (dict(motor=0), "motor=0"),
        (dict(sensory_fanout=5), "sensory_fanout=5"),
        (dict(inter_fanout=4), "inter_fanout=4"),
        (dict(motor_fanin=4), "motor_fanin=4"),
        (dict(recurrent_command_synapses=10), "recurrent_command_synapses=10"),
        (dict(sensory_fanout=0), "sensory_fanout=0"),
        (dict(seed=-3), "seed=-3"),
        (dict(p_excitatory=1.5), "p_excitatory=1.5"),
    ],
)
def test_impossible_ncp_numbers_raise_naming_the_argument(kwargs, arg):
    base = dict(
        inter=4, command=3, motor=1, sensory_fanout=2, inter_fanout=2, recurrent_command_synapses=2, motor_fanin=2
    )
    base.update(kwargs)
    with pytest.raises(ValueError, match=arg):
        NCP(**base)


def test_impossible_other_wiring_numbers_raise():
    with pytest.raises(ValueError, match="units=0"):
        FullyConnected(units=0)
    with pytest.raises(ValueError, match="output_dim=5"):
        FullyConnected(units=3, output_dim=5)
    with pytest.raises(ValueError, match="input_dim=0"):
        ncp19(input_dim=0)
    with pytest.raises(ValueError, match="not built"):
        Random(like=NCP(4, 3, 1, 2, 2, 2, 2))
    with pytest.raises(ValueError, match="unknown kind"):
        Wiring.from_dict({**ncp19().to_dict(), "kind": "nonsense"})


def test_plot_wiring_writes_a_png(tmp_path):
    path = tmp_path / "sub" / "wiring.png"
    plot_wiring(ncp19(), path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert [p.name for p in path.parent.iterdir()] == ["wiring.png"]  # no temporary left behind
