"""Data parallelism with JAX's own sharding: a device mesh, sharded batches, a sharded train step.

Parameters and optimiser state are replicated; the batch is split along its first axis over the
mesh's ``'data'`` axis. ``jax.jit`` with these shardings inserts the gradient all-reduce itself, so the
same step function runs unchanged on one device, on several devices of one host, and on many hosts
(after ``jax.distributed.initialize()``, with the mesh built over ``jax.devices()``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from h0._typing import Array, PyTree

DATA_AXIS = "data"


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh (axis ``'data'``) over ``devices`` (default: every device, all hosts).

    Example:
        >>> mesh = data_mesh()
        >>> mesh.axis_names, mesh.devices.size == len(jax.devices())
        (('data',), True)
    """
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding that keeps a full copy on every device of ``mesh``."""
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding that splits an array's first axis over the mesh's ``'data'`` axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def shard_batch(batch: PyTree, mesh: Mesh) -> PyTree:
    """Place a batch on ``mesh``, split along the first axis of every leaf.

    Args:
        batch: A pytree of arrays whose leading axis is the batch.
        mesh: A mesh from :func:`data_mesh`.

    Returns:
        The same pytree as sharded ``jax.Array``s.

    Raises:
        ValueError: When a leaf's batch size does not divide evenly over the devices.
    """
    size = mesh.shape[DATA_AXIS]

    def place(x: Any) -> Array:
        x = np.asarray(x) if not isinstance(x, jax.Array) else x
        if x.ndim == 0 or x.shape[0] % size:
            raise ValueError(
                f"batch leaf of shape {tuple(x.shape)} cannot be split over {size} devices: its first "
                f"axis must be a multiple of {size} (pad the batch or drop the remainder)."
            )
        return jax.device_put(x, batch_sharding(mesh))

    return jax.tree.map(place, batch)


def to_host(x: Any) -> np.ndarray:
    """The value of an array on the host, also of one split over other processes' devices.

    ``np.asarray`` cannot read a ``jax.Array`` whose shards live partly in other processes (a
    batch-sharded output of a multi-process mesh); such an array is gathered from every process
    first (``multihost_utils.process_allgather``), so every process gets the whole value. Every
    process must call it for the same array (it is a collective).

    Example:
        >>> import jax.numpy as jnp
        >>> to_host(jnp.arange(3)).tolist()
        [0, 1, 2]
    """
    if isinstance(x, jax.Array) and not (x.is_fully_addressable or x.is_fully_replicated):
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """Place a pytree (parameters, optimiser state) on every device of ``mesh``."""
    return jax.device_put(tree, replicated(mesh))


def make_train_step(
    loss_fn: Callable[[PyTree, PyTree, Array], Array],
    optimizer: optax.GradientTransformation,
    mesh: Mesh | None = None,
) -> Callable[[PyTree, PyTree, PyTree, Array], tuple[PyTree, PyTree, Array]]:
    """A jitted data-parallel training step.

    Args:
        loss_fn: ``loss_fn(params, batch, key) -> scalar``, a *mean* over the batch (a mean
            over shards is then the mean over the whole batch, exactly as on one device).
        optimizer: An optax transformation.
        mesh: A mesh from :func:`data_mesh`; ``None`` compiles for the default device.

    Returns:
        ``step(params, opt_state, batch, key) -> (params, opt_state, loss)``.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> loss = lambda p, batch, key: jnp.mean((batch['x'] * p['w'] - batch['y']) ** 2)
        >>> step = make_train_step(loss, optax.sgd(0.1), data_mesh())
        >>> params = {'w': jnp.array(0.0)}
        >>> batch = {'x': jnp.ones(8), 'y': 2 * jnp.ones(8)}
        >>> params, state, l = step(params, optax.sgd(0.1).init(params), batch, jax.random.key(0))
        >>> round(float(params['w']), 4)
        0.4
    """

    def step(params: PyTree, opt_state: PyTree, batch: PyTree, key: Array):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    if mesh is None:
        return jax.jit(step)
    rep, data = replicated(mesh), batch_sharding(mesh)
    return jax.jit(
        step,
        in_shardings=(rep, rep, data, rep),
        out_shardings=(rep, rep, rep),
    )


# ------------------------------------------------------------------ many models, one program


def model_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding that splits the leading *model* axis of an ensemble over ``'data'``."""
    return NamedSharding(mesh, P(DATA_AXIS))


def stack(trees: Sequence[PyTree]) -> PyTree:
    """Stack pytrees of one structure along a new leading axis (the ensemble's model axis).

    Example:
        >>> import jax.numpy as jnp
        >>> stack([{'w': jnp.zeros(2)}, {'w': jnp.ones(2)}])['w'].shape
        (2, 2)
    """
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def unstack(tree: PyTree) -> list[PyTree]:
    """The inverse of :func:`stack`: one pytree per entry of the leading axis.

    Example:
        >>> import jax.numpy as jnp
        >>> [float(t['w']) for t in unstack({'w': jnp.array([1.0, 2.0])})]
        [1.0, 2.0]
    """
    leaves, treedef = jax.tree.flatten(tree)
    size = leaves[0].shape[0] if leaves else 0
    return [jax.tree.unflatten(treedef, [leaf[i] for leaf in leaves]) for i in range(size)]


