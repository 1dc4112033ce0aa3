"""The TensorRT backend and the engine builder, through the strict doubles of TensorRT (10.x and
11.x) and cuda-python (tests/doubles): the double runs the same step graph with ONNX Runtime, so
an engine's logits must equal the onnxruntime backend's bit for bit; state stays in device
memory (per step only the data inputs go up and the logits come down); batches split to the
profile; stale or mismatched engines are refused with exact sentences; a build is strongly
typed, never touches the APIs TensorRT 11 removed, and leaves nothing behind when it fails."""

from __future__ import annotations

import gc
import hashlib
import json
import math
import re
import sys

import numpy as np
import pytest

from build_engines.engine import Stale, build_engine, engine_is_current
from edgeact import BackendError, InputError, InputTypeError, ModelFormatError, Predictor
from edgeact.backends import load_backend
from edgeact.backends.device import Device, DeviceArray
from edgeact.backends.tensorrt import TensorRTLoader, sidecar_path
from tests.doubles import VERSIONS, install
from tests.doubles.tensorrt_double import REMOVED_IN_11
from tests.streaming import LOOSE, clips, push_clip

MAX_BATCH = 4
REBUILD = "python -m build_engines MODEL.onnx --precision fp32"


@pytest.fixture(params=VERSIONS)
def doubles(request, monkeypatch):
    return install(monkeypatch, request.param)


@pytest.fixture
def engine(doubles, tiny_artifacts, tmp_path):
    """engine(kind) -> an engine built by the double from the tiny export of ``kind``."""
    built = {}

    def make(kind: str = "pose"):
        if kind not in built:
            built[kind] = tmp_path / f"{kind}.fp32.engine"
            build_engine(tiny_artifacts[kind]["onnx"], built[kind], max_batch=MAX_BATCH)
        return built[kind]

    return make


def _marked(onnx_path, out, **metadata):
    """A copy of an ONNX export with extra metadata entries (a precision, a weights hash)."""
    import onnx

    model = onnx.load(str(onnx_path))
    for key, value in metadata.items():
        if key == "weights_sha256":
            entry = next(e for e in model.metadata_props if e.key == "edgeact")
            spec = json.loads(entry.value)
            spec["weights_sha256"] = value
            entry.value = json.dumps(spec)
        else:
            model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(out))
    return out


def _edit_sidecar(engine_path, change):
    path = sidecar_path(engine_path)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _keypoints(seed: int, people: int = 2):
    kp = np.random.default_rng(seed).random((people, 18, 3)).astype(np.float32)
    kp[..., :2] *= 60
    return kp


# -- building ---------------------------------------------------------------------------------------
def test_the_build_is_strongly_typed_with_one_batch_profile(doubles, engine, tiny_artifacts):
    trt, record = doubles.trt, doubles.record
    path = engine("pose")
    network = record.networks[-1]
    assert network["strongly_typed"]
    if trt.__version__.startswith("10."):  # asked for explicitly; on 11.x every network is
        assert network["flags"] == 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    else:
        assert network["flags"] == 0
    build = record.builds[-1]
    assert build["strongly_typed"] and not set(build["flags"]) & set(REMOVED_IN_11)
    assert "TF32" not in build["flags"]  # an fp32 graph is built in float32
    assert record.calibrators == [] and build["device_type"] == "GPU"
    assert build["workspace"] == 4096 << 20
    spec = Predictor(path).spec
    assert set(build["profile"]) == set(spec.input_names)
    for name, (low, opt, high) in build["profile"].items():
        assert (low[0], opt[0], high[0]) == (1, MAX_BATCH, MAX_BATCH)
        assert low[1:] == opt[1:] == high[1:]


def test_the_11x_double_lacks_what_tensorrt_11_removed(doubles):
    trt = doubles.trt
    builder = trt.Builder(trt.Logger())
    config = builder.create_builder_config()
    removed = [lambda: trt.BuilderFlag.FP16, lambda: trt.BuilderFlag.INT8, lambda: builder.platform_has_fast_fp16,
               lambda: config.int8_calibrator]
    for use in removed:
        if trt.__version__.startswith("11."):
            with pytest.raises(AttributeError):
                use()
        else:
            use()
    with pytest.raises(AttributeError):
        config.no_such_option = 1
    with pytest.raises(AttributeError):
        trt.no_such_api  # noqa: B018


