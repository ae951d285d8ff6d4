export {
  chooseDevice,
  DEVICE_REQUESTS,
  type DeviceChoice,
  type DeviceRequest,
  probeProvider,
} from "./device.ts";
export {
  assertProviderAvailable,
  EXECUTION_PROVIDERS,
  type ExecutionProvider,
  ortBinaryDir,
  ProviderUnavailableError,
} from "./providers.ts";
export { EngineSession, type SessionOptions } from "./session.ts";
export { f32, fromOrt, type HostTensor, hostTensor, toOrt } from "./tensor.ts";
export { TrainerThread } from "./trainer-thread.ts";