def make_ensemble_train_step(
    loss_fn: Callable[[PyTree, PyTree, Array], Array],
    optimizer: optax.GradientTransformation,
    mesh: Mesh | None = None,
    *,
    masked: bool = False,
    vectorize: int | None = None,
) -> Callable[..., tuple[PyTree, PyTree, Array]]:
    """One jitted step that trains ``N`` independent models: many series, one program.

    The step of :func:`make_train_step`, vectorised with :func:`jax.vmap` over a leading model
    axis of every argument: model ``i`` sees only ``params[i]``, ``opt_state[i]``, ``batch[i]``
    and ``keys[i]``, so gradients, gradient clipping and optimiser statistics are per model, and
    ``N`` models trained together equal each trained alone (within float32 summation order).
    One compiled program replaces ``N`` Python-level steps; with a mesh the *models* (not the
    batch) are split over the ``'data'`` axis, so each device trains ``N / devices`` of them
    and no gradient is communicated.

    Args:
        loss_fn: ``loss_fn(params, batch, key) -> scalar`` for one model.
        optimizer: An optax transformation, applied to each model separately.
        mesh: A mesh from :func:`data_mesh`; ``N`` must then be a multiple of its size.
            ``None`` compiles for the default device.
        masked: The step takes a fifth argument ``active [N]`` (bool): a model whose entry is
            ``False`` keeps its parameters and optimiser state, so models that take different
            numbers of steps (series of different lengths) each follow exactly their own steps.
        vectorize: How many models one vectorised pass trains; the passes run in sequence in
            the same program (:func:`jax.lax.map` with ``batch_size``). ``None`` vectorises all
            ``N`` at once. Small, overhead-bound models are faster in small groups on a CPU: a
            vmapped step batches every matmul over the model axis, which XLA's CPU backend runs
            slower per model than a loop of plain matmuls (``benchmarks/ensemble_speed.py``:
            the detector's model, ``N = 58``, about 3x). Not with a ``mesh``: there the models
            are split over the devices instead.

    Returns:
        ``step(params, opt_state, batch, keys) -> (params, opt_state, losses)``: every leaf of
        ``params``, ``opt_state`` and ``batch`` has the model axis first (``[N, ...]``; batches
        ``[N, b, ...]``), ``keys`` is ``[N]`` and ``losses`` is ``[N]``. Build the stacked
        state with ``stack([...])`` or ``jax.vmap(model.init)(keys, ...)`` and
        ``jax.vmap(optimizer.init)(params)``.

    Example:
        Three one-weight regressions, each fitted to its own slope:

        >>> import jax, jax.numpy as jnp, optax
        >>> loss = lambda p, b, key: jnp.mean((b['x'] * p['w'] - b['y']) ** 2)
        >>> tx = optax.sgd(0.1)
        >>> step = make_ensemble_train_step(loss, tx)
        >>> params = {'w': jnp.zeros(3)}                              # N = 3 models
        >>> x = jnp.ones((3, 8))                                      # [N, b]
        >>> batch = {'x': x, 'y': x * jnp.array([[1.0], [2.0], [3.0]])}
        >>> state = jax.vmap(tx.init)(params)
        >>> keys = jax.random.split(jax.random.key(0), 3)
        >>> for _ in range(50):
        ...     params, state, losses = step(params, state, batch, keys)
        >>> [round(float(w), 3) for w in params['w']], losses.shape
        ([1.0, 2.0, 3.0], (3,))
    """

    def one(params: PyTree, opt_state: PyTree, batch: PyTree, key: Array, active: Any = True):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch, key)
        updates, new_state = optimizer.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        if masked:
            keep = lambda new, old: jnp.where(active, new, old)
            new_params = jax.tree.map(keep, new_params, params)
            new_state = jax.tree.map(keep, new_state, opt_state)
        return new_params, new_state, loss

    if vectorize is None:
        step = jax.vmap(one)
    else:
        if vectorize < 1:
            raise ValueError(f"vectorize must be a positive number of models; got {vectorize}.")
        if mesh is not None:
            raise ValueError("vectorize applies without a mesh; with one the models are sharded.")

        def step(*args: Any) -> tuple[PyTree, PyTree, Array]:
            n = jax.tree.leaves(args[0])[0].shape[0]
            return jax.lax.map(lambda a: one(*a), args, batch_size=min(vectorize, n))

    if mesh is None:
        return jax.jit(step)
    models = model_sharding(mesh)
    return jax.jit(step, in_shardings=models, out_shardings=models)
