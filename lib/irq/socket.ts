/**
 * Sleeping on a socket's readiness through the {@link IrqHub}'s epoll helper.
 * The helper must not consume a socket's data, so a socket is registered
 * EPOLLONESHOT: it reports once, counts one wake on its slot's word, and
 * stays silent until its waiter re-arms it (epoll_ctl MOD) before the next
 * sleep. While the queue polls, no event reaches the helper.
 * @module
 */
import { EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, EPOLL_EVENT_SIZE, EPOLLIN, EPOLLONESHOT, EPOLLRDHUP, errnoName, type Libc } from "../ffi/mod.ts";
import { InvalidArgumentError, SyscallError } from "../nvme/errors.ts";
import { counterIndex, type IrqGate, type IrqWord, IrqLayout, IrqWaiter, kindIndex } from "./waiter.ts";

/** The epoll events a socket is (re-)armed with: readable or peer closed (errors are always reported). */
export const SOCKET_EVENTS: number = (EPOLLIN | EPOLLRDHUP | EPOLLONESHOT) >>> 0;

/**
 * The {@link IrqGate} of a socket slot: "masked" means disarmed, i.e. the
 * oneshot has fired (or was never armed by this thread) since the last
 * re-arm; {@link unmask} re-arms it with one epoll_ctl. {@link mask} has
 * nothing to do: a oneshot disarms itself when it fires.
 */
export class SocketGate implements IrqGate {
  readonly #libc: Libc;
  readonly #epfd: number;
  readonly #fd: number;
  readonly #i32: Int32Array;
  readonly #idx: number;
  readonly #ev: Uint8Array;
  #armedAt = -1;

  /** Gate for a socket `word` (from {@link IrqHub.addSocket}), calling epoll_ctl through `libc` (this thread's). */
  constructor(libc: Libc, word: IrqWord) {
    if (!word.socket) throw new InvalidArgumentError("not a socket's word (IrqHub.addSocket gives one)");
    this.#libc = libc;
    this.#epfd = word.socket.epfd;
    this.#fd = word.socket.fd;
    this.#i32 = new Int32Array(word.sab);
    this.#idx = counterIndex(word.slot);
    this.#ev = new Uint8Array(EPOLL_EVENT_SIZE);
    const v = new DataView(this.#ev.buffer);
    v.setUint32(0, SOCKET_EVENTS, true);
    v.setUint32(EPOLL_EVENT_SIZE - 8, word.slot, true);
  }

  /** True unless armed and not fired since. */
  get masked(): boolean {
    return this.#armedAt < 0 || (Atomics.load(this.#i32, this.#idx) >>> 0) !== this.#armedAt;
  }

  /** Nothing: the oneshot disarms itself when it fires. */
  mask(): void {}

  /** Re-arm the oneshot (it fires at once if the socket is already readable). */
  unmask(): void {
    // Snapshot first: a fire after the MOD changes the count, so the next arm re-arms again.
    const c = Atomics.load(this.#i32, this.#idx) >>> 0;
    if (this.#libc.epollCtl(this.#epfd, EPOLL_CTL_MOD, this.#fd, this.#ev) !== 0) {
      const e = this.#libc.errno();
      throw new SyscallError(`epoll_ctl MOD socket ${this.#fd}`, e, errnoName(e));
    }
    this.#armedAt = c;
  }
}

/** A waiter for a socket's word posted from another thread, re-arming through this thread's `libc`. */
export function socketWaiter(libc: Libc, word: IrqWord): IrqWaiter {
  return new IrqWaiter(word, new SocketGate(libc, word));
}

function slotFdIndex(word: IrqWord): number {
  // Slots are the buffer's words after the header, in three equal areas: counters, fds, kinds.
  const slots = (word.sab.byteLength / 4 - IrqLayout.HEADER) / 3;
  return IrqLayout.HEADER + slots + word.slot;
}

/**
 * Register `fd` in a slot reserved by `IrqHub.reserveSocket` (posted to this
 * thread), through this thread's `libc`; returns the word to build a
 * {@link socketWaiter} on. One socket per slot at a time: {@link detachSocket} first.
 */
export function attachSocket(libc: Libc, word: IrqWord, fd: number): IrqWord {
  if (!word.socket) throw new InvalidArgumentError("not a socket slot (IrqHub.reserveSocket gives one)");
  const i32 = new Int32Array(word.sab);
  const slots = (word.sab.byteLength / 4 - IrqLayout.HEADER) / 3;
  Atomics.store(i32, kindIndex(slots, word.slot), 1);
  if (Atomics.compareExchange(i32, slotFdIndex(word), -1, fd) !== -1) {
    throw new InvalidArgumentError(`socket slot ${word.slot} is in use or was freed`);
  }
  const ev = new Uint8Array(EPOLL_EVENT_SIZE);
  const v = new DataView(ev.buffer);
  v.setUint32(0, SOCKET_EVENTS, true);
  v.setUint32(EPOLL_EVENT_SIZE - 8, word.slot, true);
  if (libc.epollCtl(word.socket.epfd, EPOLL_CTL_ADD, fd, ev) !== 0) {
    const e = libc.errno();
    Atomics.store(i32, slotFdIndex(word), -1);
    throw new SyscallError(`epoll_ctl ADD socket ${fd}`, e, errnoName(e));
  }
  return { sab: word.sab, slot: word.slot, socket: { epfd: word.socket.epfd, fd } };
}

/** Deregister the socket {@link attachSocket} put in `word`'s slot (before closing it); the slot stays reserved. */
export function detachSocket(libc: Libc, word: IrqWord): void {
  if (!word.socket || word.socket.fd < 0) return;
  if (Atomics.compareExchange(new Int32Array(word.sab), slotFdIndex(word), word.socket.fd, -1) !== word.socket.fd) return;
  libc.epollCtl(word.socket.epfd, EPOLL_CTL_DEL, word.socket.fd, new Uint8Array(EPOLL_EVENT_SIZE));
}