def test_the_sidecar_describes_the_build(doubles, engine, tiny_artifacts, tmp_path):
    path = engine("pose")
    sidecar = json.loads(sidecar_path(path).read_text())
    spec = Predictor(tiny_artifacts["pose"]["onnx"]).spec
    assert sidecar["spec"] == json.loads(spec.to_json())
    assert (sidecar["precision"], sidecar["tensorrt_version"], sidecar["max_batch"], sidecar["target"]) == (
        "fp32", doubles.trt.__version__, MAX_BATCH, "datacenter")
    assert sidecar["gpu"] == {"name": "Edgeact Double GPU", "compute_capability": "8.7"}
    assert sidecar["weights_sha256"] == spec.weights_sha256 != ""
    assert sidecar["accuracy"] is None and sidecar["dla"] is None and sidecar["tf32"] is False
    fp16 = _marked(tiny_artifacts["pose"]["onnx"], tmp_path / "pose.fp16.onnx", edgeact_precision="fp16")
    sidecar = build_engine(fp16, tmp_path / "pose.fp16.engine", max_batch=2)
    assert (sidecar["precision"], sidecar["tf32"]) == ("fp16", True)
    assert json.loads(sidecar_path(tmp_path / "pose.fp16.engine").read_text()) == sidecar


def test_a_failed_build_leaves_nothing_under_the_final_names(doubles, tiny_artifacts, tmp_path, monkeypatch):
    import onnx

    out = tmp_path / "out"
    target = out / "pose.engine"

    def leftovers():
        return sorted(p.name for p in out.iterdir()) if out.exists() else []

    model = onnx.load(str(tiny_artifacts["pose"]["onnx"]))
    model.graph.node.add(op_type="NoSuchOp", input=["keypoints"], output=["nothing"])
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(ModelFormatError, match=re.escape(f"TensorRT's ONNX parser refused {bad}: ")):
        build_engine(bad, target, max_batch=2)
    assert leftovers() == []

    doubles.record.fail_next_build = "out of device memory (the double)"
    with pytest.raises(BackendError) as err:
        build_engine(tiny_artifacts["pose"]["onnx"], target, max_batch=2)
    assert str(err.value) == (f"TensorRT could not build an engine from {tiny_artifacts['pose']['onnx']}; "
                              "TensorRT said: out of device memory (the double).")
    assert leftovers() == []

    import build_engines.engine as engine_module

    real_replace = engine_module.os.replace

    def replace(source, destination):
        if str(destination).endswith(".json"):
            raise OSError("disk full")
        real_replace(source, destination)

    with monkeypatch.context() as patch, pytest.raises(OSError, match="disk full"):
        patch.setattr(engine_module.os, "replace", replace)
        build_engine(tiny_artifacts["pose"]["onnx"], target, max_batch=2)
    assert leftovers() == []

    build_engine(tiny_artifacts["pose"]["onnx"], target, max_batch=2)
    before = target.read_bytes()
    doubles.record.fail_next_build = "no"
    with pytest.raises(BackendError):
        build_engine(tiny_artifacts["rgb"]["onnx"], target, max_batch=2)
    assert target.read_bytes() == before and leftovers() == ["pose.engine", "pose.engine.json"]


def test_build_arguments_are_checked(doubles, tiny_artifacts, tmp_path):
    onnx_path = tiny_artifacts["pose"]["onnx"]
    with pytest.raises(InputError, match=re.escape("max_batch must be a positive int, got 0.")):
        build_engine(onnx_path, tmp_path / "m.engine", max_batch=0)
    with pytest.raises(InputError, match=re.escape("target must be one of ['datacenter', 'jetson'], got 'orin'.")):
        build_engine(onnx_path, tmp_path / "m.engine", max_batch=1, target="orin")
    with pytest.raises(InputError, match=re.escape("an engine file ends in .engine or .plan, got 'm.onnx'.")):
        build_engine(onnx_path, tmp_path / "m.onnx", max_batch=1)


