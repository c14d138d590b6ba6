/**
 * One helper thread for every interrupt eventfd of the process. Bun's node:fs
 * read on an eventfd holds one of a two-thread pool (two waiters hang every
 * other fs call), and Deno's nonblocking FFI read costs an OS thread per
 * pending wait; a single Worker blocking in epoll_wait that notifies a
 * SharedArrayBuffer word per vector scales on both (shared/notes/workers.md).
 * @module
 */
import { EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_EVENT_SIZE, EPOLLIN, EFD_CLOEXEC, EFD_NONBLOCK, errnoName, type Libc, loadLibc } from "../ffi/mod.ts";
import { SOCKET_EVENTS, SocketGate } from "./socket.ts";
import { DeviceClosedError, InvalidArgumentError, SetupError, SyscallError } from "../nvme/errors.ts";
import type { HelperInit } from "./helper.ts";
import { counterIndex, type IrqWord, IrqLayout, IrqWaiter, kindIndex } from "./waiter.ts";

/** Options of {@link IrqHub.start}. */
export interface IrqHubOptions {
  /** Most eventfds registered at once (default 256). */
  slots?: number;
  /** libc to use (default: this runtime's). */
  libc?: Libc;
  /** How long {@link IrqHub.start} waits for the helper, in ms (default 10 000). */
  startTimeoutMs?: number;
}

