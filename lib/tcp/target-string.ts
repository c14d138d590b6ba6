/**
 * NVMe/TCP target strings, `tcp://HOST[:PORT][/SUBNQN]`: the one spelling
 * the facade (`NVMeDev.open`) and the CLI take for a remote controller.
 * HOST is an IPv4 address, a DNS name, or an IPv6 address in brackets
 * (`[::1]`, `[fe80::1%eth0]`); PORT defaults per use (4420 for IO
 * controllers, 8009 for discovery, as nvme-cli); SUBNQN is taken verbatim
 * (NQNs contain `:` and may contain `/`).
 * @module
 */
import { isIP } from "node:net";
import { InvalidArgumentError } from "../nvme/errors.ts";
import { DISCOVERY_NQN, NQN_MAX } from "./fabrics.ts";

/** The IANA port for NVMe/TCP IO controllers. */
export const NVME_TCP_PORT = 4420;
/** The IANA port for the NVMe/TCP discovery service (nvme-cli's default for `discover`). */
export const NVME_TCP_DISCOVERY_PORT = 8009;

/** A parsed `tcp://` target. */
export interface TcpTargetAddress {
  /** Host name or address, IPv6 without brackets (as node:net wants it). */
  host: string;
  /** TCP port. */
  port: number;
  /** Subsystem NQN. */
  subnqn: string;
}

/** Options for {@link parseTcpTarget}. */
export interface ParseTcpTargetOptions {
  /** Port when the string has none (default {@link NVME_TCP_PORT}). */
  defaultPort?: number;
  /**
   * NQN when the string has none; without it a missing NQN is an error
   * (an IO controller must be named, discovery passes {@link DISCOVERY_NQN}).
   */
  defaultNqn?: string;
}

const SCHEME = /^tcp:\/\//i;
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** Whether `s` is spelled as a tcp:// target (cheap check before {@link parseTcpTarget}). */
export function isTcpTarget(s: string): boolean {
  return SCHEME.test(s);
}

function fail(s: string, why: string): never {
  throw new InvalidArgumentError(`bad NVMe/TCP target "${s}": ${why} (expected tcp://HOST[:PORT]/SUBNQN)`);
}

/** Check an NQN as Connect will carry it: non-empty, printable, at most {@link NQN_MAX} UTF-8 bytes. */
export function checkNqn(nqn: string): string | undefined {
  if (nqn.length === 0) return "empty NQN";
  // deno-lint-ignore no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(nqn)) return "NQN contains whitespace or control characters";
  if (new TextEncoder().encode(nqn).length > NQN_MAX) return `NQN longer than ${NQN_MAX} bytes`;
  return undefined;
}

/**
 * Parse `tcp://HOST[:PORT][/SUBNQN]`. Throws InvalidArgumentError naming what
 * is wrong: another scheme, an empty or malformed host, an unbracketed IPv6
 * address, a port outside 1..65535, a missing (without `defaultNqn`) or
 * malformed NQN.
 */
export function parseTcpTarget(s: string, opts: ParseTcpTargetOptions = {}): TcpTargetAddress {
  if (!SCHEME.test(s)) fail(s, "scheme must be tcp://");
  const rest = s.slice("tcp://".length);
  const slash = rest.indexOf("/");
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? "" : rest.slice(slash + 1);
  if (authority.includes("@")) fail(s, "user info is not supported");
  let host: string;
  let portText: string | undefined;
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]");
    if (close < 0) fail(s, "unclosed [ in IPv6 address");
    host = authority.slice(1, close);
    const after = authority.slice(close + 1);
    if (after !== "") {
      if (!after.startsWith(":")) fail(s, `unexpected "${after}" after ]`);
      portText = after.slice(1);
    }
    const zone = host.indexOf("%");
    const addr = zone < 0 ? host : host.slice(0, zone);
    if (isIP(addr) !== 6 || (zone >= 0 && zone === host.length - 1)) fail(s, `"${host}" is not an IPv6 address`);
  } else {
    const colons = authority.split(":").length - 1;
    if (colons > 1) fail(s, "an IPv6 address must be in brackets, e.g. tcp://[::1]:4420/NQN");
    const colon = authority.indexOf(":");
    host = colon < 0 ? authority : authority.slice(0, colon);
    if (colon >= 0) portText = authority.slice(colon + 1);
    if (host === "") fail(s, "empty host");
    if (isIP(host) === 0 && (!HOSTNAME.test(host) || /^[0-9.]+$/.test(host))) fail(s, `"${host}" is not a host name or IPv4 address`);
  }
  let port = opts.defaultPort ?? NVME_TCP_PORT;
  if (portText !== undefined) {
    if (!/^[0-9]{1,5}$/.test(portText)) fail(s, `port "${portText}" is not a number`);
    port = Number(portText);
    if (port < 1 || port > 65535) fail(s, `port ${port} is outside 1..65535`);
  }
  let subnqn = path;
  if (subnqn === "") {
    if (opts.defaultNqn === undefined) fail(s, "no subsystem NQN");
    subnqn = opts.defaultNqn;
  }
  const bad = checkNqn(subnqn);
  if (bad) fail(s, bad);
  return { host, port, subnqn };
}

/** Spell a target back as a string {@link parseTcpTarget} reads (IPv6 in brackets). */
export function formatTcpTarget(t: TcpTargetAddress): string {
  const host = t.host.includes(":") ? `[${t.host}]` : t.host;
  return `tcp://${host}:${t.port}/${t.subnqn}`;
}

/** Parse a discovery target: port defaults to 8009, the NQN to the well-known discovery NQN. */
export function parseDiscoveryTarget(s: string): TcpTargetAddress {
  return parseTcpTarget(s, { defaultPort: NVME_TCP_DISCOVERY_PORT, defaultNqn: DISCOVERY_NQN });
}
