#!/usr/bin/env bash
# Before/after numbers of the streaming runtime in one run: benchmarks/streams.py against two
# revisions, interleaved, then a table of medians (before, after, after/before).
#
#   benchmarks/compare_revisions.sh OLD_REV [NEW_REV] [-- streams.py options...]
#
#   OLD_REV   any commit-ish (HEAD, main, a sha); built from `git archive` in a throwaway dir.
#   NEW_REV   the same for the "after" side; default: the working tree as it is now, run by
#             the project venv (.venv/bin/python, editable install).
#   after --  passed to both runs of benchmarks/streams.py, e.g. -- --backends onnxruntime
#             --repeats 3 --streams 1 16 (see python benchmarks/streams.py --help).
#
# Environment:
#   ROUNDS      runs per side (default 2: old, new, old, new)
#   ORDER=abba  old, new, new, old: cancels a steady drift of the load, and any run-order effect
#   OUT_DIR     keeps every run's JSON and log and the table (default: a new /tmp/edgeact-compare.*)
#   PYTHON      the project venv's python (default .venv/bin/python); KEEP_BUILD=1 keeps the builds
# A full run (2 rounds, defaults) takes about 3 minutes on 2 cores: ~20 s per build, ~35 s per run.
#
# How a revision is made importable without touching the project venv: `git archive REV` into
# a temp dir; a fresh venv (same base interpreter as .venv) whose site-packages holds a .pth
# pointing at .venv's site-packages (torch, onnxruntime, scikit-build-core... importable without
# reinstalling; .pth files there, e.g. the editable edgeact hook, are not processed); then
# `pip install --no-deps --no-build-isolation TREE` builds and installs that revision's edgeact
# (with its C++ extension) into the fresh venv only. The import is checked to come from there.
#
# Both sides run the CURRENT benchmarks/streams.py (copied first: an old revision may not have
# it), each with its own revision's configs/synth_pose.yaml and configs/synth_rgb.yaml
# (untrained student models, built, saved and exported by that revision's own code), on one
# dataset of synthetic clips generated once here.
set -euo pipefail

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
die() { echo "compare_revisions: $*" >&2; exit 1; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ $# -ge 1 && $1 != -h && $1 != --help ]] || usage 2
OLD_REV=$1; shift
NEW_REV=""
if [[ $# -ge 1 && $1 != -- ]]; then NEW_REV=$1; shift; fi
if [[ $# -ge 1 ]]; then
  [[ $1 == -- ]] || usage 2
  shift
fi
EXTRA=("$@")
ROUNDS=${ROUNDS:-2}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
[[ -x $PYTHON ]] || die "no project venv python at $PYTHON (set PYTHON=...)"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"
ORDER=${ORDER:-abab}
[[ $ORDER == abab || $ORDER == abba ]] || die "ORDER must be abab or abba, got '$ORDER'"

resolve() { git -C "$REPO" rev-parse --verify --quiet "$1^{commit}" || die "not a commit: $1"; }
OLD_SHA=$(resolve "$OLD_REV")
[[ -z $NEW_REV ]] || NEW_SHA=$(resolve "$NEW_REV")

unset PYTHONPATH PYTHONHOME PYTHONSTARTUP  # nothing but each venv decides what is imported
TMP=$(mktemp -d /tmp/edgeact-compare-build.XXXXXX)
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/edgeact-compare.XXXXXX)}
mkdir -p "$OUT_DIR"
cleanup() {
  if [[ ${KEEP_BUILD:-0} == 1 ]]; then echo "kept the builds in $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

START=$SECONDS
stamp() { printf '[%4ds] %s\n' $((SECONDS - START)) "$*"; }

# The current benchmark script, copied before anything else can change it.
mkdir -p "$TMP/bench"
cp "$REPO/benchmarks/streams.py" "$REPO/benchmarks/machine_info.py" "$TMP/bench/"

MAIN_SITE=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
BASE_PY=$("$PYTHON" -c 'import sys; print(getattr(sys, "_base_executable", "") or sys.executable)')

# build_rev SHA DIR: that revision's edgeact installed into DIR/venv; prints nothing on success.
build_rev() {
  local sha=$1 dir=$2 site file
  mkdir -p "$dir/tree"
  git -C "$REPO" archive --format=tar "$sha" | tar -x -C "$dir/tree"
  "$BASE_PY" -m venv "$dir/venv"
  site=$("$dir/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$MAIN_SITE" > "$site/_edgeact_compare_main_venv.pth"
  "$dir/venv/bin/python" -c 'import scikit_build_core, pybind11, ninja, torch, onnxruntime' \
    || die "the new venv does not see scikit-build-core/pybind11/ninja/torch/onnxruntime through $MAIN_SITE"
  if ! "$dir/venv/bin/pip" install --no-cache-dir --no-deps --no-build-isolation --disable-pip-version-check \
      "$dir/tree" > "$dir/pip.log" 2>&1; then
    tail -40 "$dir/pip.log" >&2
    die "building ${sha:0:10} failed (log above)"
  fi
  file=$(cd "$dir" && "$dir/venv/bin/python" -c 'import edgeact; print(edgeact.__file__)')
  [[ $file == "$dir/venv/"* ]] || die "${sha:0:10}: edgeact imports from $file, not from $dir/venv"
}

describe() { git -C "$REPO" log -1 --format='%h %s' "$1" | cut -c1-100; }
stamp "old: $OLD_REV = $(describe "$OLD_SHA"); building it in $TMP/old"
build_rev "$OLD_SHA" "$TMP/old"
OLD_PY=$TMP/old/venv/bin/python
OLD_CONFIGS=("$TMP/old/tree/configs/synth_pose.yaml" "$TMP/old/tree/configs/synth_rgb.yaml")
if [[ -n $NEW_REV ]]; then
  stamp "new: $NEW_REV = $(describe "$NEW_SHA"); building it in $TMP/new"
  build_rev "$NEW_SHA" "$TMP/new"
  NEW_PY=$TMP/new/venv/bin/python
  NEW_CONFIGS=("$TMP/new/tree/configs/synth_pose.yaml" "$TMP/new/tree/configs/synth_rgb.yaml")
  NEW_DESC="$NEW_REV ($(describe "$NEW_SHA"))"
else
  NEW_PY=$PYTHON
  NEW_CONFIGS=("$REPO/configs/synth_pose.yaml" "$REPO/configs/synth_rgb.yaml")
  changed=$(git -C "$REPO" status --porcelain --untracked-files=no -- edgeact cpp_ext CMakeLists.txt | wc -l)
  NEW_DESC="working tree ($(describe HEAD) + $changed changed files under edgeact/, cpp_ext/)"
  file=$(cd "$TMP" && "$NEW_PY" -c 'import edgeact; print(edgeact.__file__)')
  [[ $file == "$REPO/"* ]] || die "working tree: edgeact imports from $file, not from $REPO"
  stamp "new: $NEW_DESC"
fi
stamp "built"

# One dataset for both sides (generated by the new side), so both push the same pixels.
(cd "$TMP" && "$NEW_PY" -c 'import sys; from edgeact.data.synth import generate; generate(sys.argv[1], 12, seed=7, size=112, workers=1)' \
  "$TMP/data") || die "generating the synthetic clips failed"

run_side() {  # run_side old|new ROUND
  local side=$1 round=$2 py configs json log rc=0
  if [[ $side == old ]]; then py=$OLD_PY; configs=("${OLD_CONFIGS[@]}"); else py=$NEW_PY; configs=("${NEW_CONFIGS[@]}"); fi
  json=$OUT_DIR/$side-r$round.json
  log=$OUT_DIR/$side-r$round.log
  stamp "round $round/$ROUNDS: $side"
  # cwd is the temp dir, so neither side can import edgeact from the repository by accident
  (cd "$TMP" && "$py" -W ignore "$TMP/bench/streams.py" --config "${configs[@]}" --data "$TMP/data" \
    --label "$side-r$round" --json "$json" ${EXTRA[@]+"${EXTRA[@]}"}) > "$log" 2>&1 || rc=$?
  grep -E ' (onnxruntime|native|torch|tensorrt) |^ {20,}|failed' "$log" | sed 's/^/    /' || true
  if [[ $rc -ne 0 ]]; then
    echo "    (exit $rc; see $log)"
    [[ -s $json ]] || { tail -20 "$log" | sed 's/^/    /'; die "$side round $round wrote no JSON"; }
  fi
}

for ((round = 1; round <= ROUNDS; round++)); do
  if [[ $ORDER == abba && $((round % 2)) == 0 ]]; then
    run_side new "$round"; run_side old "$round"
  else
    run_side old "$round"; run_side new "$round"
  fi
done
stamp "runs done"

"$PYTHON" - "$OUT_DIR" "$ROUNDS" "$OLD_REV ($(describe "$OLD_SHA"))" "$NEW_DESC" "$TMP" "$REPO" <<'PY' | tee "$OUT_DIR/table.txt"
import json
import math
import statistics
import sys
from pathlib import Path

out_dir, rounds, old_desc, new_desc, tmp, repo = Path(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:]
runs = {side: [json.loads((out_dir / f"{side}-r{r}.json").read_text()) for r in range(1, rounds + 1)]
        for side in ("old", "new")}

# imports came from where they should: the old build, and the new build or the working tree
for side, want in (("old", f"{tmp}/old/"), ("new", f"{tmp}/new/" if "working tree" not in new_desc else f"{repo}/")):
    for run in runs[side]:
        got = run["machine"]["edgeact_file"]
        if not got.startswith(want):
            sys.exit(f"{run['label']}: edgeact came from {got}, expected under {want}")


errors = {}  # (model, backend) -> messages of the runs that failed there


def metrics(run):
    """(model, backend, metric, better) -> value; a failed model or backend has no values."""
    out = {}
    for model, m in run["models"].items():
        if "error" in m:
            errors.setdefault((model, "export"), set()).add(f"{run['label']}: {m['error']}")
        for backend, r in m["backends"].items():
            if "error" in r:
                errors.setdefault((model, backend), set()).add(f"{run['label']}: {r['error']}")
                continue
            out[(model, backend, "push p50 us", "lower")] = r["push"]["p50_us"]
            out[(model, backend, "push p99 us", "lower")] = r["push"]["p99_us"]
            for n, v in r["push_many"].items():
                out[(model, backend, f"push_many {n:>2} streams frames/s", "higher")] = v["frames_per_s"]
            for what, a in r["alloc"].items():
                out[(model, backend, f"{what} transient B p50", "lower")] = a["transient_bytes_p50"]
                out[(model, backend, f"{what} retained B/call", "lower")] = a["retained_bytes_per_call"]
    return out


per_side = {side: [metrics(r) for r in rs] for side, rs in runs.items()}
keys = list(dict.fromkeys(k for side in ("old", "new") for ms in per_side[side] for k in ms))


def summary(side, key):
    values = [ms.get(key) for ms in per_side[side]]
    if any(v is None for v in values):
        return None, None, "failed"
    med = statistics.median(values)
    spread = (max(values) - min(values)) / abs(med) if med else (0.0 if max(values) == min(values) else math.inf)
    return med, spread, None


def fmt(v):
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}"


m0 = runs["old"][0]["machine"]
print(f"\nbefore: {old_desc}\nafter:  {new_desc}")
order = sorted((r for rs in runs.values() for r in rs), key=lambda r: r["machine"]["started"])
print(f"machine: {m0['cpu']}, {m0['logical_cpus']} logical cores; Python {m0['python']}, numpy {m0['numpy']}, "
      f"onnxruntime {m0['onnxruntime']}; runtime threads {m0.get('threads')}; {rounds} rounds each, interleaved; "
      f"load avg (1 min) at the start of each run: " + ", ".join(
          f"{r['label']} {r['machine']['load_avg_start'][0]:.2f}" for r in order))
print("values: median over rounds; spread: (max - min) / median over a side's rounds; retained bytes: after - before\n")
header = ["model", "backend", "metric", "better", "before", "after", "after/before", "spread before", "spread after"]
rows, ratios = [], {"time": [], "alloc": []}
for key in keys:
    model, backend, metric, better = key
    (b, sb, eb), (a, sa, ea) = summary("old", key), summary("new", key)
    if eb or ea:
        rows.append([model, backend, metric, better, "ERROR" if eb else fmt(b), "ERROR" if ea else fmt(a), "-", "-", "-"])
        continue
    if "retained" in metric:
        ratio = f"{a - b:+.1f} B"
    else:
        ratio = f"{a / b:.3f}" if b else "-"
        ratios["alloc" if " B " in metric else "time"].append(a / b if b else float("nan"))
    rows.append([model, backend, metric, better, fmt(b), fmt(a), ratio, f"{100 * sb:.1f}%", f"{100 * sa:.1f}%"])
widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
for i, row in enumerate([header, *rows]):
    print("  ".join(str(v).ljust(w) if j < 4 else str(v).rjust(w) for j, (v, w) in enumerate(zip(row, widths))))
    if i == 0:
        print("  ".join("-" * w for w in widths))
for kind, values in ratios.items():
    values = [v for v in values if math.isfinite(v) and v > 0]
    if values:
        geo = math.exp(sum(math.log(v) for v in values) / len(values))
        print(f"\n{kind} after/before over {len(values)} numbers: min {min(values):.3f}, max {max(values):.3f}, "
              f"geomean {geo:.3f}", end="")
print()
errors = [f"{model} {backend}: {msg}" for (model, backend), msgs in errors.items() for msg in sorted(msgs)]
for e in errors:
    print(f"ERROR {e}")
(out_dir / "compare.json").write_text(json.dumps(
    {"before": old_desc, "after": new_desc, "rounds": rounds, "header": header, "rows": rows, "errors": errors}, indent=1))
PY
stamp "done; every run's JSON and log, and this table (table.txt, compare.json), are in $OUT_DIR"
