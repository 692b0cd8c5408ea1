"""TensorProto to numpy, without TensorFlow (``tensor_util.make_ndarray`` needs it).

>>> from tensorboard.compat.proto import tensor_pb2, types_pb2
>>> proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[0.5])
>>> tensor_to_array(proto)
array(0.5, dtype=float32)
"""

from __future__ import annotations

import math

import numpy as np

# DataType enum values of tensorboard/compat/proto/types.proto.
_DTYPES: dict[int, tuple[np.dtype, str]] = {
    1: (np.dtype("<f4"), "float_val"),
    2: (np.dtype("<f8"), "double_val"),
    3: (np.dtype("<i4"), "int_val"),
    4: (np.dtype("u1"), "int_val"),
    5: (np.dtype("<i2"), "int_val"),
    6: (np.dtype("i1"), "int_val"),
    9: (np.dtype("<i8"), "int64_val"),
    10: (np.dtype("?"), "bool_val"),
    17: (np.dtype("<u2"), "int_val"),
    19: (np.dtype("<f2"), "half_val"),
    22: (np.dtype("<u4"), "uint32_val"),
    23: (np.dtype("<u8"), "uint64_val"),
}
DT_STRING = 7


def tensor_to_array(tensor) -> np.ndarray:
    """The values of a numeric ``TensorProto`` as an array of its shape.

    Raises ``ValueError`` for a dtype it does not know or a size that does not
    match the shape; the caller turns that into a skipped-record warning.
    """
    shape = tuple(dim.size for dim in tensor.tensor_shape.dim)
    if any(size < 0 for size in shape):
        raise ValueError(f"tensor with unknown dimension {shape}")
    size = math.prod(shape)
    if tensor.dtype == DT_STRING:
        values = np.array(list(tensor.string_val), dtype=object)
        return _shaped(values, shape, size)
    if tensor.dtype not in _DTYPES:
        raise ValueError(f"tensor dtype {tensor.dtype} is not numeric")
    dtype, field = _DTYPES[tensor.dtype]
    if tensor.tensor_content:
        if len(tensor.tensor_content) % dtype.itemsize:
            raise ValueError("tensor content is not a whole number of values")
        values = np.frombuffer(tensor.tensor_content, dtype=dtype)
    elif field == "half_val":
        values = np.asarray(tensor.half_val, dtype=np.uint16).view(np.float16)
    else:
        values = np.asarray(getattr(tensor, field), dtype=dtype)
    return _shaped(values, shape, size)


def _shaped(values: np.ndarray, shape: tuple[int, ...], size: int) -> np.ndarray:
    # The proto may store a repeated value once for the whole tensor.
    if values.size == 1 and size != 1:
        values = np.full(size, values[0], dtype=values.dtype)
    if values.size != size:
        raise ValueError(f"tensor holds {values.size} values for shape {shape}")
    return values.reshape(shape)