def test_a_jetson_build_puts_the_engine_on_dla_core_0_with_gpu_fallback(monkeypatch, tiny_artifacts, tmp_path):
    doubles = install(monkeypatch, "10.8.0", dla_cores=2)
    sidecar = build_engine(tiny_artifacts["pose"]["onnx"], tmp_path / "dla.engine", max_batch=2, target="jetson")
    build = doubles.record.builds[-1]
    assert (build["device_type"], build["dla_core"], build["workspace"]) == ("DLA", 0, 1024 << 20)
    assert "GPU_FALLBACK" in build["flags"]
    assert sidecar["dla"] == {"core": 0, "gpu_fallback": True}


def test_a_jetson_build_without_dla_says_so(doubles, tiny_artifacts, tmp_path):
    sidecar = build_engine(tiny_artifacts["pose"]["onnx"], tmp_path / "gpu.engine", max_batch=2, target="jetson",
                           workspace_mb=256)
    assert doubles.record.builds[-1]["device_type"] == "GPU"
    assert doubles.record.builds[-1]["workspace"] == 256 << 20
    assert sidecar["dla"] == {"core": None,
                              "note": "this device has no DLA (TensorRT reports 0 cores): every layer runs on the GPU"}


def test_the_timing_cache_is_written_and_reused(doubles, tiny_artifacts, tmp_path):
    cache = tmp_path / "timing.cache"
    first = build_engine(tiny_artifacts["pose"]["onnx"], tmp_path / "a.engine", max_batch=2, timing_cache=cache)
    assert cache.is_file() and first["timing_cache"] == {"path": str(cache), "reused": False}
    assert doubles.record.builds[-1]["timing_cache_entries"] == 0
    second = build_engine(tiny_artifacts["rgb"]["onnx"], tmp_path / "b.engine", max_batch=2, timing_cache=cache)
    assert second["timing_cache"]["reused"] and doubles.record.builds[-1]["timing_cache_entries"] > 0
    cache.write_bytes(cache.read_bytes().replace(b"Edgeact Double GPU", b"Another GPU"))
    third = build_engine(tiny_artifacts["pose"]["onnx"], tmp_path / "c.engine", max_batch=2, timing_cache=cache)
    assert third["timing_cache"]["reused"] is False  # made on another device: a new one, written back
    assert b"Edgeact Double GPU" in cache.read_bytes()


def test_engine_is_current_only_for_the_same_weights_precision_tensorrt_gpu_and_profile(doubles, engine,
                                                                                      tiny_artifacts, tmp_path):
    path, onnx_path = engine("pose"), tiny_artifacts["pose"]["onnx"]
    assert engine_is_current(path, onnx_path, MAX_BATCH, "datacenter") is True

    def stale(*args):
        result = engine_is_current(*args)
        assert isinstance(result, Stale) and not result
        return str(result)

    assert stale(path, onnx_path, 8, "datacenter") == (
        f"{path.name} was built for {MAX_BATCH} streams on datacenter, not 8 on datacenter")
    assert stale(path, onnx_path, MAX_BATCH, "jetson").endswith("not 4 on jetson")
    other = _marked(onnx_path, tmp_path / "retrained.onnx", weights_sha256="f" * 64)
    assert stale(path, other, MAX_BATCH, "datacenter").startswith(f"{path.name} was built from other weights")
    fp16 = _marked(onnx_path, tmp_path / "pose.fp16.onnx", edgeact_precision="fp16")
    assert stale(path, fp16, MAX_BATCH, "datacenter") == f"{path.name} is fp32, pose.fp16.onnx is fp16"
    assert stale(tmp_path / "none.engine", onnx_path, MAX_BATCH, "datacenter").startswith("there is no engine at ")

    _edit_sidecar(path, lambda d: d.update(tensorrt_version="9.9.9"))
    assert stale(path, onnx_path, MAX_BATCH, "datacenter") == (
        f"{path.name} was built with TensorRT 9.9.9, this is TensorRT {doubles.trt.__version__}")
    _edit_sidecar(path, lambda d: d.update(tensorrt_version=doubles.trt.__version__,
                                           gpu={"name": "Orin", "compute_capability": "8.7"}))
    assert stale(path, onnx_path, MAX_BATCH, "datacenter") == (
        f"{path.name} was built for Orin (compute capability 8.7), this GPU is Edgeact Double GPU "
        "(compute capability 8.7)")
    path.write_bytes(path.read_bytes() + b"\0")
    assert stale(path, onnx_path, MAX_BATCH, "datacenter") == (
        f"{path.name}.json describes another engine than {path.name}")


