/**
 * Socket addresses: IPv4 and IPv6 literals to and from struct sockaddr_in /
 * sockaddr_in6 bytes. No name resolution (libc's resolver is not reached
 * through FFI): literals and "localhost" only.
 * @module
 */
import { InvalidArgumentError } from "../nvme/errors.ts";

/** Address family AF_INET. */
export const AF_INET: number = 2;
/** Address family AF_INET6. */
export const AF_INET6: number = 10;
/** Bytes of a struct sockaddr_storage: room for any address accept4/getsockname return. */
export const SOCKADDR_STORAGE: number = 128;

/** An IP endpoint. */
export interface SockAddr {
  /** 4 or 6. */
  readonly family: 4 | 6;
  /** Address literal ("127.0.0.1", "::1"). */
  readonly host: string;
  /** TCP port. */
  readonly port: number;
}

function parse4(s: string): number[] | null {
  const p = s.split(".");
  if (p.length !== 4) return null;
  const out: number[] = [];
  for (const x of p) {
    if (!/^\d{1,3}$/.test(x) || Number(x) > 255) return null;
    out.push(Number(x));
  }
  return out;
}

function parse6(s: string): number[] | null {
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const groups = (h: string): number[] | null => {
    if (h === "") return [];
    const out: number[] = [];
    const parts = h.split(":");
    for (let i = 0; i < parts.length; i++) {
      const x = parts[i];
      if (i === parts.length - 1 && x.includes(".")) {
        const v4 = parse4(x);
        if (!v4) return null;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(x)) out.push(parseInt(x, 16));
      else return null;
    }
    return out;
  };
  const a = groups(halves[0]), b = halves.length === 2 ? groups(halves[1]) : [];
  if (!a || !b) return null;
  const fill = 8 - a.length - b.length;
  if (halves.length === 1 ? fill !== 0 : fill < 1) return null;
  const g = [...a, ...new Array(fill).fill(0), ...b];
  const bytes: number[] = [];
  for (const v of g) bytes.push(v >> 8, v & 0xff);
  return bytes;
}

/**
 * Encode `host`:`port` as a sockaddr. `host` is an IPv4 or IPv6 literal
 * (brackets allowed), "localhost" (127.0.0.1), "" or "0.0.0.0" (any IPv4), "::" (any IPv6).
 */
export function encodeSockAddr(host: string, port: number): Uint8Array {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`bad port ${port}`);
  let h = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (h === "localhost") h = "127.0.0.1";
  if (h === "") h = "0.0.0.0";
  const v4 = parse4(h);
  if (v4) {
    const b = new Uint8Array(16);
    const v = new DataView(b.buffer);
    v.setUint16(0, AF_INET, true);
    v.setUint16(2, port, false);
    b.set(v4, 4);
    return b;
  }
  const v6 = parse6(h);
  if (v6) {
    const b = new Uint8Array(28);
    const v = new DataView(b.buffer);
    v.setUint16(0, AF_INET6, true);
    v.setUint16(2, port, false);
    b.set(v6, 8);
    return b;
  }
  throw new InvalidArgumentError(`not an IP address literal: ${JSON.stringify(host)} (no name resolution)`);
}

/** Decode a sockaddr_in / sockaddr_in6 (as accept4/getsockname fill it). */
export function decodeSockAddr(b: Uint8Array): SockAddr {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const fam = v.getUint16(0, true);
  const port = v.getUint16(2, false);
  if (fam === AF_INET) return { family: 4, host: Array.from(b.subarray(4, 8)).join("."), port };
  if (fam === AF_INET6) {
    const g: string[] = [];
    for (let i = 0; i < 8; i++) g.push(v.getUint16(8 + 2 * i, false).toString(16));
    // Compress the longest run of zero groups, as inet_ntop does.
    let best = -1, bestLen = 1;
    for (let i = 0; i < 8;) {
      let j = i;
      while (j < 8 && g[j] === "0") j++;
      if (j - i > bestLen) [best, bestLen] = [i, j - i];
      i = j === i ? i + 1 : j;
    }
    const host = best < 0 ? g.join(":") : `${g.slice(0, best).join(":")}::${g.slice(best + bestLen).join(":")}`;
    return { family: 6, host, port };
  }
  throw new InvalidArgumentError(`unsupported address family ${fam}`);
}