const STOP_SLOT = 0;
/** #bySlot's mark of a slot reserved for another thread's socket. */
const RESERVED = -2;
type WaitAsync = (a: Int32Array, i: number, v: number, t?: number) => { async: boolean; value: Promise<unknown> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/**
 * Owns the helper Worker, the epoll fd and the wake words. Register eventfds
 * with {@link add}; wait on them with the returned {@link IrqWaiter}, here or
 * in a Worker (post {@link IrqWaiter.word}). {@link close} stops the helper:
 * a thread blocked in epoll_wait would otherwise keep the process alive.
 */
export class IrqHub {
  /** The shared buffer of wake words (post it to Workers inside an {@link IrqWord}). */
  readonly sab: SharedArrayBuffer;
  /** Slots, one per registered eventfd (slot 0 is the hub's own stop eventfd). */
  readonly slots: number;
  readonly #libc: Libc;
  readonly #i32: Int32Array;
  readonly #worker: Worker;
  readonly #epfd: number;
  readonly #stopFd: number;
  readonly #bySlot: (number | undefined)[];
  #closing: Promise<void> | null = null;
  #failure: string | null = null;
  #stopped!: Promise<void>;

  private constructor(libc: Libc, worker: Worker, sab: SharedArrayBuffer, slots: number, epfd: number, stopFd: number) {
    this.#libc = libc;
    this.#worker = worker;
    this.sab = sab;
    this.slots = slots;
    this.#i32 = new Int32Array(sab);
    this.#epfd = epfd;
    this.#stopFd = stopFd;
    this.#bySlot = new Array(slots).fill(undefined);
  }

  /** Create the epoll fd and start the helper Worker. */
  static async start(opts: IrqHubOptions = {}): Promise<IrqHub> {
    const slots = opts.slots ?? 256;
    if (!Number.isInteger(slots) || slots < 2 || slots > 65536) {
      throw new InvalidArgumentError(`slots must be an integer from 2 to 65536, got ${slots}`);
    }
    const libc = opts.libc ?? await loadLibc();
    const epfd = libc.epollCreate1(EPOLL_CLOEXEC);
    if (epfd < 0) throw new SyscallError("epoll_create1", libc.errno(), errnoName(libc.errno()));
    const stopFd = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (stopFd < 0) {
      const e = libc.errno();
      libc.close(epfd);
      throw new SyscallError("eventfd", e, errnoName(e));
    }
    const sab = new SharedArrayBuffer((IrqLayout.HEADER + 3 * slots) * 4);
    new Int32Array(sab).fill(-1, IrqLayout.HEADER + slots, IrqLayout.HEADER + 2 * slots);
    const worker = new Worker(new URL("./helper_entry.js", import.meta.url), { type: "module" });
    const hub = new IrqHub(libc, worker, sab, slots, epfd, stopFd);
    let failStart: (e: Error) => void = () => {};
    const running = new Promise<void>((resolve, reject) => {
      failStart = reject;
      let resolveStopped: () => void = () => {};
      hub.#stopped = new Promise<void>((r) => resolveStopped = r);
      worker.onmessage = (e: MessageEvent) => {
        const m = e.data as { type: string; message?: string };
        if (m.type === "loaded") {
          const init: HelperInit = { sab, epfd, slots };
          worker.postMessage({ type: "init", init });
        } else if (m.type === "running") resolve();
        else if (m.type === "stopped") {
          const s = m as { state?: number; errno?: number; message?: string };
          if (s.state === 3) {
            hub.#failure = s.message ?? `epoll_wait failed: ${errnoName(s.errno ?? 0)}`;
            reject(new SetupError("irq", `interrupt helper failed: ${hub.#failure}`));
          }
          resolveStopped();
        }
      };
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault?.();
        reject(new SetupError("irq", `interrupt helper failed to start: ${e.message}`));
        resolveStopped();
      };
    });
    const t = setTimeout(() => failStart(new SetupError("irq", "interrupt helper did not start")), opts.startTimeoutMs ?? 10_000);
    try {
      hub.#register(STOP_SLOT, stopFd);
      await running;
    } catch (e) {
      worker.terminate();
      libc.close(stopFd);
      libc.close(epfd);
      throw e;
    } finally {
      clearTimeout(t);
    }
    return hub;
  }

  #register(slot: number, fd: number, socket = false): void {
    // The fd and its kind go into the buffer before epoll can report it: the helper reads them from there.
    Atomics.store(this.#i32, kindIndex(this.slots, slot), socket ? 1 : 0);
    Atomics.store(this.#i32, IrqLayout.HEADER + this.slots + slot, fd);
    const ev = new Uint8Array(EPOLL_EVENT_SIZE);
    const v = new DataView(ev.buffer);
    v.setUint32(0, socket ? SOCKET_EVENTS : EPOLLIN, true);
    v.setUint32(EPOLL_EVENT_SIZE - 8, slot, true);
    if (this.#libc.epollCtl(this.#epfd, EPOLL_CTL_ADD, fd, ev) !== 0) {
      const e = this.#libc.errno();
      Atomics.store(this.#i32, IrqLayout.HEADER + this.slots + slot, -1);
      throw new SyscallError(`epoll_ctl ADD ${socket ? "socket" : "eventfd"} ${fd}`, e, errnoName(e));
    }
    this.#bySlot[slot] = fd;
  }

  /**
   * Register `eventfd` (EFD_NONBLOCK: the helper drains it) and return a
   * waiter for it. The caller keeps owning the fd: await {@link remove} before
   * closing it (VfioInterrupts.close, or closing the device, closes it).
   */
  add(eventfd: number): IrqWaiter {
    if (this.#closing) throw new DeviceClosedError("interrupt hub is closed");
    const slot = this.#bySlot.indexOf(undefined, 1);
    if (slot < 0) throw new InvalidArgumentError(`interrupt hub is full (${this.slots - 1} eventfds)`);
    this.#register(slot, eventfd);
    return new IrqWaiter({ sab: this.sab, slot });
  }

  /**
   * Register a socket for readiness (readable, end of stream or error) and
   * return a waiter for it. The helper never reads the socket: the fd is
   * registered EPOLLONESHOT and the waiter's {@link IrqWaiter.arm} re-arms it
   * (one epoll_ctl per sleep, none while the queue polls), so a TCP queue
   * sleeps and wakes exactly as a PCIe queue does. In a Worker, post
   * `waiter.word` and rebuild it with `socketWaiter(libc, word)`. The caller
   * keeps owning the fd: await {@link remove} before closing it.
   */
  addSocket(fd: number): IrqWaiter {
    if (this.#closing) throw new DeviceClosedError("interrupt hub is closed");
    const slot = this.#bySlot.indexOf(undefined, 1);
    if (slot < 0) throw new InvalidArgumentError(`interrupt hub is full (${this.slots - 1} fds)`);
    this.#register(slot, fd, true);
    const word: IrqWord = { sab: this.sab, slot, socket: { epfd: this.#epfd, fd } };
    return new IrqWaiter(word, new SocketGate(this.#libc, word));
  }

  /**
   * Reserve a slot for a socket another thread will open: the returned word
   * (post it) carries the epoll fd and the slot; that thread registers its
   * socket with `attachSocket(libc, word, fd)` and sleeps on it with
   * `socketWaiter`. Free it with {@link removeSocket}.
   */
  reserveSocket(): IrqWord {
    if (this.#closing) throw new DeviceClosedError("interrupt hub is closed");
    const slot = this.#bySlot.indexOf(undefined, 1);
    if (slot < 0) throw new InvalidArgumentError(`interrupt hub is full (${this.slots - 1} fds)`);
    Atomics.store(this.#i32, kindIndex(this.slots, slot), 1);
    this.#bySlot[slot] = RESERVED;
    return { sab: this.sab, slot, socket: { epfd: this.#epfd, fd: -1 } };
  }

  /**
   * Stop watching a socket registered with {@link addSocket} and free its
   * slot, at once: the helper never reads a socket, so no turn must pass
   * before the caller closes the fd. A wake-up already on its way may still
   * land on the slot's word (a spurious wake for its next user).
   */
  removeSocket(word: IrqWord): void {
    const fd = this.#bySlot[word.slot];
    if (word.sab !== this.sab || word.slot === STOP_SLOT || fd === undefined || !word.socket) return;
    if (fd === RESERVED) {
      // Another thread's socket may still be registered in it: deregister what the slot holds.
      const cur = Atomics.exchange(this.#i32, IrqLayout.HEADER + this.slots + word.slot, -1);
      if (cur >= 0) this.#libc.epollCtl(this.#epfd, EPOLL_CTL_DEL, cur, new Uint8Array(EPOLL_EVENT_SIZE));
    } else {
      if (word.socket.fd !== fd) return;
      Atomics.store(this.#i32, IrqLayout.HEADER + this.slots + word.slot, -1);
      this.#libc.epollCtl(this.#epfd, EPOLL_CTL_DEL, fd, new Uint8Array(EPOLL_EVENT_SIZE));
    }
    this.#bySlot[word.slot] = undefined;
  }

  /**
   * Stop watching the eventfd of `word`'s slot (its waiter sees no more
   * interrupts). Resolves once the helper can no longer be reading that fd,
   * so the caller may then close it without the helper ever reading a reused fd number.
   */
  async remove(word: IrqWord): Promise<void> {
    const fd = this.#bySlot[word.slot];
    if (word.sab !== this.sab || word.slot === STOP_SLOT || fd === undefined) return;
    const i32 = this.#i32;
    Atomics.store(i32, IrqLayout.HEADER + this.slots + word.slot, -1);
    this.#libc.epollCtl(this.#epfd, EPOLL_CTL_DEL, fd, new Uint8Array(EPOLL_EVENT_SIZE));
    this.#bySlot[word.slot] = undefined;
    if (this.#closing) return;
    // A helper turn that began before the -1 store may still read the old fd: wait for the next turn's end.
    const turns = Atomics.load(i32, IrqLayout.TURNS);
    this.#kick();
    while (Atomics.load(i32, IrqLayout.TURNS) === turns && Atomics.load(i32, IrqLayout.STATE) === 1) {
      const r = waitAsync(i32, IrqLayout.TURNS, turns, 100);
      if (!r.async) continue;
      const hold = setTimeout(() => {}, 101);
      await r.value;
      clearTimeout(hold);
    }
  }

  /** Write the stop eventfd: the helper runs one turn (and exits if STOP is set). */
  #kick(): void {
    const one = new Uint8Array(8);
    one[0] = 1;
    this.#libc.write(this.#stopFd, one);
  }

  /**
   * Why the helper stopped on its own (epoll_wait failed, or it threw), or
   * null. Its waiters then see {@link IrqWaiter.stopped} and return at once;
   * the queues should fall back to polling.
   */
  get failure(): string | null {
    if (this.#failure !== null || Atomics.load(this.#i32, IrqLayout.STATE) !== 3) return this.#failure;
    // Read from the shared words: the helper's message may still be on its way.
    const e = Atomics.load(this.#i32, IrqLayout.ERRNO);
    return e ? `epoll_wait failed: ${errnoName(e)}` : "interrupt helper failed";
  }

  /** Interrupts counted on `word`'s slot so far. */
  count(word: IrqWord): number {
    return Atomics.load(this.#i32, counterIndex(word.slot)) >>> 0;
  }

  /**
   * Stop the helper (stop word, then a write to the stop eventfd so epoll_wait
   * returns), wake every sleeper, close the hub's own fds. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      Atomics.store(this.#i32, IrqLayout.STOP, 1);
      this.#kick();
      // Bounded by a wait on the helper's state word rather than a timer: a transport closing
      // synchronously (TcpTransport.close) leaves no timer behind; the live helper keeps the loop up.
      const w = waitAsync(this.#i32, IrqLayout.STATE, 1, 5000);
      await Promise.race([this.#stopped, w.async ? w.value : Promise.resolve()]);
      for (let s = 0; s < this.slots; s++) Atomics.notify(this.#i32, counterIndex(s));
      this.#worker.terminate();
      this.#libc.close(this.#stopFd);
      this.#libc.close(this.#epfd);
    })();
    return this.#closing;
  }

  /** Same as {@link close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
