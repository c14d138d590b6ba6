/**
 * Sockets the driver owns: TCP over libc through lib/ffi, nonblocking, with
 * scatter-gather sends ({@link IoVec}), typed errors ({@link SocketError}),
 * and fds that a Worker can adopt. The NVMe/TCP host ring (lib/tcp) and the
 * target (lib/target) sit on it; readiness for sleeping comes from lib/irq's
 * epoll helper (`IrqHub.addSocket`).
 * @module
 */
export { AF_INET, AF_INET6, decodeSockAddr, encodeSockAddr, SOCKADDR_STORAGE, type SockAddr } from "./addr.ts";
export { IOV_MAX, IoVec } from "./iovec.ts";
export {
  AGAIN,
  type ConnectOptions,
  type ListenOptions,
  Listener,
  MSG_NOSIGNAL,
  MSG_PEEK,
  SHUT_RD,
  SHUT_RDWR,
  SHUT_WR,
  shutdownFd,
  Socket,
  SocketError,
} from "./socket.ts";
export { loadLibc } from "../ffi/mod.ts";
export type { Libc, RuntimeName } from "../ffi/mod.ts";
export { NvmeError, SyscallError } from "../nvme/errors.ts";
export type { NvmeErrorCode } from "../nvme/errors.ts";
