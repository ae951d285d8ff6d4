#!/usr/bin/env bash
# Run, on the GPU machine, the engine's train step on the GPU beside PyTorch on the same GPU,
# and check its loss trajectory against the engine's CPU run (bench/gpu/README.md).
#
#   bash bench/gpu/run.sh [--providers cpu,torch,webgpu,cuda] [--models tiny,deit-t] [--torch-device cuda]
#
# Unpacks what has arrived in bench/gpu/.pack (base.tar.xz; cuda.tar.xz.NN once every piece
# listed in SHA256SUMS is there) into bench/gpu/.run, then for each model:
#   cpu     the engine on ONNX Runtime's CPU provider: the reference trajectory; it also writes
#           the start and batches PyTorch uses
#   torch   PyTorch (python3 with torch, cu130 on the GPU machine) on --torch-device
#   webgpu  the engine on the WebGPU provider bundled in onnxruntime-node 1.30 (Vulkan)
#   cuda    the engine on onnxruntime-node 1.29 + the CUDA 13 provider (when its pieces arrived)
# A provider that cannot run says why in <model>-<provider>.err and the others go on.
# Results go to $OUT (the device tool's folder) or bench/gpu/.run/out: one JSON per run,
# summary.md (the table for bench/RESULTS.md), summary.json, machine.txt.
set -uo pipefail
cd "$(dirname "$0")/../.."

PROVIDERS=cpu,torch,webgpu,cuda
MODELS=tiny,deit-t
TORCH_DEVICE=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --providers) PROVIDERS=$2; shift 2 ;;
    --models) MODELS=$2; shift 2 ;;
    --torch-device) TORCH_DEVICE=$2; shift 2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

PACK=${GPU_PACK:-bench/gpu/.pack}
RUN=bench/gpu/.run
RESULTS=${OUT:-$RUN/out}
PYTHON=${PYTHON:-python3}
STEPS=${STEPS:-20}   # trajectory steps (compared with the CPU run)
TIMED=${TIMED:-20}   # timed steps per repeat (3 repeats, median)
mkdir -p "$RUN" "$RESULTS"
say() { printf '== %s\n' "$*" | tee -a "$RESULTS/run.log" >&2; }
wants() { [[ ",$PROVIDERS," == *",$1,"* ]]; }

