"""edgeact.triton: the model repository, its config against Triton's schema, and a stream through
a double of Triton's sequence batcher with implicit state, compared with the Predictor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgeact import InputError, ModelFormatError, Predictor
from edgeact.export import export_onnx
from edgeact.spec import METADATA_KEY, STATE_IN, STATE_OUT, ModelSpec, TensorSpec, read_spec
from edgeact.triton import TRITON_DTYPES, Enum, to_pbtxt, triton_config, write_triton_repository
from examples.triton_client import WIRE_DTYPES, TritonStream, step_inputs as _step
from tests.streaming import clips

KINDS = ["pose", "rgb", "fusion", "gru"]


def _model_config_pb2():
    """Triton's compiled model_config.proto as tritonclient ships it, or a skip."""
    try:
        from tritonclient.grpc import model_config_pb2
    except (ImportError, RuntimeError) as exc:  # tritonclient.grpc raises RuntimeError without grpcio
        pytest.skip(f"tritonclient[grpc] is not installed ({exc}); pip install 'edgeact[triton]' to check the "
                    "config against Triton's schema")
    return model_config_pb2


def _ort_io(path) -> tuple[list[str], dict[str, ort.NodeArg]]:
    """The graph's input names in order, and every input and output by name."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [t.name for t in session.get_inputs()], {t.name: t for t in (*session.get_inputs(), *session.get_outputs())}


# ---------------------------------------------------------------------------------------------
# A double of Triton's sequence batcher with implicit state (Oldest strategy, one model
# instance) over ONNX Runtime. It reads only what the server reads: config (the repository's
# ModelConfig) and 1/model.onnx. Per the Triton docs: state lives per correlation id; the
# request flagged sequence_start gets initial_state (zeros) as its state inputs; each later
# request gets the previous request's state outputs; sequence_end frees the sequence; a request
# for an unknown sequence without the start flag is refused; requests carry batch 1.
class TritonError(Exception):
    """What tritonclient would raise as InferenceServerException."""


class InferInputDouble:
    """tritonclient.grpc.InferInput's constructor and the methods TritonStream uses."""

    def __init__(self, name: str, shape: list[int], datatype: str) -> None:
        self._name, self._shape, self._datatype, self.array = name, list(shape), datatype, None

    def name(self) -> str:
        return self._name

    def shape(self) -> list[int]:
        return self._shape

    def datatype(self) -> str:
        return self._datatype

    def set_data_from_numpy(self, array: np.ndarray) -> None:
        if WIRE_DTYPES[str(array.dtype)] != self._datatype or list(array.shape) != self._shape:
            raise TritonError(f"got {array.dtype} {array.shape} for {self._datatype} {self._shape}")
        self.array = array.copy()


class RequestedOutputDouble:
    def __init__(self, name: str) -> None:
        self._name = name

    def name(self) -> str:
        return self._name


class ResultDouble:
    def __init__(self, outputs: dict[str, np.ndarray]) -> None:
        self._outputs = outputs

    def as_numpy(self, name: str) -> np.ndarray | None:
        return self._outputs.get(name)