# -- loading ----------------------------------------------------------------------------------------
def test_auto_picks_tensorrt_for_an_engine_and_the_spec_comes_from_the_sidecar(engine, tiny_artifacts):
    path = engine("pose")
    loader = TensorRTLoader(path)
    assert loader.spec == Predictor(tiny_artifacts["pose"]["onnx"]).spec  # read without building
    with Predictor(path) as p:
        assert p.backend == "tensorrt" and p.runner.max_batch == MAX_BATCH
        described = p.describe()
        assert (described["precision"], described["max_batch"], described["cuda_graph"]) == ("fp32", MAX_BATCH, False)


def test_engines_built_elsewhere_are_refused_with_how_to_rebuild(doubles, engine, tiny_artifacts):
    path = engine("pose")
    version = doubles.trt.__version__
    side = sidecar_path(path)
    original = side.read_text()

    def refused(change) -> str:
        side.write_text(original)
        _edit_sidecar(path, change)
        with pytest.raises(ModelFormatError) as err:
            Predictor(path)
        return str(err.value)

    assert refused(lambda d: d.update(tensorrt_version="10.0.1")) == (
        f"{path} was built with TensorRT 10.0.1, but this is TensorRT {version}; an engine runs only on the "
        f"TensorRT version that built it. Rebuild it on this machine with `{REBUILD}`.")
    assert refused(lambda d: d.update(gpu={"name": "Jetson AGX Orin", "compute_capability": "8.7"})) == (
        f"{path} was built for Jetson AGX Orin (compute capability 8.7), but this GPU is Edgeact Double GPU "
        f"(compute capability 8.7). Rebuild it on this machine with `{REBUILD}`.")
    assert refused(lambda d: d.update(gpu={"name": "Edgeact Double GPU", "compute_capability": "9.0"})) == (
        f"{path} was built for Edgeact Double GPU (compute capability 9.0), but this GPU is Edgeact Double GPU "
        f"(compute capability 8.7). Rebuild it on this machine with `{REBUILD}`.")
    weights = json.loads(original)["weights_sha256"]
    assert refused(lambda d: d.update(weights_sha256="0" * 64)) == (
        f"{side} is inconsistent: its weights_sha256 000000000000... is not its spec's {weights[:12]}...; "
        f"rebuild the engine with `{REBUILD}`.")
    side.write_text(original)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelFormatError, match=re.escape(f"{side} describes another engine (sha256 ")):
        Predictor(path)
    side.unlink()
    with pytest.raises(ModelFormatError, match=re.escape(f"{path} has no sidecar {side.name} beside it")):
        Predictor(path)


def test_engine_io_that_is_not_the_spec_is_refused(engine):
    path = engine("pose")

    def narrower_state(data):
        data["spec"]["state"][0]["shape"] = [64]

    _edit_sidecar(path, narrower_state)
    with pytest.raises(ModelFormatError) as err:
        Predictor(path)
    assert str(err.value) == (
        f"{path}: the engine's I/O tensors do not match its sidecar's spec: 'state_in.head.lstm.h0' is input float32 "
        "of shape (-1, 128), the spec says input float32 of shape (-1, 64); 'state_out.head.lstm.h0' is output "
        "float32 of shape (-1, 128), the spec says output float32 of shape (-1, 64). Rebuild the engine from the "
        "ONNX export of this model.")


