"""Scale out with JAX's sharding: meshes, sharded batches, a data-parallel train step.

Example:
    >>> import h0.parallel as hp
    >>> hp.data_mesh().axis_names
    ('data',)

    A data-parallel training step for an :class:`h0.RNN`: parameters and optimiser state
    replicated, every leaf of the batch (inputs, targets, lengths) split along its first axis
    over all devices. The batch size must be a multiple of the number of devices; on one device
    this is an ordinary jitted step.

    >>> import flax.linen as nn, jax, jax.numpy as jnp, optax, h0
    >>> rnn = h0.RNN(nn.GRUCell(4), h0.Learned())
    >>> batch = {'x': jnp.ones((8, 5, 2)), 'y': jnp.zeros((8, 5, 4)),
    ...          'lengths': jnp.array([5, 3] * 4)}
    >>> def loss_fn(params, batch, key):
    ...     out = rnn.apply({'params': params}, batch['x'], seq_lengths=batch['lengths'])
    ...     return jnp.mean((out - batch['y']) ** 2)
    >>> mesh, tx = hp.data_mesh(), optax.adam(1e-2)
    >>> step = hp.make_train_step(loss_fn, tx, mesh)
    >>> params = rnn.init(jax.random.key(0), batch['x'])['params']
    >>> params, opt_state = hp.replicate(params, mesh), hp.replicate(tx.init(params), mesh)
    >>> params, opt_state, loss = step(params, opt_state, hp.shard_batch(batch, mesh),
    ...                                jax.random.key(1))
    >>> bool(loss > 0), params['initial_state']['init_h'].sharding.is_fully_replicated
    (True, True)

    Many series, one program: :func:`make_ensemble_train_step` trains ``N`` independent
    parameter sets (one per series) as one vmapped, jitted step; every argument carries the
    model axis first.

    >>> keys = jax.random.split(jax.random.key(2), 3)                 # N = 3 models
    >>> params = jax.vmap(lambda k: rnn.init(k, batch['x'])['params'])(keys)
    >>> ensemble = {k: jnp.stack([v] * 3) for k, v in batch.items()}  # [N, b, ...]
    >>> step = hp.make_ensemble_train_step(loss_fn, tx)
    >>> params, opt_state, losses = step(params, jax.vmap(tx.init)(params), ensemble, keys)
    >>> losses.shape, params['initial_state']['init_h'].shape
    ((3,), (3, 4))
"""

from h0._parallel import (
    DATA_AXIS,
    batch_sharding,
    data_mesh,
    make_ensemble_train_step,
    make_train_step,
    model_sharding,
    replicate,
    replicated,
    shard_batch,
    stack,
    to_host,
    unstack,
)

__all__ = [
    "DATA_AXIS",
    "batch_sharding",
    "data_mesh",
    "make_ensemble_train_step",
    "make_train_step",
    "model_sharding",
    "replicate",
    "replicated",
    "shard_batch",
    "stack",
    "to_host",
    "unstack",
]