class SequenceBatcherDouble:
    def __init__(self, model_dir: Path, config: dict) -> None:
        self.config = config
        self.session = ort.InferenceSession(str(model_dir / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
        self.state = {s["input_name"]: s for s in config["sequence_batching"]["state"]}
        self.sequences: dict[int, dict[str, np.ndarray]] = {}  # correlation id -> state inputs of its next request
        self.executions: list[int] = []  # batch size of each model execution

    def infer(self, model_name, inputs, outputs=None, sequence_id=0, sequence_start=False, sequence_end=False):
        return self.execute([dict(model_name=model_name, inputs=inputs, outputs=outputs, sequence_id=sequence_id,
                                  sequence_start=sequence_start, sequence_end=sequence_end)])[0]

    def execute(self, requests: list[dict]) -> list[ResultDouble]:
        """One model execution over requests of distinct sequences (the Oldest strategy's batch)."""
        ids = [r["sequence_id"] for r in requests]
        if len(set(ids)) != len(ids) or len(ids) > self.config["max_batch_size"]:
            raise TritonError(f"one execution batches at most {self.config['max_batch_size']} distinct sequences")
        feeds: dict[str, list[np.ndarray]] = {}
        for r in requests:
            if r["model_name"] != self.config["name"]:
                raise TritonError(f"unknown model {r['model_name']!r}")
            if r["sequence_id"] == 0:
                raise TritonError("inference request to a model using the sequence batcher must specify a sequence id")
            if not r["sequence_start"] and r["sequence_id"] not in self.sequences:
                raise TritonError(f"inference request for sequence {r['sequence_id']} must specify the START flag "
                                  "on the first request of the sequence")
            given = {t.name(): t for t in r["inputs"]}
            if sorted(given) != sorted(t["name"] for t in self.config["input"]):
                raise TritonError(f"expected inputs {[t['name'] for t in self.config['input']]}, got {sorted(given)}")
            for t in self.config["input"]:
                wire = given[t["name"]]
                if wire.shape() != [1, *t["dims"]] or f"TYPE_{wire.datatype()}" != t["data_type"]:
                    raise TritonError(f"input {t['name']!r}: got {wire.datatype()} {wire.shape()}, "
                                      f"expected {t['data_type']} {[1, *t['dims']]}")
                feeds.setdefault(t["name"], []).append(_numpy(wire))
            if r["sequence_start"]:
                self.sequences[r["sequence_id"]] = {name: _zeros(s) for name, s in self.state.items()}
            for name, value in self.sequences[r["sequence_id"]].items():
                feeds.setdefault(name, []).append(value)
        names = [o.name for o in self.session.get_outputs()]
        results = dict(zip(names, self.session.run(names, {k: np.concatenate(v) for k, v in feeds.items()})))
        self.executions.append(len(requests))
        out = []
        for row, r in enumerate(requests):
            self.sequences[r["sequence_id"]] = {name: results[s["output_name"]][row:row + 1]
                                                for name, s in self.state.items()}
            if r["sequence_end"]:
                del self.sequences[r["sequence_id"]]
            allowed = {t["name"] for t in self.config["output"]}
            wanted = [o.name() for o in r["outputs"]] if r["outputs"] else sorted(allowed)
            if not set(wanted) <= allowed:
                raise TritonError(f"unknown outputs {sorted(set(wanted) - allowed)}")
            out.append(ResultDouble({name: results[name][row:row + 1] for name in wanted}))
        return out


def _numpy(wire) -> np.ndarray:
    """An input's data: the double keeps the array; tritonclient's InferInput keeps the raw bytes
    it sends (its _get_content())."""
    if isinstance(wire, InferInputDouble):
        return wire.array
    dtype = {v: k for k, v in WIRE_DTYPES.items()}[wire.datatype()]
    return np.frombuffer(wire._get_content(), dtype=dtype).reshape(wire.shape())


def _zeros(state: dict) -> np.ndarray:
    (initial,) = state["initial_state"]
    assert initial["zero_data"] is True
    dtype = {v: k for k, v in TRITON_DTYPES.items()}[initial["data_type"]]
    return np.zeros((1, *initial["dims"]), dtype=dtype)


def _stream(double, name, spec, sequence_id) -> TritonStream:
    return TritonStream(double, name, spec, sequence_id, infer_input=InferInputDouble,
                        requested_output=RequestedOutputDouble)


# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def artifacts(tiny_artifacts, tmp_path_factory):
    """The tiny exports, plus the pose export declaring spec.stride = 3 (the tiny models step on
    every frame), so that the client's stride and the Predictor's are compared too, and a fusion
    export taking raw uint8 frames."""
    path = tmp_path_factory.mktemp("strided") / "pose_stride3.onnx"
    model = onnx.load(str(tiny_artifacts["pose"]["onnx"]))
    (entry,) = [p for p in model.metadata_props if p.key == METADATA_KEY]
    entry.value = json.dumps({**json.loads(entry.value), "stride": 3})
    onnx.save(model, str(path))
    # the fusion model preprocessing in its graph: it takes the synthetic clips' BGR uint8 64x64 frames
    raw = export_onnx(tiny_artifacts["fusion"]["pt"], path.parent / "fusion_raw.onnx", verify_steps=2,
                      frame_input=(64, 64)).path
    return {**tiny_artifacts, "pose_stride3": {"onnx": path}, "fusion_raw": {"onnx": raw}}


@pytest.fixture(scope="module")
def repo(artifacts, tmp_path_factory):
    """kind -> the repository written from its export, both platforms."""
    root = tmp_path_factory.mktemp("triton")
    return {kind: write_triton_repository(artifacts[kind]["onnx"], root / kind, name=f"edgeact_{kind}",
                                          platforms=("onnxruntime", "tensorrt"), max_batch_size=4, instances=2)
            for kind in artifacts if "onnx" in artifacts[kind]}


def test_repository_layout(repo, tiny_artifacts):
    r = repo["fusion"]
    assert sorted(p.relative_to(r.root).as_posix() for p in r.root.rglob("*") if p.is_file()) == [
        "edgeact_fusion/1/model.onnx", "edgeact_fusion/config.pbtxt",
        "edgeact_fusion_trt/README.md", "edgeact_fusion_trt/config.pbtxt",
    ]
    assert (r.root / "edgeact_fusion_trt" / "1").is_dir()  # the version directory the plan goes in
    exported = Path(tiny_artifacts["fusion"]["onnx"]).read_bytes()
    assert (r.root / "edgeact_fusion" / "1" / "model.onnx").read_bytes() == exported
    assert r.to_build == (r.root / "edgeact_fusion_trt" / "1" / "model.plan",)
    assert [c["platform"] for c in r.configs.values()] == ["onnxruntime_onnx", "tensorrt_plan"]
    assert r.configs["edgeact_fusion_trt"]["instance_group"] == [{"count": 2, "kind": "KIND_GPU"}]
    readme = (r.root / "edgeact_fusion_trt" / "README.md").read_text()
    assert "no engine" in readme and "--saveEngine=1/model.plan" in readme
    assert "--maxShapes=frames:4x3x64x64,keypoints:4x" in readme  # the batch profile reaches max_batch_size


@pytest.mark.parametrize("kind", [*KINDS, "fusion_raw"])
def test_config_follows_the_graph(repo, artifacts, kind):
    """Data inputs, outputs and state pairs against the graph itself (not its metadata); Triton
    owns the batch axis, so every dims is the graph's shape less axis 0."""
    inputs, io = _ort_io(artifacts[kind]["onnx"])
    config = repo[kind].configs[f"edgeact_{kind}"]
    dtypes = {"tensor(float)": "TYPE_FP32", "tensor(uint8)": "TYPE_UINT8"}
    state_inputs = sorted(n for n in io if n.startswith(STATE_IN))
    assert state_inputs
    states = config["sequence_batching"]["state"]
    assert sorted(s["input_name"] for s in states) == state_inputs
    for s in states:
        assert s["output_name"] == STATE_OUT + s["input_name"][len(STATE_IN):] and s["output_name"] in io
        graph = io[s["input_name"]]
        assert s["dims"] == list(graph.shape[1:]) and s["data_type"] == dtypes[graph.type]
        assert io[s["output_name"]].shape[1:] == graph.shape[1:]
        assert s["initial_state"] == [{"data_type": s["data_type"], "dims": s["dims"], "zero_data": True,
                                       "name": f"zeros.{s['input_name'][len(STATE_IN):]}"}]
    assert [t["name"] for t in config["input"]] == [n for n in inputs if n not in state_inputs]
    for t in (*config["input"], *config["output"]):  # a symbolic graph axis (a string) fits any size
        graph = io[t["name"]]
        assert [d if isinstance(d, int) else g for d, g in zip(graph.shape[1:], t["dims"])] == t["dims"]
        assert len(t["dims"]) == len(graph.shape) - 1 and t["data_type"] == dtypes[graph.type]
    assert all(isinstance(d, int) for t in config["input"] for d in io[t["name"]].shape[1:])
    assert [t["name"] for t in config["output"]][:2] == ["logits", "probs"]
    assert not any(t["name"].startswith(STATE_OUT) for t in config["output"])  # the server keeps the state
    assert "control_input" not in config["sequence_batching"]  # initial_state zeroes START; no wrapper graph
    if kind == "fusion_raw":  # preprocessed in the graph: the camera's BGR uint8 frame goes in
        assert config["input"][0] == {"name": "frames", "data_type": "TYPE_UINT8", "dims": [64, 64, 3]}


@pytest.mark.parametrize("kind", ["pose", "fusion"])
def test_config_parses_with_tritons_schema(repo, kind):
    """The written config.pbtxt read by protobuf against Triton's own model_config.proto, and the
    same message as the config dict: every field name, enum value and nesting is Triton's."""
    from google.protobuf import json_format, text_format

    pb2 = _model_config_pb2()
    for name, config in repo[kind].configs.items():
        text = (repo[kind].root / name / "config.pbtxt").read_text()
        parsed = text_format.Parse(text, pb2.ModelConfig())
        assert parsed == json_format.ParseDict(config, pb2.ModelConfig())
        assert parsed.WhichOneof("scheduling_choice") == "sequence_batching"
        batching = parsed.sequence_batching
        assert batching.WhichOneof("strategy_choice") == "oldest"
        assert [s.input_name for s in batching.state] == [s["input_name"] for s in config["sequence_batching"]["state"]]
        for s in batching.state:
            assert s.data_type == pb2.TYPE_FP32 and s.initial_state[0].zero_data
            assert list(s.initial_state[0].dims) == list(s.dims) and min(s.dims) >= 1  # zeros need fixed dims
        assert parsed.max_batch_size == 4 and parsed.instance_group[0].count == 2


def test_pbtxt_quotes_strings_and_writes_enums_bare():
    text = to_pbtxt({"name": 'a "b"\\c', "data_type": Enum("TYPE_FP32"), "dims": [3, 4], "flag": True,
                     "oldest": {}, "parameters": {"k": {"string_value": "v"}}})
    assert text == ('name: "a \\"b\\"\\\\c"\ndata_type: TYPE_FP32\ndims: [ 3, 4 ]\nflag: true\noldest {\n}\n'
                    'parameters {\n  key: "k"\n  value {\n    string_value: "v"\n  }\n}\n')


def test_pbtxt_strings_read_back_by_protobuf():
    pb2 = _model_config_pb2()
    from google.protobuf import text_format

    assert text_format.Parse('name: "a \\"b\\"\\\\c"', pb2.ModelConfig()).name == 'a "b"\\c'


# ---------------------------------------------------------------------------------------------
def test_refuses_what_is_not_an_exported_step_graph(tiny_artifacts, tmp_path):
    pt = tiny_artifacts["pose"]["pt"]
    with pytest.raises(ModelFormatError, match=r"a Triton repository is written from an exported step graph "
                                               r"\(\.onnx\); got '\.pt'\. Export it with `edgeact export`\."):
        write_triton_repository(pt, tmp_path / "repo")
    bare = tmp_path / "bare.onnx"
    model = onnx.load(str(tiny_artifacts["pose"]["onnx"]))
    del model.metadata_props[:]
    onnx.save(model, str(bare))
    with pytest.raises(ModelFormatError, match="is an ONNX model without edgeact metadata"):
        write_triton_repository(bare, tmp_path / "repo")
    fixed = tmp_path / "fixed.onnx"
    model = onnx.load(str(tiny_artifacts["pose"]["onnx"]))
    for tensor in (*model.graph.input, *model.graph.output):
        tensor.type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, str(fixed))
    with pytest.raises(ModelFormatError, match=r"tensor 'keypoints' must be float32 of shape \(batch, .*\) with a "
                                               r"dynamic batch for Triton's batching, got float32 of shape \(1, "):
        write_triton_repository(fixed, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()  # nothing written for a refused artifact


def test_refuses_to_write_over_an_engine_of_an_earlier_graph(tiny_artifacts, tmp_path):
    plan = tmp_path / "m_trt" / "1" / "model.plan"
    plan.parent.mkdir(parents=True)
    plan.write_bytes(b"an engine")
    with pytest.raises(InputError, match=r"model\.plan exists, built from an earlier graph that may not be this one"):
        write_triton_repository(tiny_artifacts["pose"]["onnx"], tmp_path, name="m",
                                platforms=("onnxruntime", "tensorrt"))
    assert plan.read_bytes() == b"an engine" and not (tmp_path / "m").exists()
    write_triton_repository(tiny_artifacts["pose"]["onnx"], tmp_path, name="m")  # the onnxruntime model alone


def test_refuses_a_stateless_spec_and_bad_arguments(tiny_artifacts, tmp_path):
    spec = read_spec(tiny_artifacts["pose"]["onnx"])
    stateless = ModelSpec(classes=spec.classes, state=(), keypoints=spec.keypoints)
    with pytest.raises(ModelFormatError, match=r"model 'm' has no state tensors .* it is not a streaming step graph"):
        triton_config(stateless, "m", "onnxruntime_onnx", max_batch_size=1, instances=1, max_streams=1)
    onnx_path = tiny_artifacts["pose"]["onnx"]
    with pytest.raises(InputError, match=r"platforms must be one or more of \['onnxruntime', 'tensorrt'\], "
                                         r"got \['onnx'\]\."):
        write_triton_repository(onnx_path, tmp_path, platforms=("onnx",))
    with pytest.raises(InputError, match=r"max_batch_size must be a positive int, got 0\."):
        write_triton_repository(onnx_path, tmp_path, max_batch_size=0)
    with pytest.raises(ModelFormatError, match="which has no Triton data type"):
        triton_config(ModelSpec(classes=("a",), state=(TensorSpec("h", (2,), "complex64"),), keypoints=spec.keypoints),
                      "m", "onnxruntime_onnx", max_batch_size=1, instances=1, max_streams=1)


# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [*KINDS, "pose_stride3", "fusion_raw"])
def test_streaming_through_the_server_double_is_the_predictor(repo, artifacts, synth_dir, kind):
    """Frames (and keypoints) through the client and the sequence-batcher double give, frame for
    frame, exactly the logits of the Predictor on the onnxruntime backend; each clip is one
    sequence, the same correlation id reused after sequence_end starts from zeros again."""
    name = f"edgeact_{kind}"
    double = SequenceBatcherDouble(repo[kind].model_dir(name), repo[kind].configs[name])
    spec = read_spec(artifacts[kind]["onnx"])
    with Predictor(artifacts[kind]["onnx"], "onnxruntime") as predictor:
        for clip in clips(synth_dir, 2):
            stream = _stream(double, name, spec, sequence_id=7)
            for frame, kp in zip(clip.frames(), clip.noisy_keypoints):
                ours = stream.push(frame, kp)
                np.testing.assert_array_equal(ours, predictor.push(frame, keypoints=kp).logits)
            stream.close()
            assert double.sequences == {}  # sequence_end freed it
            predictor.reset()
    steps = sum(-(-len(clip.noisy_keypoints) // spec.stride) for clip in clips(synth_dir, 2))
    assert double.executions == [1] * (steps + 2)  # one step per stride-th frame, one closing request per clip


def test_tritonclients_own_requests_stream_through_the_double(repo, tiny_artifacts, synth_dir):
    """The same stream built with tritonclient.grpc's InferInput and InferRequestedOutput (the
    bytes it would put on the wire) still gives the Predictor's logits."""
    _model_config_pb2()  # skips without tritonclient[grpc]
    import tritonclient.grpc as grpcclient

    name = "edgeact_fusion"
    double = SequenceBatcherDouble(repo["fusion"].model_dir(name), repo["fusion"].configs[name])
    spec = read_spec(tiny_artifacts["fusion"]["onnx"])
    stream = TritonStream(double, name, spec, 11, infer_input=grpcclient.InferInput,
                          requested_output=grpcclient.InferRequestedOutput)
    (clip,) = clips(synth_dir, 1)
    with Predictor(tiny_artifacts["fusion"]["onnx"], "onnxruntime") as predictor:
        for frame, kp in zip(clip.frames(), clip.noisy_keypoints):
            np.testing.assert_array_equal(stream.push(frame, kp), predictor.push(frame, keypoints=kp).logits)
    stream.close()
    assert double.sequences == {}


def test_streams_batched_together_keep_their_own_state(repo, tiny_artifacts, synth_dir):
    """Two streams stepped in one execution (the Oldest strategy's batch) each match a Predictor
    stream of their own; the second starts mid-way through the first, from zeros."""
    kind, name = "gru", "edgeact_gru"
    double = SequenceBatcherDouble(repo[kind].model_dir(name), repo[kind].configs[name])
    spec = read_spec(tiny_artifacts[kind]["onnx"])
    a, b = clips(synth_dir, 2)
    frames_a, frames_b = a.frames(), b.frames()
    late = 3 * spec.stride
    with Predictor(tiny_artifacts[kind]["onnx"], "onnxruntime") as predictor:
        for t in range(0, min(len(a.noisy_keypoints), late + len(b.noisy_keypoints)), spec.stride):
            items = {1: (frames_a[t], a.noisy_keypoints[t])}
            if t >= late:
                items[2] = (frames_b[t - late], b.noisy_keypoints[t - late])
            requests = {sid: _request(name, sid, _step(spec, *item), start=t == (0 if sid == 1 else late))
                        for sid, item in items.items()}
            results = double.execute(list(requests.values()))
            for sid, result in zip(requests, results):
                expected = predictor.push(items[sid][0], keypoints=items[sid][1], stream=sid).logits
                np.testing.assert_allclose(result.as_numpy("logits")[0], expected, rtol=0, atol=1e-5)
    assert 2 in double.executions


def _request(name, sequence_id, inputs, *, start):
    wire = []
    for tensor, array in inputs.items():
        wire.append(InferInputDouble(tensor, list(array.shape), WIRE_DTYPES[str(array.dtype)]))
        wire[-1].set_data_from_numpy(array)
    return dict(model_name=name, inputs=wire, outputs=None, sequence_id=sequence_id, sequence_start=start,
                sequence_end=False)


def test_the_double_refuses_what_triton_refuses(repo, tiny_artifacts, synth_dir):
    name = "edgeact_pose"
    double = SequenceBatcherDouble(repo["pose"].model_dir(name), repo["pose"].configs[name])
    spec = read_spec(tiny_artifacts["pose"]["onnx"])
    (clip,) = clips(synth_dir, 1)
    stream = _stream(double, name, spec, 5)
    request = stream.request(_step(spec, None, clip.noisy_keypoints[0]))
    assert request["sequence_start"] and not request["sequence_end"] and request["sequence_id"] == 5
    with pytest.raises(TritonError, match="must specify the START flag"):
        double.infer(**{**request, "sequence_start": False})
    with pytest.raises(InputError, match=r"sequence_id must be a positive int \(0 means no sequence to Triton\)"):
        _stream(double, name, spec, 0)


def test_edgeact_export_triton_writes_the_repository_beside_the_graph(tiny_artifacts, tmp_path, capsys):
    from edgeact.cli import main

    out, repo_dir = tmp_path / "student.onnx", tmp_path / "repo"
    assert main(["export", "--model", str(tiny_artifacts["pose"]["pt"]), "--out", str(out), "--verify-steps", "2",
                 "--triton", str(repo_dir), "--triton-name", "pose", "--triton-platforms", "onnxruntime", "tensorrt",
                 "--triton-max-batch", "4"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote Triton repository {repo_dir}" in printed and "build" in printed and "model.plan" in printed
    assert (repo_dir / "pose" / "1" / "model.onnx").read_bytes() == out.read_bytes()
    assert "max_batch_size: 4" in (repo_dir / "pose" / "config.pbtxt").read_text()
    assert (repo_dir / "pose_trt" / "config.pbtxt").exists()
    with pytest.raises(SystemExit) as exited:
        main(["export", "--model", str(tiny_artifacts["pose"]["pt"]), "--out", str(tmp_path / "fixed.onnx"),
              "--batch", "2", "--triton", str(tmp_path / "repo2")])
    assert exited.value.code == 2
    assert "--triton needs --batch dynamic (Triton batches the streams), got --batch 2." in capsys.readouterr().err
    assert not (tmp_path / "fixed.onnx").exists()  # refused before exporting