def test_output_shapes_are_checked_once_the_input_shapes_are_set(engine):
    """An output axis TensorRT leaves to run time passes the load-time check, and is checked for a
    batch of 1 before the warm-up writes to it."""
    path = engine("pose")
    data = path.read_bytes()
    path.write_bytes(data.replace(b'["logits", "OUTPUT", [-1, 12]', b'["logits", "OUTPUT", [-1, -1]', 1))
    _edit_sidecar(path, lambda d: d.update(engine_sha256=hashlib.sha256(path.read_bytes()).hexdigest()))
    with pytest.raises(ModelFormatError) as err:
        Predictor(path)
    assert str(err.value) == (f"{path}: for a batch of 1 the engine's outputs are not the spec's: 'logits' is (1, -1), "
                              "the spec says (1, 12). Rebuild the engine from the ONNX export of this model.")


def test_options_are_checked_with_the_sentences_of_every_backend(engine):
    path = engine("pose")
    with pytest.raises(BackendError, match=re.escape(
            "backend 'tensorrt' does not take option(s) ['bogus', 'providers']; "
            "it takes device, threads, cuda_graph.")):
        Predictor(path, "tensorrt", providers=["CPUExecutionProvider"], bogus=1)
    with pytest.raises(BackendError, match=re.escape("threads must be a positive int or None, got 0.")):
        Predictor(path, threads=0)
    with pytest.raises(BackendError, match=re.escape("cuda_graph must be True or False, got 'yes'.")):
        Predictor(path, cuda_graph="yes")
    with pytest.raises(BackendError, match=re.escape(
            "tensorrt device must be 'auto' or 'cuda' (the current CUDA device), got 'cpu'.")):
        Predictor(path, device="cpu")


def test_without_tensorrt_an_engine_is_refused_with_how_to_install(tmp_path, monkeypatch, tiny_artifacts):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    path = tmp_path / "m.engine"
    path.write_bytes(b"an engine")
    with pytest.raises(BackendError, match=re.escape(
            "no backend for 'm.engine' is installed; install one of: tensorrt (needs tensorrt)")):
        Predictor(path)
    with pytest.raises(BackendError, match=re.escape(
            "the tensorrt backend needs the TensorRT Python package (10.x or 11.x), which is not installed here")):
        TensorRTLoader(path)()


def test_older_cuda_python_is_found_as_cuda_cudart(monkeypatch, tiny_artifacts, tmp_path):
    install(monkeypatch, "10.8.0", cuda_layout="cudart")
    path = tmp_path / "pose.engine"
    build_engine(tiny_artifacts["pose"]["onnx"], path, max_batch=2)
    ours, ref = Predictor(path), Predictor(tiny_artifacts["pose"]["onnx"], "onnxruntime")
    np.testing.assert_array_equal(ours.push(keypoints=_keypoints(0)).logits, ref.push(keypoints=_keypoints(0)).logits)


# -- stepping ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["pose", "rgb"])
def test_an_engine_streams_the_logits_of_onnxruntime_bit_for_bit(kind, engine, tiny_artifacts, synth_dir):
    ours = Predictor(engine(kind), policy=LOOSE)
    ref = Predictor(tiny_artifacts[kind]["onnx"], "onnxruntime", policy=LOOSE)
    assert ours.backend == "tensorrt"
    for clip in clips(synth_dir, 2):
        for a, b in zip(push_clip(ours, clip), push_clip(ref, clip)):
            np.testing.assert_array_equal(a.logits, b.logits)
            assert (a.index, a.decided, a.decision_index, a.decision_frame) == (
                b.index, b.decided, b.decision_index, b.decision_frame)
        ours.reset(), ref.reset()