# ---- unpack (python's tarfile: no xz binary needed) -------------------------------------------
untar() { "$PYTHON" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2"; }
sum_ok() { # sum_ok <file in PACK>: its sha256 is the one SHA256SUMS lists
  local want
  want=$(awk -v f="$1" '$2 == f { print $1 }' "$PACK/SHA256SUMS")
  [ -n "$want" ] && [ "$(sha256sum "$PACK/$1" | cut -d' ' -f1)" = "$want" ]
}
[ -f "$PACK/SHA256SUMS" ] || { echo "run.sh: $PACK/SHA256SUMS is missing: carry it with the first piece" >&2; exit 1; }
if [ ! -x "$RUN/base/node/bin/node" ]; then
  sum_ok base.tar.xz || { echo "run.sh: $PACK/base.tar.xz is missing or damaged" >&2; exit 1; }
  mkdir -p "$RUN/base" && untar "$PACK/base.tar.xz" "$RUN/base" && say "unpacked base.tar.xz"
fi
if [ ! -d "$RUN/cuda" ] && wants cuda; then
  parts=$(awk '$2 ~ /^cuda\.tar\.xz\.[0-9]+$/ { print $2 }' "$PACK/SHA256SUMS" | sort)
  missing=$(for p in $parts; do sum_ok "$p" || echo "$p"; done)
  if [ -n "$parts" ] && [ -z "$missing" ]; then
    (cd "$PACK" && cat $parts >"../.run/cuda.tar.xz")
    if [ "$(sha256sum "$RUN/cuda.tar.xz" | cut -d' ' -f1)" = "$(awk '$2 == "cuda.tar.xz" { print $1 }' "$PACK/SHA256SUMS")" ]; then
      mkdir -p "$RUN/cuda" && untar "$RUN/cuda.tar.xz" "$RUN/cuda" && say "unpacked cuda.tar.xz"
    else
      say "cuda.tar.xz: the joined pieces do not match SHA256SUMS"
    fi
    rm -f "$RUN/cuda.tar.xz"
  elif [ -z "$parts" ]; then
    say "no CUDA pieces in SHA256SUMS (packed with --no-cuda): skipping cuda"
  else
    say "CUDA provider pieces not all here yet (missing or damaged: $(echo $missing)): skipping cuda"
  fi
fi
NODE=$PWD/$RUN/base/node/bin/node
# The bundle resolves onnxruntime-node next to itself: one app folder per ONNX Runtime version.
cp bench/gpu/.run/base/app/gpu-check.mjs "$RUN/cuda/app-cuda/" 2>/dev/null || true

# ---- libraries: PyTorch's CUDA 13 wheels (cuDNN, cuBLAS, runtime) and the Vulkan loader --------
torch_libs=$("$PYTHON" - <<'EOF' 2>/dev/null
import glob, os, site, sys
dirs = []
for base in site.getsitepackages() + [site.getusersitepackages()]:
    dirs += sorted(glob.glob(os.path.join(base, "nvidia", "*", "lib")))
    dirs += sorted(glob.glob(os.path.join(base, "nvidia", "cu*", "lib")))
    if os.path.isdir(os.path.join(base, "torch", "lib")):
        dirs.append(os.path.join(base, "torch", "lib"))
print(":".join(dict.fromkeys(d for d in dirs if os.path.isdir(d))))
EOF
)
export LD_LIBRARY_PATH="$PWD/$RUN/base/vulkan${torch_libs:+:$torch_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The NVIDIA Vulkan driver: the system's ICD file, or one written for the driver's library.
if ! ls /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json >/dev/null 2>&1; then
  glx=$( (ldconfig -p 2>/dev/null | awk '/libGLX_nvidia\.so\.0/ { print $NF; exit }'); find /usr/lib /usr/lib64 /usr/local/nvidia -name 'libGLX_nvidia.so.0' 2>/dev/null | head -1)
  glx=$(echo "$glx" | head -1)
  if [ -n "$glx" ]; then
    printf '{"file_format_version":"1.0.1","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$glx" >"$RUN/nvidia_icd.json"
    export VK_DRIVER_FILES="$PWD/$RUN/nvidia_icd.json" VK_ICD_FILENAMES="$PWD/$RUN/nvidia_icd.json"
    say "no Vulkan ICD file installed: wrote one for $glx"
  else
    say "no NVIDIA Vulkan driver library (libGLX_nvidia.so.0) found: WebGPU will find no adapter"
  fi
fi

{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(uname -srm), $(nproc) CPUs"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/gpu: /'
  echo "node: $("$NODE" --version)"
  "$PYTHON" -c 'import torch; print("torch:", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1
} >"$RESULTS/machine.txt"
cat "$RESULTS/machine.txt" >&2

# ---- the runs ---------------------------------------------------------------------------------
run() { # run <model> <provider> <command…>: its JSON line to <model>-<provider>.json, else .err
  local model=$1 provider=$2
  shift 2
  say "$model on $provider"
  if timeout "${RUN_TIMEOUT:-300}" "$@" >"$RESULTS/$model-$provider.json" 2>"$RESULTS/$model-$provider.err"; then
    tail -2 "$RESULTS/$model-$provider.err" >&2
  else
    echo "   failed (exit $?): $(grep -v '^\s*at ' "$RESULTS/$model-$provider.err" | grep . | tail -2 | cut -c1-600)" | tee -a "$RESULTS/run.log" >&2
    rm -f "$RESULTS/$model-$provider.json"
    if [ "$provider" = cuda ]; then # ORT says only "Failed to load shared library": say which
      ldd "$RUN/cuda/app-cuda/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so" 2>&1 |
        grep 'not found' | sed 's/^/   missing: /' | tee -a "$RESULTS/run.log" >&2
    fi
  fi
}
for model in ${MODELS//,/ }; do
  inputs="$RUN/$model-inputs.safetensors"
  check=(--model "$model" --steps "$STEPS" --timed "$TIMED" --loop 10)
  wants cpu && run "$model" cpu "$NODE" "$RUN/base/app/gpu-check.mjs" "${check[@]}" --provider cpu --write-inputs "$inputs"
  wants torch && [ -f "$inputs" ] && run "$model" "torch-$TORCH_DEVICE" "$PYTHON" bench/gpu/torch_check.py --inputs "$inputs" --device "$TORCH_DEVICE" --timed "$TIMED"
  wants webgpu && run "$model" webgpu "$NODE" "$RUN/base/app/gpu-check.mjs" "${check[@]}" --provider webgpu
  wants cuda && [ -d "$RUN/cuda" ] && run "$model" cuda "$NODE" "$RUN/cuda/app-cuda/gpu-check.mjs" "${check[@]}" --provider cuda
done

"$PYTHON" bench/gpu/compare.py "$RESULTS" | tee "$RESULTS/summary.md"
status=${PIPESTATUS[0]}
say "results in $RESULTS (compare exit $status)"
exit "$status"
