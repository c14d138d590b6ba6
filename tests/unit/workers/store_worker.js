// Test Worker for tests/unit/ffi/load_test.ts: plays a device that writes a completion's DW3.
// Given { sab, index, value, delayMs }: reports "armed", then stores value at index after delayMs.
const scope = globalThis;
scope.onmessage = (e) => {
  const { sab, index, value, delayMs } = e.data;
  const a = new Uint32Array(sab);
  scope.postMessage({ type: "armed" });
  setTimeout(() => {
    Atomics.store(a, index, value);
    scope.postMessage({ type: "stored" });
  }, delayMs);
};
scope.postMessage({ type: "loaded" });
