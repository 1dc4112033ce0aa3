"""The ``edgeact`` command: data, train, eval, export, demo.

Each subcommand is a ``_cmd_*`` function taking the parsed arguments and returning an exit
code; heavy modules (torch, OpenCV) are imported inside it, so ``edgeact --help`` stays fast
and works without torch. Errors derived from :class:`EdgeActError` are printed as one line
(``edgeact: error: ...``) with exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from edgeact._version import __version__
from edgeact.errors import EdgeActError


def _cmd_data_synth(args: argparse.Namespace) -> int:
    from edgeact.data import synth

    started = time.perf_counter()
    out = synth.generate(
        args.out,
        num_clips=args.clips,
        seed=args.seed,
        size=args.size,
        classes=args.classes,
        overwrite=args.overwrite,
        workers=args.workers,
        progress=None if args.quiet else _progress_printer("rendering clips"),
        **({} if args.early_cue is None else {"early_cue": args.early_cue}),
    )
    elapsed = time.perf_counter() - started
    print(f"wrote {args.clips} clips to {out} in {elapsed:.1f} s")
    return 0


def _cmd_data_info(args: argparse.Namespace) -> int:
    from edgeact.data import open_dataset
    from edgeact.data.info import describe

    print(describe(open_dataset(args.path, fold=_fold_argument(args.fold)), args.path))
    return 0


def _cmd_data_convert(args: argparse.Namespace) -> int:
    from edgeact.data import open_dataset
    from edgeact.data.convert import convert

    started = time.perf_counter()
    dataset = open_dataset(args.source, format=args.format, fold=_fold_argument(args.fold))
    out = convert(dataset, args.out, name=args.source, overwrite=args.overwrite,
                  progress=None if args.quiet else _progress_printer("converting clips"))
    print(f"wrote {out} in {time.perf_counter() - started:.1f} s")
    return 0


def _fold_argument(text: str | None) -> int | str | None:
    """--fold 2 -> 2, --fold xsub -> "xsub"."""
    return int(text) if text is not None and text.isdigit() else text


def _progress_printer(what: str):
    """A ``progress(done, total)`` callback drawing one self-overwriting line on stderr."""

    interactive = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if interactive:
            print(f"\r{what}: {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)
        elif done == total:  # a log file gets one line, not a line per clip
            print(f"{what}: {done}/{total}", file=sys.stderr, flush=True)

    return progress


def _cmd_export(args: argparse.Namespace) -> int:
    from edgeact.export import export_onnx
    from edgeact.parity import FACTOR

    batch = args.batch if args.batch == "dynamic" else _positive_int(args.batch, "--batch")
    if args.triton is not None and batch != "dynamic":
        from edgeact.errors import InputError

        raise InputError(f"--triton needs --batch dynamic (Triton batches the streams), got --batch {args.batch}.")
    report = export_onnx(
        args.model, args.out, opset=args.opset, batch=batch, simplify=args.simplify,
        verify_steps=args.verify_steps,
        tolerance_factor=FACTOR if args.tolerance_factor is None else args.tolerance_factor,
        frame_input=None if args.frame_input is None else _camera_size(args.frame_input),
    )
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in report.timings_s.items())
    print(
        f"exported {report.path} (opset {report.opset}, {report.exporter} exporter, batch {report.batch}"
        f"{', simplified' if report.simplified else ''}); ONNX Runtime vs PyTorch over "
        f"{report.verify_steps} steps: max abs difference {report.max_abs_error:.2g} ({report.verification}); {timings}"
    )
    if args.triton is not None:
        from edgeact.triton import write_triton_repository

        repo = write_triton_repository(report.path, args.triton, name=args.triton_name,
                                       platforms=args.triton_platforms, max_batch_size=args.triton_max_batch,
                                       instances=args.triton_instances, max_streams=args.triton_max_streams)
        print(f"wrote Triton repository {repo.root} ({', '.join(map(str, repo.configs))})"
              + "".join(f"; build {p} on the serving machine (see its README.md)" for p in repo.to_build))
    return 0


def _positive_int(text: str, flag: str) -> int:
    from edgeact.errors import InputError

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"{flag} must be 'dynamic' or a positive integer, got {text!r}.")
    return value


def _camera_size(text: str) -> tuple[int, int]:
    """--frame-input WIDTHxHEIGHT (camera notation) -> (height, width) as FrameSpec sizes are."""
    from edgeact.errors import InputError

    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) >= 1 and int(height) >= 1):
        raise InputError(f"--frame-input must be WIDTHxHEIGHT in pixels, e.g. 1920x1080, got {text!r}.")
    return int(height), int(width)


def _cmd_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgeact import demo

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    video = None if args.no_video else out / "demo.avi"
    if args.source is not None:
        from edgeact.errors import InputError

        if args.model is None:
            raise InputError("--source streams a model you give: add --model MODEL (.onnx, .pt); without --source "
                             "the demo trains one on synthetic clips.")
        if args.max_frames is not None and args.max_frames < 1:
            raise InputError(f"--max-frames must be a positive integer, got {args.max_frames}.")
        demo.run_source(args.model, args.source, pose=args.pose, backend=args.backend, threshold=args.threshold,
                        video=video, max_frames=args.max_frames)
        return 0
    data = Path(args.data) if args.data else out / "data"
    if args.data is None and not (data / "manifest.json").is_file():
        from edgeact.data import synth

        print(f"[1/4] generating {args.clips} synthetic clips into {data}", flush=True)
        synth.generate(data, num_clips=args.clips, seed=0, size=112,
                       progress=None if args.quiet else _progress_printer("rendering clips"))
    model = args.model
    if model is None:
        model = str(demo.train_and_export(data, out / "run", epochs=args.epochs, quiet=args.quiet))
    print(f"[4/4] streaming test clips through {model}", flush=True)
    demo.run(model, data, backend=args.backend, threshold=args.threshold, video=video, max_clips=args.max_clips,
             pose=args.pose)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import importlib.util
    import platform

    print(f"edgeact {__version__} (Python {platform.python_version()}, {platform.machine()})")
    try:
        from edgeact import _C
    except ImportError as exc:
        print(f"  _C: not importable ({exc})")
    else:
        for key, value in _C.build_info().items():
            print(f"  _C.{key}: {value}")
    print("dependencies (installed version; [what needs it] where optional):")
    for name, version, extra in dependency_versions():
        print(f"  {name}: {version or 'not installed'}{f' [{extra}]' if extra else ''}")
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        print(f"  onnxruntime providers: {', '.join(onnxruntime.get_available_providers())}")
    return 0


# Asked for outside the package metadata on purpose (README: torch is installed first, pinned).
_UNLISTED = (("torch", "train, export, torch backend"),)


def dependency_versions() -> list[tuple[str, str | None, str]]:
    """(distribution, installed version or None, extra or "") for every runtime dependency
    edgeact's metadata declares (the ``dev`` extra's test tools excluded), plus torch."""
    import re
    from importlib import metadata

    try:
        requirements = metadata.requires("edgeact") or []
    except metadata.PackageNotFoundError:  # running from a source tree that pip never installed
        requirements = []
    rows = []
    for requirement in requirements:
        name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0)
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", requirement)
        extra = extra.group(1) if extra else ""
        if extra != "dev" and name != "edgeact":
            rows.append((name, extra))
    rows += list(_UNLISTED)
    return [(name, _installed_version(name), extra) for name, extra in rows]


def _installed_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeact",
        description="Real-time action prediction on edge GPUs.",
    )
    parser.add_argument("--version", action="version", version=f"edgeact {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    info = commands.add_parser("info", help="print versions, build facts and available runtimes")
    info.set_defaults(func=_cmd_info)

    data = commands.add_parser("data", help="generate, inspect or convert datasets")
    data_commands = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    synth = data_commands.add_parser(
        "synth",
        help="generate the procedural action dataset",
        description="Render videos of articulated figures performing actions, with keypoints.",
    )
    synth.add_argument("--out", required=True, help="dataset directory to create")
    synth.add_argument("--clips", type=int, required=True, help="number of clips in all splits")
    synth.add_argument("--seed", type=int, default=0, help="random seed (same seed, same data)")
    synth.add_argument("--size", type=int, default=112, help="frame height and width in pixels")
    synth.add_argument("--classes", nargs="+", default=None, help="class names to generate (default: all)")
    synth.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    synth.add_argument(
        "--early-cue",
        type=float,
        default=None,
        help="0..1 (default 0.5): how much the beginning a group's classes share hints at the class (0: not at all)",
    )
    synth.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    synth.add_argument("--quiet", action="store_true", help="no progress output")
    synth.set_defaults(func=_cmd_data_synth)
    data_info = data_commands.add_parser(
        "info",
        help="summarise a dataset: classes, clips per split and class, lengths, keypoints",
        description="Open a dataset as training would (any format open_dataset reads) and print its classes, "
        "clips per split and per class, clip lengths, and its keypoints (people, joints, coordinates, units).",
    )
    data_info.add_argument("path", help="dataset directory or file; PATH#fold2 chooses a fold")
    data_info.add_argument("--fold", help="fold the plain split names refer to (e.g. 0 or fold0; same as PATH#fold0)")
    data_info.set_defaults(func=_cmd_data_info)
    data_convert = data_commands.add_parser(
        "convert",
        help="write a dataset's keypoints as an edgeact skeleton .npz",
        description="Read a dataset in its own layout (NTU .skeleton files, JHMDB, another skeleton file, ...) and "
        "write its keypoints, labels and protocol as one edgeact skeleton .npz (docs/dataset.md). Video-only "
        "datasets (UCF-101, HMDB-51, UT-Interaction, folders of videos) have no keypoints to write.",
    )
    data_convert.add_argument("source", help="dataset directory or file; SOURCE#xsub chooses a fold")
    data_convert.add_argument("--format", help="the source's layout (default: recognised): "
                              "ntu, ucf101, hmdb51, jhmdb, ut-interaction, folder, skeleton")
    data_convert.add_argument("--out", required=True, help=".npz file to write")
    data_convert.add_argument("--fold", help="fold or protocol written as the split array (e.g. xsub, 1 or fold1); "
                              "default: the dataset's only protocol, or its cross-validation folds as a fold array")
    data_convert.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    data_convert.add_argument("--quiet", action="store_true", help="no progress output")
    data_convert.set_defaults(func=_cmd_data_convert)
    export = commands.add_parser(
        "export",
        help="export a streaming checkpoint's step graph to ONNX (verified against PyTorch)",
        description="Export the one-frame step graph (inputs + state in, logits + state out) to ONNX, "
        "then check it against PyTorch with ONNX Runtime on fresh inputs.",
    )
    export.add_argument("--model", required=True, help="student checkpoint (.pt) from `edgeact train`")
    export.add_argument("--out", required=True, help="ONNX file to write")
    export.add_argument("--opset", type=int, default=17, choices=(17, 18, 19, 20, 21),
                        help="17: legacy exporter (older Jetson TensorRT); 18+: dynamo exporter (default 17)")
    export.add_argument("--batch", default="dynamic", help="'dynamic' (multi-stream) or a fixed batch size")
    export.add_argument("--simplify", action="store_true", help="simplify the graph with onnxslim")
    export.add_argument("--verify-steps", type=int, default=16, help="steps of the verification stream")
    export.add_argument("--tolerance-factor", type=float, default=None,
                        help="verification passes when ONNX Runtime's error against the float64 model is within "
                             "this many times PyTorch float32's own error (default: edgeact.parity.FACTOR, 8)")
    export.add_argument("--frame-input", metavar="WIDTHxHEIGHT", default=None,
                        help="take the raw BGR uint8 camera frame of this size and preprocess it inside the "
                             "graph (one uint8 upload per frame on a GPU; docs/preprocess.md, 'On the device')")
    export.add_argument("--triton", metavar="REPO_DIR", default=None,
                        help="also write a Triton Inference Server model repository for the step graph (sequence "
                             "batcher with implicit state; docs/triton.md)")
    export.add_argument("--triton-name", default=None, help="Triton model name (default: the --out file's stem)")
    export.add_argument("--triton-platforms", nargs="+", default=["onnxruntime"], choices=("onnxruntime", "tensorrt"),
                        help="one model per platform; tensorrt's plan is built on the serving machine")
    export.add_argument("--triton-max-batch", type=int, default=16, help="most streams one execution steps together")
    export.add_argument("--triton-instances", type=int, default=1, help="model instances")
    export.add_argument("--triton-max-streams", type=int, default=64,
                        help="streams one instance keeps state for at once")
    export.set_defaults(func=_cmd_export)

    # listed for `edgeact --help`; main() hands `edgeact build ...` to build_engines' own parser
    commands.add_parser("build", add_help=False, help="precision graphs (fp16, int8) and TensorRT engines, each held "
                        "to an accuracy gate (python -m build_engines; `edgeact build --help` for its options)")

    demo = commands.add_parser(
        "demo",
        help="end-to-end demo: data, training, export, then streaming with early decisions",
        description="Without --model: generate a synthetic dataset, train a pose student with distillation, "
        "export and verify its ONNX step graph. Then stream the test clips frame by frame through a "
        "Predictor, print when each action was recognised, and write an annotated video. With --model and "
        "--source: stream a video file or a camera through the model instead (a keypoint model's keypoints "
        "found by --pose), printing each decision as it happens.",
    )
    demo.add_argument("--out", default="demo", help="working directory (default: ./demo)")
    demo.add_argument("--model", help="stream this model (.onnx/.pt) instead of training one")
    demo.add_argument("--data", help="dataset directory or file to stream (PATH#fold2 chooses a fold) (default: generated into --out)")
    demo.add_argument("--clips", type=int, default=600, help="clips to generate when --data is not given")
    demo.add_argument("--epochs", type=int, default=None,
                      help="training epochs of teacher and student (default: the config's, 40)")
    demo.add_argument("--backend", default="auto", help="Predictor backend (default: by file type)")
    demo.add_argument("--threshold", type=float, default=0.8, help="decision probability threshold")
    demo.add_argument("--max-clips", type=int, default=24, help="test clips to stream")
    demo.add_argument("--source", help="stream this video file or camera index (0, 1, ...) instead of dataset "
                      "clips; needs --model")
    demo.add_argument("--pose", metavar="NAME:PATH",
                      help="pose estimator that finds a keypoint model's keypoints in the frames, e.g. "
                      "movenet:movenet_single_pose_lightning_ptq.tflite (docs/pose.md)")
    demo.add_argument("--max-frames", type=int, default=None,
                      help="--source: stop after this many frames (default: the whole video; a camera until Ctrl-C)")
    demo.add_argument("--no-video", action="store_true", help="do not write the annotated video")
    demo.add_argument("--quiet", action="store_true",
                      help="no progress on stderr (dataset rendering, training); the steps and results still print")
    demo.set_defaults(func=_cmd_demo)

    for register in _optional_commands():
        register(commands)
    return parser


def _optional_commands():
    """Subcommands registered by other modules (training, evaluation); torch-free to import."""
    from edgeact.train.cli import register as register_train

    yield register_train


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["build"]:  # every argument, options first included, belongs to build_engines' parser
        from build_engines.__main__ import main as build_main

        return build_main(argv[1:], prog="edgeact build")
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except EdgeActError as exc:
        parser.exit(2, f"edgeact: error: {exc}\n")
    except KeyboardInterrupt:
        parser.exit(130, "edgeact: interrupted\n")


if __name__ == "__main__":
    sys.exit(main())
