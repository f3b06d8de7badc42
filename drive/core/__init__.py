"""The liquid core: NCP wirings, the LTC network (fused step and continuous solvers), the
baseline controllers, and the controller interface/registry the rest of `drive` builds on.

- :mod:`drive.core.wirings` - synapse graphs (NCP, fully connected, random) and their plot;
- :mod:`drive.core.ltc` - LTC parameters and the fused semi-implicit solver;
- :mod:`drive.core.ode` - the same ODE solved by torchdiffeq (euler/rk4/dopri5, adjoint);
- :mod:`drive.core.controller_base` - the :class:`Controller` interface;
- :mod:`drive.core.ltc_controller` - the LTC controller on a wiring;
- :mod:`drive.core.baselines` - feedforward, LSTM, GRU, CT-RNN, CfC;
- :mod:`drive.core.controllers` - the registry: controller names, ``build_controller``, ``controller_from_config``;
- :mod:`drive.core.inspect` - ``drive inspect``: neurons, synapses, trainable parameters.
"""

from drive.core.controllers import (
    ALL_CONTROLLER_NAMES,
    CONTROLLER_NAMES,
    Controller,
    build_controller,
    controller_from_config,
)

__all__ = ["ALL_CONTROLLER_NAMES", "CONTROLLER_NAMES", "Controller", "build_controller", "controller_from_config"]