def test_push_many_over_more_streams_than_the_profile_splits_the_batch(doubles, engine, tiny_artifacts):
    ours = Predictor(engine("pose"))
    ref = Predictor(tiny_artifacts["pose"]["onnx"], "onnxruntime")
    before = len(doubles.record.executions)
    for t in range(3):
        items = {f"person{k}": {"keypoints": _keypoints(10 * t + k)} for k in range(6)}
        got, want = ours.push_many(items), ref.push_many(items)
        for key in items:
            np.testing.assert_allclose(got[key].logits, want[key].logits, rtol=1e-6, atol=1e-6)  # 4 + 2 vs 6 rows
    assert doubles.record.executions[before:] == [MAX_BATCH, 2] * 3


def test_state_stays_on_the_device_between_steps(doubles, engine):
    p = Predictor(engine("pose"))
    spec = p.spec
    up = math.prod(spec.input_shape("keypoints")) * 4
    down = spec.num_classes * 4
    p.push_many({k: {"keypoints": _keypoints(ord(k))} for k in "abc"})  # admitted: the pool is allocated
    assert all(isinstance(buffer, DeviceArray) for half in p._pool._halves for buffer in half)
    copies = doubles.cuda.copies
    copies.clear()
    p.push(keypoints=_keypoints(3), stream="a")
    assert copies == [("HostToDevice", up), ("DeviceToHost", down)]
    copies.clear()
    p.push_many({"a": {"keypoints": _keypoints(4)}, "b": {"keypoints": _keypoints(5)}})  # b and a: other parities
    assert [c for c in copies if c[0] != "DeviceToDevice"] == [("HostToDevice", 2 * up), ("DeviceToHost", 2 * down)]
    copies.clear()
    p.push_many({k: {"keypoints": _keypoints(ord(k))} for k in "abc"})  # consecutive slots again, each parity flipped
    assert [c[0] for c in copies].count("DeviceToDevice") > 0  # a gathered set still never leaves the device
    assert [c for c in copies if c[0] != "DeviceToDevice"] == [("HostToDevice", 3 * up), ("DeviceToHost", 3 * down)]


def test_gathered_slots_reset_and_closed_streams_agree_with_onnxruntime(engine, tiny_artifacts):
    ours = Predictor(engine("pose"))
    ref = Predictor(tiny_artifacts["pose"]["onnx"], "onnxruntime")

    def both(items):
        got, want = ours.push_many(items), ref.push_many(items)
        for key in items:
            np.testing.assert_array_equal(got[key].logits, want[key].logits)

    both({k: {"keypoints": _keypoints(ord(k))} for k in "abc"})
    both({"b": {"keypoints": _keypoints(7)}})
    both({"a": {"keypoints": _keypoints(8)}, "c": {"keypoints": _keypoints(9)}})  # slots 0 and 2: gathered
    ours.reset("a"), ref.reset("a")
    slot = ours._streams["a"].slot
    assert all(not view.download().any() for view in ours._pool.state(slot))
    both({"a": {"keypoints": _keypoints(10)}, "b": {"keypoints": _keypoints(11)}})
    ours.close_stream("b"), ref.close_stream("b")
    assert ours._pool.in_use == 2
    both({"d": {"keypoints": _keypoints(12)}, "c": {"keypoints": _keypoints(13)}})  # d reuses b's slot, zeroed
    assert ours._pool.in_use == 3


def test_cuda_graphs_replay_the_captured_step(doubles, engine, tiny_artifacts, synth_dir):
    ours = Predictor(engine("rgb"), cuda_graph=True, policy=LOOSE)
    ref = Predictor(tiny_artifacts["rgb"]["onnx"], "onnxruntime", policy=LOOSE)
    clip = clips(synth_dir, 1)[0]
    steps = 0
    for a, b in zip(push_clip(ours, clip), push_clip(ref, clip)):
        np.testing.assert_array_equal(a.logits, b.logits)
        steps += 1
    assert ours.runner.captures == doubles.record.captures == 2  # the ping and the pong of one stream
    assert doubles.cuda.launches == steps - 2  # the first two steps ran uncaptured
    ours.reset(), ref.reset()
    for t, frame in enumerate(clip.frames()[:6]):  # more streams: new runs of slots, new graphs
        items = {k: frame[::-1] if k == "mirror" else frame for k in ("default", "mirror")}
        got, want = ours.push_many(items), ref.push_many(items)
        for key in items:
            np.testing.assert_array_equal(got[key].logits, want[key].logits)
    ours.close()


