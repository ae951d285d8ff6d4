// Plain-JS child for probeProvider (device.ts): creates one ONNX Runtime session on the provider
// named in argv[2] for the tiny model on stdin, runs it once, and prints one JSON line:
// {"ok":true} or {"ok":false,"error":"…"}. A child process, so that a provider that crashes,
// or a CUDA context that stays resident, never touches the worker that asked.
import { readFileSync } from "node:fs";
import * as ort from "onnxruntime-node";

const provider = process.argv[2];
try {
  const model = new Uint8Array(readFileSync(0));
  const session = await ort.InferenceSession.create(model, {
    executionProviders: [provider],
    logSeverityLevel: 3,
  });
  const x = new ort.Tensor("float32", new Float32Array([1, 2, 3, 4]), [4]);
  const out = await session.run({ x });
  const y = out[session.outputNames[0]].data;
  if (y[3] !== 8) throw new Error(`the probe model computed ${Array.from(y)} instead of 2·x`);
  await session.release();
  process.stdout.write(`${JSON.stringify({ ok: true })}\n`);
} catch (error) {
  process.stdout.write(`${JSON.stringify({ ok: false, error: String(error?.message ?? error) })}\n`);
}
