"""Scale out with JAX's sharding: meshes, sharded batches, a data-parallel train step.

Example:
    >>> import h0.parallel as hp
    >>> hp.data_mesh().axis_names
    ('data',)
"""

from h0._parallel import (
    DATA_AXIS,
    batch_sharding,
    data_mesh,
    make_train_step,
    replicate,
    replicated,
    shard_batch,
)

__all__ = [
    "DATA_AXIS",
    "batch_sharding",
    "data_mesh",
    "make_train_step",
    "replicate",
    "replicated",
    "shard_batch",
]