def test_the_stateless_step_splits_to_the_profile(doubles, engine, tiny_artifacts):
    runner = load_backend(engine("pose"))
    reference = load_backend(tiny_artifacts["pose"]["onnx"], "onnxruntime")
    inputs = {"keypoints": np.stack([_keypoints(k) for k in range(6)])}
    from edgeact.preprocess import preprocess_keypoints

    inputs["keypoints"] = np.stack([preprocess_keypoints(k, runner.spec.keypoints) for k in inputs["keypoints"]])
    state = runner.init_state(6)
    state[0][...] = 0.25
    before = len(doubles.record.executions)
    logits, next_state = runner.step(inputs, state)
    want_logits, want_state = reference.step(inputs, state)
    assert doubles.record.executions[before:] == [MAX_BATCH, 2]
    np.testing.assert_allclose(logits, want_logits, rtol=1e-6, atol=1e-6)
    for got, want in zip(next_state, want_state):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    with pytest.raises(InputError) as err:
        runner.step(inputs, runner.init_state(2))
    assert str(err.value) == f"state {runner.spec.state[0].name!r} has batch 2, but the tensors before it have batch 6."


class _Refusing:
    """An execution context whose ``method`` returns False (TensorRT's refusal)."""

    def __init__(self, context, method: str):
        self._context, self._method = context, method

    def __getattr__(self, name):
        return (lambda *args: False) if name == self._method else getattr(self._context, name)


def test_what_tensorrt_refuses_becomes_a_backend_error(doubles, engine):
    path = engine("pose")
    runner = load_backend(path)
    spec = runner.spec
    kp = np.zeros((5, *spec.input_shape("keypoints")), np.float32)
    state = [runner.allocate(s, 5) for s in spec.state]
    nxt = [runner.allocate(s, 5) for s in spec.state]
    with pytest.raises(BackendError) as err:
        runner._run({"keypoints": kp}, state, nxt)
    assert str(err.value) == (f"{path}: a step of 5 streams is more than the engine's profile takes (4); the state "
                              "pool splits larger batches.")
    context = runner._context
    runner._context = _Refusing(context, "set_input_shape")
    with pytest.raises(BackendError) as err:
        runner._run({"keypoints": kp[:2]}, [s[:2] for s in state], [s[:2] for s in nxt])
    assert str(err.value) == f"{path}: TensorRT refused a batch of 2 for 'keypoints' (its profile takes 1..4)."
    runner._context = _Refusing(context, "set_tensor_address")
    with pytest.raises(BackendError) as err:
        runner._run({"keypoints": kp[:1]}, [s[:1] for s in state], [s[:1] for s in nxt])
    assert str(err.value) == f"{path}: TensorRT refused the address of 'state_in.head.lstm.h0'."
    runner._context = context
    with pytest.raises(BackendError, match=re.escape(
            f"{path}: TensorRT could not enqueue a step of 1 stream(s); TensorRT said: enqueueV3: input and output "
            "memory overlap")):
        runner._run({"keypoints": kp[:1]}, [s[:1] for s in state], [s[:1] for s in state])
    state[0].allocation.close()  # a kernel reading freed memory: CUDA's error surfaces at the next call
    with pytest.raises(BackendError, match=re.escape("cudaMemcpyAsync failed: cudaErrorIllegalAddress.")):
        runner._run({"keypoints": kp[:1]}, [s[:1] for s in state], [s[:1] for s in nxt])


