"""Wirings: which neuron talks to which, and with what sign (numpy only, no torch).

A wiring is two adjacency matrices with entries in {-1, 0, +1}:

* ``sensory_adjacency`` of shape (input_dim, units): synapse from input feature ``k`` onto
  neuron ``j`` (+1 excitatory, -1 inhibitory, 0 none);
* ``adjacency`` of shape (units, units): synapse from neuron ``i`` (pre) onto neuron ``j``
  (post), same convention.

Neuron order is motor first: neurons ``0 .. output_dim-1`` are the **motor** neurons, whose
potentials are the outputs. For an NCP the order is then the command neurons, then the inter
neurons (``motor | command | inter``), so the sensory inputs feed the highest indices.

The polarity initialises the reversal potentials ``erev`` of the LTC model (+1/-1); the mask
``|adjacency|`` decides which synapses exist. Wirings are seeded and serialise to plain JSON
types with :meth:`Wiring.to_dict` / :meth:`Wiring.from_dict`.

NCP construction follows Lechner et al., "Neural circuit policies enabling auditable autonomy",
Nature Machine Intelligence 2020 (Methods, "NCP design principles"): sensory -> inter ->
command -> motor, layer by layer with fixed fan-outs/fan-ins, neurons left without an incoming
(or outgoing) synapse get the layer's mean fan-in (fan-out), plus recurrent command synapses.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from drive.core.limits import MAX_UNITS

#: Layer names from input to output, used for plotting and labels.
LAYER_ORDER = ("sensory", "inter", "command", "hidden", "motor")
#: Short label prefixes per layer (``neuron_labels``).
LAYER_PREFIX = {"motor": "motor", "command": "cmd", "inter": "inter", "hidden": "n"}


#: The fields of :meth:`Wiring.to_dict`; :meth:`Wiring.from_dict` refuses any other.
WIRING_KEYS = frozenset(
    ("kind", "params", "units", "output_dim", "input_dim", "layers", "adjacency", "sensory_adjacency")
)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(f"wiring argument {name}={value!r} must be an integer >= {minimum}")
    return int(value)


def _check_probability(name: str, value: Any) -> float:
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"wiring argument {name}={value!r} must be a probability in [0, 1]") from None
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"wiring argument {name}={value!r} must be a probability in [0, 1]")
    return p


class Wiring:
    """A fixed synapse graph: adjacency matrices with polarity, neuron layers, and motor outputs.

    Subclasses (:class:`NCP`, :class:`FullyConnected`, :class:`Random`) fill the matrices; this
    class holds them, checks them, counts them and serialises them.
    """

    kind = "custom"

    def __init__(
        self,
        adjacency: np.ndarray,
        output_dim: int,
        layers: list[str] | None = None,
        sensory_adjacency: np.ndarray | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        adjacency = np.asarray(adjacency)
        if adjacency.ndim != 2 or adjacency.shape[0] != adjacency.shape[1] or adjacency.shape[0] < 1:
            raise ValueError(f"wiring adjacency must be a non-empty square matrix, got shape {adjacency.shape}")
        if not np.isin(adjacency, (-1, 0, 1)).all():
            raise ValueError("wiring adjacency entries must be -1, 0 or +1")
        self.adjacency = adjacency.astype(np.int8)
        units = self.adjacency.shape[0]
        self._output_dim = _check_int("output_dim", output_dim, 1)
        if self._output_dim > units:
            raise ValueError(f"wiring argument output_dim={output_dim} exceeds units={units}")
        if layers is None:
            layers = ["motor"] * self._output_dim + ["hidden"] * (units - self._output_dim)
        if len(layers) != units or any(layer not in LAYER_PREFIX for layer in layers):
            raise ValueError(f"wiring layers must name one of {sorted(LAYER_PREFIX)} for each of the {units} units")
        self.layers = list(layers)
        self.params = dict(params or {})
        self.sensory_adjacency: np.ndarray | None = None
        if sensory_adjacency is not None:
            self._set_sensory(np.asarray(sensory_adjacency))

    # ------------------------------------------------------------------ building
    def _set_sensory(self, sensory: np.ndarray) -> None:
        if sensory.ndim != 2 or sensory.shape[1] != self.units or sensory.shape[0] < 1:
            raise ValueError(f"wiring sensory_adjacency must have shape (input_dim, {self.units}), got {sensory.shape}")
        if not np.isin(sensory, (-1, 0, 1)).all():
            raise ValueError("wiring sensory_adjacency entries must be -1, 0 or +1")
        self.sensory_adjacency = sensory.astype(np.int8)

    def _make_sensory(self, input_dim: int) -> np.ndarray:
        """Sensory adjacency for ``input_dim`` features; subclasses override."""
        raise ValueError(f"{type(self).__name__} wiring has no rule to build sensory synapses; pass sensory_adjacency")

    def build(self, input_dim: int) -> "Wiring":
        """Create the sensory synapses for ``input_dim`` input features (idempotent); returns self."""
        input_dim = _check_int("input_dim", input_dim, 1)
        if self.sensory_adjacency is not None:
            if self.sensory_adjacency.shape[0] != input_dim:
                raise ValueError(
                    f"wiring already built for input_dim={self.sensory_adjacency.shape[0]}, got input_dim={input_dim}"
                )
            return self
        self._set_sensory(self._make_sensory(input_dim))
        return self

    @property
    def is_built(self) -> bool:
        return self.sensory_adjacency is not None

    def _require_built(self) -> np.ndarray:
        if self.sensory_adjacency is None:
            raise ValueError(f"{type(self).__name__} wiring is not built: call build(input_dim) first")
        return self.sensory_adjacency

    # ------------------------------------------------------------------ properties
    @property
    def units(self) -> int:
        """Number of neurons (inter + command + motor for an NCP)."""
        return int(self.adjacency.shape[0])

    @property
    def input_dim(self) -> int | None:
        """Number of sensory inputs, or None before :meth:`build`."""
        return None if self.sensory_adjacency is None else int(self.sensory_adjacency.shape[0])

    @property
    def output_dim(self) -> int:
        """Number of motor neurons; they are neurons ``0 .. output_dim-1``."""
        return self._output_dim

    @property
    def motor_indices(self) -> list[int]:
        return list(range(self._output_dim))

    @property
    def synapse_count(self) -> int:
        """Number of internal (neuron -> neuron) synapses."""
        return int(np.count_nonzero(self.adjacency))

    @property
    def sensory_synapse_count(self) -> int:
        """Number of sensory (input -> neuron) synapses, counted on the sensory matrix."""
        return int(np.count_nonzero(self._require_built()))

    @property
    def total_synapse_count(self) -> int:
        return self.synapse_count + self.sensory_synapse_count

    def neurons_of_layer(self, layer: str) -> list[int]:
        return [i for i, name in enumerate(self.layers) if name == layer]

    @property
    def layer_names(self) -> list[str]:
        """Layers present, input to output (without "sensory")."""
        return [name for name in LAYER_ORDER if name in self.layers]

    @property
    def neuron_labels(self) -> list[str]:
        """One label per neuron, e.g. ``motor0``, ``cmd3``, ``inter7`` (numbered within the layer)."""
        counters: dict[str, int] = {}
        labels = []
        for layer in self.layers:
            k = counters.get(layer, 0)
            counters[layer] = k + 1
            labels.append(f"{LAYER_PREFIX[layer]}{k}")
        return labels

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: everything needed to rebuild this exact wiring."""
        return {
            "kind": self.kind,
            "params": dict(self.params),
            "units": self.units,
            "output_dim": self.output_dim,
            "input_dim": self.input_dim,
            "layers": list(self.layers),
            "adjacency": self.adjacency.astype(int).tolist(),
            "sensory_adjacency": None
            if self.sensory_adjacency is None
            else self.sensory_adjacency.astype(int).tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Wiring":
        """Rebuild a wiring from :meth:`to_dict` output (matrices restored exactly)."""
        if not isinstance(d, dict):
            raise ValueError(f"wiring must be an object, got {type(d).__name__}")
        unknown = sorted(set(d) - WIRING_KEYS)
        if unknown:
            raise ValueError(f"wiring dict has unknown field {unknown[0]!r} (known: {', '.join(sorted(WIRING_KEYS))})")
        try:
            kind = d["kind"]
            adjacency = np.asarray(d["adjacency"])
            output_dim = d["output_dim"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"wiring dict is missing field {exc}") from None
        if adjacency.ndim == 2 and adjacency.shape[0] > MAX_UNITS:
            raise ValueError(f"wiring adjacency has {adjacency.shape[0]} units, at most {MAX_UNITS} are allowed")
        sensory = d.get("sensory_adjacency")
        target = {c.kind: c for c in (Wiring, NCP, FullyConnected, Random)}.get(kind)
        if target is None:
            raise ValueError(f"wiring dict has unknown kind={kind!r}")
        w = Wiring.__new__(target)
        Wiring.__init__(
            w,
            adjacency,
            output_dim,
            layers=d.get("layers"),
            sensory_adjacency=None if sensory is None else np.asarray(sensory),
            params=d.get("params"),
        )
        if d.get("input_dim") is not None and w.input_dim != d["input_dim"]:
            raise ValueError(f"wiring dict input_dim={d['input_dim']} does not match its sensory_adjacency")
        if d.get("units") is not None and w.units != d["units"]:
            raise ValueError(f"wiring dict units={d['units']!r} does not match its {w.units}x{w.units} adjacency")
        w._restore(d.get("params") or {})
        return w

    def _restore(self, params: dict[str, Any]) -> None:
        """Restore subclass state from ``params`` after :meth:`from_dict`."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Wiring):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        built = f"input_dim={self.input_dim}, sensory_synapses={self.sensory_synapse_count}, " if self.is_built else ""
        return f"{type(self).__name__}(units={self.units}, output_dim={self.output_dim}, {built}synapses={self.synapse_count})"


def _polarity(rng: np.random.Generator, n: int, p_excitatory: float) -> np.ndarray:
    return np.where(rng.random(n) < p_excitatory, 1, -1).astype(np.int8)


class NCP(Wiring):
    """Neural Circuit Policy wiring: sensory -> inter -> command -> motor (Lechner et al. 2020).

    Construction, each step seeded from ``seed``:

    1. each sensory input synapses onto ``sensory_fanout`` distinct inter neurons; an inter
       neuron left without input gets ``ceil(input_dim * sensory_fanout / inter)`` (the mean
       fan-in, capped at ``input_dim``) distinct sensory sources;
    2. each inter neuron synapses onto ``inter_fanout`` distinct command neurons; a command
       neuron left without input gets the mean fan-in of inter sources;
    3. ``recurrent_command_synapses`` distinct command -> command synapses (self-loops allowed);
    4. each motor neuron receives ``motor_fanin`` distinct command neurons; a command neuron left
       without a motor target gets the mean fan-out of motor targets.

    Every synapse is excitatory with probability ``p_excitatory`` (else inhibitory). Every
    neuron is reachable from the inputs, and every neuron has a path to a motor neuron.
    Neuron order: motor ``0..motor-1``, command next, inter last.
    """

    kind = "ncp"

    def __init__(
        self,
        inter: int,
        command: int,
        motor: int,
        sensory_fanout: int,
        inter_fanout: int,
        recurrent_command_synapses: int,
        motor_fanin: int,
        seed: int = 0,
        input_dim: int | None = None,
        p_excitatory: float = 0.5,
    ) -> None:
        inter = _check_int("inter", inter, 1)
        command = _check_int("command", command, 1)
        motor = _check_int("motor", motor, 1)
        sensory_fanout = _check_int("sensory_fanout", sensory_fanout, 1)
        inter_fanout = _check_int("inter_fanout", inter_fanout, 1)
        recurrent = _check_int("recurrent_command_synapses", recurrent_command_synapses, 0)
        motor_fanin = _check_int("motor_fanin", motor_fanin, 1)
        seed = _check_int("seed", seed, 0)
        p_excitatory = _check_probability("p_excitatory", p_excitatory)
        if sensory_fanout > inter:
            raise ValueError(
                f"wiring argument sensory_fanout={sensory_fanout} exceeds the inter layer size inter={inter}"
            )
        if inter_fanout > command:
            raise ValueError(
                f"wiring argument inter_fanout={inter_fanout} exceeds the command layer size command={command}"
            )
        if recurrent > command * command:
            raise ValueError(
                f"wiring argument recurrent_command_synapses={recurrent} exceeds command**2={command * command} possible synapses"
            )
        if motor_fanin > command:
            raise ValueError(
                f"wiring argument motor_fanin={motor_fanin} exceeds the command layer size command={command}"
            )

        self.motor_ids = np.arange(0, motor)
        self.command_ids = np.arange(motor, motor + command)
        self.inter_ids = np.arange(motor + command, motor + command + inter)
        units = inter + command + motor
        params = {
            "inter": inter,
            "command": command,
            "motor": motor,
            "sensory_fanout": sensory_fanout,
            "inter_fanout": inter_fanout,
            "recurrent_command_synapses": recurrent,
            "motor_fanin": motor_fanin,
            "seed": seed,
            "p_excitatory": p_excitatory,
        }
        adjacency = self._make_internal(params)
        layers = ["motor"] * motor + ["command"] * command + ["inter"] * inter
        super().__init__(adjacency, motor, layers=layers, params=params)
        if input_dim is not None:
            self.build(input_dim)

    def _restore(self, params: dict[str, Any]) -> None:
        motor, command, inter = params["motor"], params["command"], params["inter"]
        self.motor_ids = np.arange(0, motor)
        self.command_ids = np.arange(motor, motor + command)
        self.inter_ids = np.arange(motor + command, motor + command + inter)

    def _make_internal(self, p: dict[str, Any]) -> np.ndarray:
        rng = np.random.default_rng([p["seed"], 0])
        pe = p["p_excitatory"]
        units = p["inter"] + p["command"] + p["motor"]
        adj = np.zeros((units, units), dtype=np.int8)
        inter_ids, command_ids, motor_ids = self.inter_ids, self.command_ids, self.motor_ids

        # inter -> command, then fill command neurons without input
        for src in inter_ids:
            dests = rng.choice(command_ids, size=p["inter_fanout"], replace=False)
            adj[src, dests] = _polarity(rng, len(dests), pe)
        mean_fanin = min(len(inter_ids), max(1, math.ceil(len(inter_ids) * p["inter_fanout"] / len(command_ids))))
        for dest in command_ids:
            if not adj[inter_ids, dest].any():
                srcs = rng.choice(inter_ids, size=mean_fanin, replace=False)
                adj[srcs, dest] = _polarity(rng, len(srcs), pe)

        # recurrent command synapses: distinct (src, dest) pairs
        pairs = rng.choice(len(command_ids) ** 2, size=p["recurrent_command_synapses"], replace=False)
        for pair in pairs:
            src, dest = command_ids[pair // len(command_ids)], command_ids[pair % len(command_ids)]
            adj[src, dest] = _polarity(rng, 1, pe)[0]

        # command -> motor, then give every command neuron a motor target
        for dest in motor_ids:
            srcs = rng.choice(command_ids, size=p["motor_fanin"], replace=False)
            adj[srcs, dest] = _polarity(rng, len(srcs), pe)
        mean_fanout = min(len(motor_ids), max(1, math.ceil(len(motor_ids) * p["motor_fanin"] / len(command_ids))))
        for src in command_ids:
            if not adj[src, motor_ids].any():
                dests = rng.choice(motor_ids, size=mean_fanout, replace=False)
                adj[src, dests] = _polarity(rng, len(dests), pe)
        return adj

    def _make_sensory(self, input_dim: int) -> np.ndarray:
        p = self.params
        rng = np.random.default_rng([p["seed"], 1, input_dim])
        pe = p["p_excitatory"]
        sens = np.zeros((input_dim, self.units), dtype=np.int8)
        for src in range(input_dim):
            dests = rng.choice(self.inter_ids, size=p["sensory_fanout"], replace=False)
            sens[src, dests] = _polarity(rng, len(dests), pe)
        mean_fanin = min(input_dim, max(1, math.ceil(input_dim * p["sensory_fanout"] / len(self.inter_ids))))
        for dest in self.inter_ids:
            if not sens[:, dest].any():
                srcs = rng.choice(input_dim, size=mean_fanin, replace=False)
                sens[srcs, dest] = _polarity(rng, len(srcs), pe)
        return sens


#: ncp19's fan-outs. 32 inputs x 6 = 192 sensory synapses, 12 inter x 4 = 48 inter->command,
#: 7 recurrent command synapses, 6 command->motor: 192 + 48 + 7 + 6 = 253 synapses, the count
#: in the NCP paper (Table 2) for 32 features. With 6 of 12 inter targets per input and 4 of 6
#: command targets per inter neuron, the "fill" steps practically never add synapses.
NCP19_FANOUTS = {"sensory_fanout": 6, "inter_fanout": 4, "recurrent_command_synapses": 7, "motor_fanin": 6}


def ncp19(seed: int = 0, input_dim: int | None = 32) -> NCP:
    """The NCP paper's driving circuit: 12 inter, 6 command, 1 motor = 19 neurons, 32 inputs.

    See :data:`NCP19_FANOUTS` for the fan-outs (253 synapses in total for 32 inputs).
    """
    return NCP(inter=12, command=6, motor=1, seed=seed, input_dim=input_dim, **NCP19_FANOUTS)


class FullyConnected(Wiring):
    """Every neuron synapses onto every neuron (``self_connections`` decides the diagonal) and
    every input onto every neuron; polarities random (+1 with probability ``p_excitatory``).

    Motor neurons are ``0 .. output_dim-1``; the others form one "hidden" layer.
    """

    kind = "fully_connected"

    def __init__(
        self,
        units: int,
        output_dim: int = 1,
        input_dim: int | None = None,
        self_connections: bool = True,
        seed: int = 0,
        p_excitatory: float = 2.0 / 3.0,
    ) -> None:
        units = _check_int("units", units, 1)
        output_dim = _check_int("output_dim", output_dim, 1)
        seed = _check_int("seed", seed, 0)
        p_excitatory = _check_probability("p_excitatory", p_excitatory)
        if output_dim > units:
            raise ValueError(f"wiring argument output_dim={output_dim} exceeds units={units}")
        rng = np.random.default_rng([seed, 0])
        adj = _polarity(rng, units * units, p_excitatory).reshape(units, units)
        if not self_connections:
            np.fill_diagonal(adj, 0)
        params = {
            "units": units,
            "output_dim": output_dim,
            "self_connections": bool(self_connections),
            "seed": seed,
            "p_excitatory": p_excitatory,
        }
        super().__init__(adj, output_dim, params=params)
        if input_dim is not None:
            self.build(input_dim)

    def _make_sensory(self, input_dim: int) -> np.ndarray:
        rng = np.random.default_rng([self.params["seed"], 1, input_dim])
        return _polarity(rng, input_dim * self.units, self.params["p_excitatory"]).reshape(input_dim, self.units)


class Random(Wiring):
    """The same numbers of synapses (and of excitatory ones) as ``like``, placed uniformly at
    random: the NCP paper's random-wiring ablation. ``like`` must be built (its sensory count is
    copied). Motor neurons stay ``0 .. output_dim-1``; the other neurons form one "hidden" layer.
    """

    kind = "random"

    def __init__(self, like: Wiring, seed: int = 0) -> None:
        if not isinstance(like, Wiring):
            raise ValueError(f"wiring argument like={like!r} must be a Wiring")
        like_sensory = like._require_built()
        seed = _check_int("seed", seed, 0)
        rng = np.random.default_rng([seed, 2])
        units = like.units
        adj = np.zeros(units * units, dtype=np.int8)
        values = like.adjacency[like.adjacency != 0]
        adj[rng.choice(units * units, size=len(values), replace=False)] = rng.permutation(values)
        sens = np.zeros(like_sensory.size, dtype=np.int8)
        svalues = like_sensory[like_sensory != 0]
        sens[rng.choice(like_sensory.size, size=len(svalues), replace=False)] = rng.permutation(svalues)
        params = {"like_kind": like.kind, "seed": seed}
        super().__init__(
            adj.reshape(units, units),
            like.output_dim,
            sensory_adjacency=sens.reshape(like_sensory.shape),
            params=params,
        )


def plot_wiring(wiring: Wiring, path, title: str | None = None) -> None:
    """Draw ``wiring`` to a PNG at ``path``: neurons in columns by layer (sensory left, motor
    right), excitatory synapses as solid green arrows, inhibitory as dashed red, with a legend.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from drive.io import atomic_path

    sensory = wiring._require_built()
    columns: list[tuple[str, list[tuple[str, int]]]] = [("sensory", [("s", k) for k in range(sensory.shape[0])])]
    for layer in wiring.layer_names:
        columns.append((layer, [("n", i) for i in wiring.neurons_of_layer(layer)]))
    pos: dict[tuple[str, int], tuple[float, float]] = {}
    for col, (_, nodes) in enumerate(columns):
        for row, node in enumerate(nodes):
            pos[node] = (float(col), (row + 0.5) / len(nodes))
    colours = {"sensory": "#9e9e9e", "inter": "#4c72b0", "command": "#8172b2", "hidden": "#4c72b0", "motor": "#dd8452"}

    fig, ax = plt.subplots(figsize=(2.2 * len(columns) + 2, 7))
    style = {1: dict(color="#2ca02c", linestyle="-"), -1: dict(color="#d62728", linestyle="--")}
    edges = [(("s", k), ("n", j), sensory[k, j]) for k, j in zip(*np.nonzero(sensory))]
    edges += [(("n", i), ("n", j), wiring.adjacency[i, j]) for i, j in zip(*np.nonzero(wiring.adjacency))]
    for src, dst, sign in edges:
        (x0, y0), (x1, y1) = pos[src], pos[dst]
        rad = 0.0
        if x0 == x1:  # within a layer (recurrent): curve the arrow; self-loops as a small circle
            if src == dst:
                ax.add_patch(plt.Circle((x0 + 0.06, y0), 0.03, fill=False, lw=0.8, **style[int(sign)]))
                continue
            rad = 0.5
        ax.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            arrowprops=dict(
                arrowstyle="-|>",
                lw=0.6,
                alpha=0.6,
                shrinkA=5,
                shrinkB=5,
                connectionstyle=f"arc3,rad={rad}",
                **style[int(sign)],
            ),
        )
    labels = wiring.neuron_labels
    for col, (layer, nodes) in enumerate(columns):
        xs = [pos[n][0] for n in nodes]
        ys = [pos[n][1] for n in nodes]
        ax.scatter(
            xs, ys, s=120 if layer != "sensory" else 30, c=colours[layer], zorder=3, edgecolors="k", linewidths=0.5
        )
        if layer != "sensory":
            for node in nodes:
                ax.text(pos[node][0] + 0.08, pos[node][1], labels[node[1]], fontsize=7, va="center")
        ax.text(col, 1.03, f"{layer} ({len(nodes)})", ha="center", fontsize=10)
    handles = [
        Line2D([0], [0], color="#2ca02c", linestyle="-", label="excitatory synapse"),
        Line2D([0], [0], color="#d62728", linestyle="--", label="inhibitory synapse"),
    ]
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, -0.08), ncol=2, frameon=False)
    ax.set_xlim(-0.5, len(columns) - 0.5)
    ax.set_ylim(-0.02, 1.08)
    ax.axis("off")
    ax.set_title(title or f"{type(wiring).__name__}: {wiring.units} neurons, {wiring.total_synapse_count} synapses")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
