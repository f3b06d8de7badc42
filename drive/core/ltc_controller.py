"""The LTC controller: an LTC network (:class:`drive.core.ltc.LTC`) on a wiring, and the wirings
of the registry's LTC models (``ncp19`` and the NCP paper's ablations ``ltc-fc``, ``ltc-random``)."""

from __future__ import annotations

from torch import Tensor

from drive.core.controller_base import Controller
from drive.core.ltc import LTC
from drive.core.wirings import NCP, NCP19_FANOUTS, FullyConnected, Random, Wiring, ncp19


class LTCController(Controller):
    """An LTC network (:class:`drive.core.ltc.LTC`) on a wiring. The state is the neuron
    potentials (B, units); outputs are the affine-mapped motor neurons. Uses timespans."""

    uses_timespans = True

    def __init__(
        self,
        name: str,
        wiring: Wiring,
        in_features: int,
        out_features: int,
        ode_unfolds: int = 6,
        solver: str = "fused",
        adjoint: bool = False,
        epsilon: float = 1e-8,
        rtol: float = 1e-6,
        atol: float = 1e-8,
        seed: int | None = 0,
    ) -> None:
        super().__init__()
        if wiring.output_dim != out_features:
            raise ValueError(
                f"out_features={out_features} does not match the wiring's {wiring.output_dim} motor neurons"
            )
        self.core = LTC(
            wiring,
            in_features,
            ode_unfolds=ode_unfolds,
            epsilon=epsilon,
            seed=seed,
            solver=solver,
            adjoint=adjoint,
            rtol=rtol,
            atol=atol,
        )
        self.name = name
        self.in_features, self.out_features = in_features, out_features
        self.state_size = wiring.units
        self.neuron_labels = wiring.neuron_labels
        self.config = {
            "name": name,
            "in_features": in_features,
            "out_features": out_features,
            "ode_unfolds": ode_unfolds,
            "solver": solver,
            "adjoint": bool(adjoint),
            "epsilon": epsilon,
            "rtol": rtol,
            "atol": atol,
            "seed": seed,
            "wiring": wiring.to_dict(),
        }

    @property
    def wiring(self) -> Wiring:
        return self.core.wiring

    def step(self, x: Tensor, state: Tensor | None, timespans: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """:meth:`Controller.step`, through the core's lean batch-1 path where it applies
        (:meth:`drive.core.ltc.LTCBase.fast_step`: no-grad CPU inference)."""
        fast = self._modules["core"].fast_step(x, state, timespans)  # (skips nn.Module.__getattr__)
        return fast if fast is not None else super().step(x, state, timespans)

    def _forward(self, x: Tensor, state: Tensor, timespans: Tensor | None) -> tuple[Tensor, Tensor]:
        states = self.core.solve(x, state, timespans)
        return self.core.map_outputs(states), states[:, -1]

    def neuron_activity(self, state: Tensor) -> Tensor:
        """The neuron potentials themselves (B, units)."""
        return state


def ltc_wiring(name: str, in_features: int, out_features: int, seed: int) -> Wiring:
    if name == "ncp19":
        if out_features == 1:
            return ncp19(seed=seed, input_dim=in_features)
        fan = dict(NCP19_FANOUTS)
        return NCP(12, 6, out_features, seed=seed, input_dim=in_features, **fan)
    if name == "ltc-fc":
        return FullyConnected(units=18 + out_features, output_dim=out_features, input_dim=in_features, seed=seed)
    if name == "ltc-random":
        return Random(like=ltc_wiring("ncp19", in_features, out_features, seed), seed=seed)
    raise ValueError(f"unknown LTC controller name={name!r}")