def test_the_double_refuses_what_tensorrt_refuses(doubles, engine):
    trt, rt = doubles.trt, doubles.cudart
    engine_bytes = engine("pose").read_bytes()
    logger = trt.Logger()
    assert trt.Runtime(logger).deserialize_cuda_engine(b"not an engine") is None
    other = engine_bytes.replace(trt.__version__.encode(), b"1.2.3", 1)
    assert trt.Runtime(logger).deserialize_cuda_engine(other) is None
    cuda_engine = trt.Runtime(logger).deserialize_cuda_engine(engine_bytes)
    context = cuda_engine.create_execution_context()
    _, stream = rt.cudaStreamCreate()
    assert context.execute_async_v3(int(stream)) is False  # no input shape set
    assert context.set_input_shape("logits", (1, 12)) is False  # an output
    assert context.set_input_shape("keypoints", (1, 2, 18)) is False  # the wrong rank
    assert context.set_input_shape("keypoints", (1, 2, 17, 3)) is False  # a fixed axis changed
    assert context.set_input_shape("keypoints", (5, 2, 18, 3)) is False  # outside the profile
    assert context.set_tensor_address("no_such_tensor", 1 << 49) is False
    names = [cuda_engine.get_tensor_name(i) for i in range(cuda_engine.num_io_tensors)]
    for name in names:
        if cuda_engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            assert context.set_input_shape(name, (1, *cuda_engine.get_tensor_shape(name)[1:]))
    assert context.execute_async_v3(int(stream)) is False  # no addresses
    for i, name in enumerate(names):
        assert context.set_tensor_address(name, (1 << 50) + (i << 20))  # no live allocation
    with pytest.raises(TypeError):
        context.execute_async_v3(stream)  # a handle is an int
    assert context.execute_async_v3(int(stream)) is True  # enqueued; the kernel faults
    assert rt.cudaStreamSynchronize(stream) == (rt.cudaError_t.cudaErrorIllegalAddress,)

    class Quiet(trt.ILogger):
        def __init__(self):  # does not call ILogger.__init__
            pass

    with pytest.raises(TypeError):
        trt.Runtime(Quiet())


# -- device memory ----------------------------------------------------------------------------------
def test_device_arrays_do_exactly_what_the_pool_does(doubles):
    device = Device()
    a = device.zeros((4, 3), np.float32)
    b = device.zeros((4, 3), np.float32)
    a.upload(np.arange(12, dtype=np.float32).reshape(4, 3))
    assert len(a) == 4 and a[1:3].shape == (2, 3) and a[1:3].ptr == a.ptr + 12 and a[-1].ptr == a.ptr + 36
    b[2] = a[1]
    b[0] = a[3]
    a[1] = 0
    np.testing.assert_array_equal(b.download(), [[9, 10, 11], [0, 0, 0], [3, 4, 5], [0, 0, 0]])
    np.testing.assert_array_equal(a.download()[1], [0, 0, 0])
    grown = device.zeros((8, 3), np.float32)
    grown[:4] = b
    np.testing.assert_array_equal(grown.download()[:4], b.download())
    assert not grown.download()[4:].any()
    with pytest.raises(InputError, match=re.escape(
            "a DeviceArray is sliced into consecutive rows (step 1), got step 2.")):
        a[::2]  # noqa: B018
    with pytest.raises(IndexError, match=re.escape("row 4 is out of range for a DeviceArray of 4 rows.")):
        a[4]  # noqa: B018
    with pytest.raises(InputTypeError, match=re.escape("a DeviceArray takes 0 or another DeviceArray, got float; "
                                                       "copy host data with upload().")):
        a[0] = 1.0
    with pytest.raises(InputError, match=re.escape("cannot copy a float32 DeviceArray of shape (2, 3) into a float32 "
                                                   "one of shape (3,).")):
        a[0] = b[0:2]
    with pytest.raises(InputError, match=re.escape("upload() takes a float32 array of shape (4, 3), got float64 of "
                                                   "shape (4, 3).")):
        a.upload(np.zeros((4, 3)))
    live = doubles.cuda.live
    del grown
    gc.collect()
    assert doubles.cuda.live == live  # collected, freed at the next safe point
    device.collect()
    assert doubles.cuda.live == live - 1
    b.allocation.close()
    b.allocation.close()
    assert doubles.cuda.live == live - 2
    with pytest.raises(BackendError, match=re.escape("cudaMemcpyAsync failed: cudaErrorInvalidValue.")):
        a.copy_from(b)  # b's memory is gone
    device.close()
    device.close()
