"""Initialise a learned initial state from data statistics."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from h0._carry import carry_names, carry_template
from h0._regularize import SCOPE
from h0._strategies import Zeros
from h0._typing import PyTree


def fit_initial_state(
    rnn: Any,
    variables: PyTree,
    inputs: Any,
    *,
    seq_lengths: Any = None,
) -> PyTree:
    """Set a learned initial state to the mean carry the cell reaches on ``inputs``.

    Runs the RNN's cell from zeros over ``inputs`` (e.g. training windows), averages the final
    carry over all sequences, and writes it into the ``init_*`` parameters of the RNN's
    :class:`h0.Learned` (or :class:`h0.LearnedNoisy`) strategy. A state fitted this way starts
    where the process typically is, rather than at zero, which shortens the transient at the
    start of each window.

    Args:
        rnn: An :class:`h0.RNN` whose ``initial_state`` is ``Learned`` or ``LearnedNoisy``.
        variables: The RNN's variables (from ``rnn.init``).
        inputs: ``[*batch, time, features]`` windows to average over.
        seq_lengths: Optional valid lengths, as for the RNN call.

    Returns:
        A copy of ``variables`` with the initial-state parameters replaced.

    Raises:
        ValueError: When the RNN's strategy has no ``init_*`` parameters to fit.

    Example:
        >>> import flax.linen as nn, jax, jax.numpy as jnp, h0
        >>> rnn = h0.RNN(nn.GRUCell(4), h0.Learned())
        >>> x = jnp.ones((8, 20, 2))
        >>> v = h0.fit_initial_state(rnn, rnn.init(jax.random.key(0), x), x)
        >>> bool(abs(v['params']['initial_state']['init_h']).sum() > 0)
        True
    """
    params = variables["params"]
    state = dict(params.get(SCOPE, {}))
    inputs = jnp.asarray(inputs)
    template = carry_template(rnn.cell, inputs.shape[-1])
    names = carry_names(rnn.cell, template)
    targets = [f"init_{name}" for name in jax.tree.leaves(names)]
    if not any(t in state for t in targets):
        raise ValueError(
            f"fit_initial_state needs an RNN with a Learned or LearnedNoisy initial state; this one "
            f"({type(rnn.initial_state).__name__}) has no parameters {targets}."
        )
    probe = rnn.clone(initial_state=Zeros(), return_carry=True, parent=None)
    carry, _ = probe.apply({"params": {"cell": params["cell"]}}, inputs, seq_lengths=seq_lengths)
    batch_axes = tuple(range(inputs.ndim - 2))
    means = jax.tree.map(lambda c: jnp.mean(c, axis=batch_axes), carry)
    for name, mean in zip(jax.tree.leaves(names), jax.tree.leaves(means), strict=True):
        key = f"init_{name}"
        if key in state:
            state[key] = mean.astype(state[key].dtype).reshape(state[key].shape)
    new_params = {**params, SCOPE: state}
    return {**variables, "params": new_params}
