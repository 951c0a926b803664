"""Loading and running a .tflite file with LiteRT (ai-edge-litert) or tflite-runtime.

``TFLiteModel(path)`` validates the file before the interpreter sees it (it exists, it is a TFLite
flatbuffer with the "TFL3" identifier), builds the interpreter with the XNNPACK CPU delegate on and a
configurable thread count, and describes its tensors as ``TensorSpec``. Anything wrong is a
``ModelError`` naming the file and what was expected.

Runtimes: ``"litert"`` (ai-edge-litert, the default), ``"tflite"`` (tflite-runtime, for boards
without a LiteRT wheel) or ``"auto"`` (LiteRT when importable, else tflite-runtime). tflite-runtime
2.14 was built against numpy 1: it imports under numpy 2 but fails inside ``Interpreter()``; that case
is recognised and reported as such.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from agridrone.errors import ConfigError, ModelError

RUNTIMES = ("auto", "litert", "tflite")
TFLITE_IDENTIFIER = b"TFL3"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor of a model."""

    name: str
    index: int
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0 and self.dtype in (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16))

    def describe(self) -> str:
        q = f" q(scale={self.scale:.6g}, zp={self.zero_point})" if self.quantized else ""
        return f"{self.name or '#' + str(self.index)} {list(self.shape)} {self.dtype.name}{q}"

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Real values (float32) of a tensor read from this output."""
        if not self.quantized:
            return np.asarray(q, dtype=np.float32)
        return (np.asarray(q).astype(np.float32) - np.float32(self.zero_point)) * np.float32(self.scale)


def _spec(detail: dict[str, Any]) -> TensorSpec:
    scale, zp = detail.get("quantization", (0.0, 0))
    qp = detail.get("quantization_parameters") or {}
    scales = qp.get("scales")
    if (not scale) and scales is not None and len(scales) == 1:
        scale, zp = float(scales[0]), int(qp["zero_points"][0])
    return TensorSpec(name=str(detail.get("name", "")), index=int(detail["index"]),
                      shape=tuple(int(v) for v in detail["shape"]), dtype=np.dtype(detail["dtype"]),
                      scale=float(scale), zero_point=int(zp))


def shipped_model(filename: str) -> Path:
    """``models/<filename>`` in the working directory if there, else beside the installed package."""
    local = Path("models") / filename
    if local.is_file():
        return local
    packaged = Path(__file__).resolve().parents[2] / "models" / filename
    return packaged if packaged.is_file() else local


def read_tflite_file(path: str | os.PathLike) -> bytes:
    """The bytes of a .tflite file, after checking it exists and carries the TFLite identifier."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model {p}: expected a .tflite file, got no such file")
    if not p.is_file():
        raise ModelError(f"model {p}: expected a .tflite file, got a directory or special file")
    data = p.read_bytes()
    if len(data) < 16:
        raise ModelError(f"model {p}: expected a TFLite flatbuffer, got {len(data)} bytes (empty or truncated)")
    ident = data[4:8]
    if ident != TFLITE_IDENTIFIER:
        raise ModelError(f"model {p}: expected a TFLite flatbuffer (identifier 'TFL3' at bytes 4..8), "
                         f"got {ident!r}")
    root = int.from_bytes(data[0:4], "little")
    if not 8 <= root < len(data):
        raise ModelError(f"model {p}: expected a TFLite flatbuffer, got a root offset {root} outside the "
                         f"{len(data)}-byte file (truncated)")
    return data


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Capture what the C++ runtime prints on fd 2 (its INFO lines) while building the interpreter."""
    lines: list[str] = []
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (embedded interpreter): nothing to capture
        yield lines
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode("utf-8", "replace").splitlines())


def _litert_interpreter(data: bytes, num_threads: int):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    return Interpreter(model_content=data, num_threads=num_threads,
                       experimental_op_resolver_type=OpResolverType.AUTO)  # AUTO = built-ins + XNNPACK


def _tflite_runtime_interpreter(data: bytes, num_threads: int, path: Path):
    import tflite_runtime
    from tflite_runtime.interpreter import Interpreter

    try:
        from tflite_runtime.interpreter import OpResolverType
        kwargs = {"experimental_op_resolver_type": OpResolverType.AUTO}
    except ImportError:  # very old wheels: XNNPACK is their default anyway
        kwargs = {}
    try:
        return Interpreter(model_content=data, num_threads=num_threads, **kwargs)
    except Exception as err:  # noqa: BLE001 - classify the failure below
        version = getattr(tflite_runtime, "__version__", "?")
        if int(np.__version__.split(".")[0]) >= 2 and _built_for_numpy1(version, err):
            raise ModelError(
                f"model {path}: tflite-runtime {version} was built for numpy 1 and cannot run under numpy "
                f"{np.__version__} (Interpreter() failed: {type(err).__name__}: {err}); install ai-edge-litert, "
                f"or use numpy<2 with tflite-runtime") from None
        raise


def _built_for_numpy1(version: str, err: Exception) -> bool:
    text = f"{type(err).__name__} {err}".lower()
    if any(s in text for s in ("numpy", "_array_api", "multiarray", "compiled using")):
        return True
    try:
        major, minor = (int(v) for v in version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) <= (2, 14)  # the last tflite-runtime wheels, all built against numpy 1


def available_runtimes() -> list[str]:
    """The runtimes importable here (no interpreter is built)."""
    found = []
    for name, module in (("litert", "ai_edge_litert.interpreter"), ("tflite", "tflite_runtime.interpreter")):
        try:
            __import__(module)
        except Exception:  # noqa: BLE001 - a broken wheel counts as absent
            continue
        found.append(name)
    return found


class TFLiteModel:
    """A loaded model: tensors described, inputs set and outputs read by ``TensorSpec``."""

    def __init__(self, path: str | os.PathLike, *, num_threads: int = 2, runtime: str = "auto") -> None:
        self.path = Path(path)
        if runtime not in RUNTIMES:
            raise ConfigError(f"runtime: expected one of {', '.join(RUNTIMES)}, got {runtime!r}")
        if not isinstance(num_threads, int) or num_threads < 1:
            raise ConfigError(f"num_threads: expected an integer >= 1, got {num_threads!r}")
        self.num_threads = num_threads
        data = read_tflite_file(self.path)
        self.file_bytes = len(data)
        order = {"auto": ("litert", "tflite"), "litert": ("litert",), "tflite": ("tflite",)}[runtime]
        missing = []
        self._interp = None
        for name in order:
            failure: Exception | None = None
            interp = None
            with _captured_stderr() as log:
                try:
                    if name == "litert":
                        interp = _litert_interpreter(data, num_threads)
                    else:
                        interp = _tflite_runtime_interpreter(data, num_threads, self.path)
                    interp.allocate_tensors()
                except ModelError:
                    raise
                except ImportError as err:
                    if (getattr(err, "name", None) or "").split(".")[0] in ("ai_edge_litert", "tflite_runtime"):
                        missing.append(name)
                        continue
                    failure = err
                except Exception as err:  # noqa: BLE001 - reported below in one line
                    failure = err
            if failure is not None:
                raise ModelError(f"model {self.path}: not a loadable TFLite model ({type(failure).__name__}: "
                                 f"{_first_line(failure, log)})")
            self._interp = interp
            self.runtime = name
            break
        if self._interp is None:
            pkgs = {"litert": "ai-edge-litert", "tflite": "tflite-runtime"}
            raise ModelError(f"model {self.path}: expected a TFLite runtime ({' or '.join(pkgs[m] for m in missing)}),"
                             f" got none installed")
        self._data = data  # the interpreter reads from this buffer: keep it alive
        self._refresh()

    def _refresh(self) -> None:
        self.inputs = tuple(_spec(d) for d in self._interp.get_input_details())
        self.outputs = tuple(_spec(d) for d in self._interp.get_output_details())

    # --- graph introspection -------------------------------------------------------------------
    def ops(self) -> list[dict[str, Any]]:
        """The operators (name, input and output tensor indices); empty when the runtime cannot tell."""
        try:
            return list(self._interp._get_ops_details())
        except Exception:  # noqa: BLE001 - an optional introspection API
            return []

    def tensor_spec(self, index: int) -> TensorSpec | None:
        try:
            for d in self._interp.get_tensor_details():
                if int(d["index"]) == int(index):
                    return _spec(d)
        except Exception:  # noqa: BLE001 - an optional introspection API
            return None
        return None

    def signature_output_names(self) -> dict[int, str]:
        """Tensor index -> output name in the model's (first) signature, e.g. 'detection_scores'."""
        try:
            sigs = self._interp._get_full_signature_list()
        except Exception:  # noqa: BLE001 - an optional introspection API
            return {}
        for sig in (sigs or {}).values():
            return {int(idx): str(name) for name, idx in (sig.get("outputs") or {}).items()}
        return {}

    @property
    def xnnpack(self) -> bool:
        """True when the XNNPACK delegate took over part of the graph."""
        return any(op.get("op_name") == "DELEGATE" for op in self.ops())

    # --- running -------------------------------------------------------------------------------
    def resize_input(self, i: int, shape: tuple[int, ...]) -> None:
        spec = self.inputs[i]
        if tuple(shape) == spec.shape:
            return
        self._interp.resize_tensor_input(spec.index, list(shape), strict=False)
        self._interp.allocate_tensors()
        self._refresh()

    def set_input(self, i: int, array: np.ndarray) -> None:
        self._interp.set_tensor(self.inputs[i].index, array)

    def invoke(self) -> None:
        self._interp.invoke()

    def output(self, i: int) -> np.ndarray:
        """A copy of output ``i`` in its stored dtype (quantized outputs stay quantized)."""
        return self._interp.get_tensor(self.outputs[i].index)

    def output_view(self, i: int) -> np.ndarray:
        """Output ``i`` without a copy; only valid until the next ``invoke``."""
        return self._interp.tensor(self.outputs[i].index)()

    @property
    def data(self) -> bytes:
        """The model file's bytes (as loaded)."""
        return self._data

    @property
    def interpreter(self):
        return self._interp

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "bytes": self.file_bytes, "runtime": self.runtime,
                "num_threads": self.num_threads, "xnnpack": self.xnnpack,
                "inputs": [_spec_dict(s) for s in self.inputs], "outputs": [_spec_dict(s) for s in self.outputs]}


def _spec_dict(s: TensorSpec) -> dict[str, Any]:
    d: dict[str, Any] = {"name": s.name, "index": s.index, "shape": list(s.shape), "dtype": s.dtype.name}
    if s.quantized:
        d["quantization"] = {"scale": s.scale, "zero_point": s.zero_point}
    return d


def _first_line(err: Exception, log: list[str]) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    errors = [ln.strip() for ln in log if "ERROR" in ln]
    if errors:
        text += f"; runtime said: {errors[0][:200]}"
    return text[:400]
