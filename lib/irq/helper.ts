/**
 * The {@link IrqHub}'s helper Worker: blocks in epoll_wait over every
 * registered eventfd, drains the ones that fired, adds their counts to the
 * slots' words and notifies them. Its event loop is blocked by design: it
 * talks to the hub only through the shared buffer and the stop eventfd.
 * @module
 */
import { EINTR, EPOLL_EVENT_SIZE, loadLibc } from "../ffi/mod.ts";
import { counterIndex, IrqLayout, kindIndex } from "./waiter.ts";

interface WorkerScope {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(m: unknown): void;
  close(): void;
}
const scope = globalThis as unknown as WorkerScope;
const MAX_EVENTS = 64;

/** What the hub posts to start the helper. */
export interface HelperInit {
  /** The hub's shared buffer. */
  sab: SharedArrayBuffer;
  /** The epoll fd (fds are process wide). */
  epfd: number;
  /**
   * Slots in the buffer; the fd of slot s is at Int32 index HEADER + slots + s,
   * its kind at {@link kindIndex} (0 eventfd: drained here; 1 socket: never read,
   * registered EPOLLONESHOT, so it reports once per re-arm by its waiter).
   */
  slots: number;
}

async function run(init: HelperInit): Promise<void> {
  const libc = await loadLibc();
  const i32 = new Int32Array(init.sab);
  const fdBase = IrqLayout.HEADER + init.slots;
  const evs = new Uint8Array(EPOLL_EVENT_SIZE * MAX_EVENTS);
  const ev = new DataView(evs.buffer);
  const dataOff = EPOLL_EVENT_SIZE - 8;
  const buf = new Uint8Array(8);
  const val = new DataView(buf.buffer);
  Atomics.store(i32, IrqLayout.STATE, 1);
  Atomics.notify(i32, IrqLayout.STATE);
  scope.postMessage({ type: "running" });
  let state = 2;
  while (Atomics.load(i32, IrqLayout.STOP) === 0) {
    const n = libc.epollWait(init.epfd, evs, MAX_EVENTS, -1);
    if (n < 0) {
      const e = libc.errno();
      if (e === EINTR) continue;
      Atomics.store(i32, IrqLayout.ERRNO, e);
      state = 3;
      break;
    }
    for (let k = 0; k < n; k++) {
      const slot = ev.getUint32(k * EPOLL_EVENT_SIZE + dataOff, true);
      if (slot >= init.slots) continue;
      const fd = Atomics.load(i32, fdBase + slot);
      if (fd < 0) continue;
      let c = 1;
      if (Atomics.load(i32, kindIndex(init.slots, slot)) === 0) {
        // EFD_NONBLOCK: a spurious or already drained fd reads -1 (EAGAIN).
        if (libc.read(fd, buf) !== 8) continue;
        c = Number(val.getBigUint64(0, true) & 0x7fff_ffffn);
      }
      Atomics.add(i32, counterIndex(slot), c);
      Atomics.notify(i32, counterIndex(slot));
    }
    Atomics.add(i32, IrqLayout.TURNS, 1);
    Atomics.notify(i32, IrqLayout.TURNS);
  }
  finish(init, state);
}

/** Leave for good: STOP set so waiters return at once, every sleeper woken, the hub told. */
function finish(init: HelperInit, state: number, message?: string): void {
  const i32 = new Int32Array(init.sab);
  Atomics.store(i32, IrqLayout.STOP, 1);
  Atomics.store(i32, IrqLayout.STATE, state);
  Atomics.notify(i32, IrqLayout.STATE);
  for (let s = 0; s < init.slots; s++) Atomics.notify(i32, counterIndex(s));
  Atomics.notify(i32, IrqLayout.TURNS);
  scope.postMessage({ type: "stopped", state, errno: Atomics.load(i32, IrqLayout.ERRNO), message });
  scope.close();
}

scope.onmessage = (e: MessageEvent) => {
  const m = e.data as { type: string; init: HelperInit };
  if (m.type === "init") {
    run(m.init).catch((err) => finish(m.init, 3, String((err as Error)?.message ?? err)));
  }
};
// Handshake: a message posted while this module was still loading could be lost.
scope.postMessage({ type: "loaded" });
