/**
 * Which host NQN and host ID a fabrics connection uses, resolved as nvme-cli
 * does: explicit values, else /etc/nvme/hostnqn and /etc/nvme/hostid, else
 * one generated from the machine, the same on every run. Targets filter on
 * the host NQN (allow-lists) and Linux tells controllers apart by it and the
 * host ID, so both must not change between runs.
 * @module
 */
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { hostname } from "node:os";
import { InvalidArgumentError } from "../nvme/errors.ts";
import { type HostIdentity, hostIdentity } from "./fabrics.ts";
import { checkNqn } from "./target-string.ts";

/** Where each half of a resolved identity came from. */
export type HostIdentitySource = "option" | "file" | "hostnqn" | "generated";

/** A host identity with the host ID also as text and where both came from. */
export interface ResolvedHostIdentity extends HostIdentity {
  /** Host ID as a UUID string (as /etc/nvme/hostid holds it). */
  hostidText: string;
  /** Where hostnqn came from. */
  hostnqnSource: HostIdentitySource;
  /** Where hostid came from ("hostnqn": the UUID of a uuid-form host NQN). */
  hostidSource: HostIdentitySource;
}

/** Options for {@link resolveHostIdentity}. */
export interface ResolveHostIdentityOptions {
  /** Host NQN given explicitly (nvme-cli `--hostnqn`). */
  hostnqn?: string;
  /** Host ID given explicitly as a UUID string (nvme-cli `--hostid`). */
  hostid?: string;
  /** Directory holding hostnqn and hostid (default /etc/nvme). */
  configDir?: string;
  /** Files that identify the machine, tried in order for a generated identity. */
  machineFiles?: string[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** DMI's product UUID (what libnvme generates from), then systemd's and D-Bus's machine id. */
const MACHINE_FILES = ["/sys/class/dmi/id/product_uuid", "/etc/machine-id", "/var/lib/dbus/machine-id"];

function readTrimmed(path: string): string | undefined {
  try {
    const s = readFileSync(path, "utf8").trim();
    return s === "" ? undefined : s;
  } catch {
    return undefined;
  }
}

/** A UUID from a machine: DMI's product UUID as is, else a name-based one from a machine id or the host name. */
function machineUuid(files: string[]): string {
  for (const f of files) {
    const v = readTrimmed(f);
    if (!v) continue;
    if (UUID.test(v) && !/^0{8}-/.test(v) && !/^f{8}-/i.test(v)) return v.toLowerCase();
    if (/^[0-9a-f]{32}$/i.test(v)) return nameUuid(v);
  }
  return nameUuid(`hostname:${hostname()}`);
}

/** RFC 9562 version 8 UUID from a SHA-256 of `name` (scoped to tsnvme, so it never equals the machine id). */
function nameUuid(name: string): string {
  const h = createHash("sha256").update(`tsnvme-hostnqn:${name.toLowerCase()}`).digest();
  h[6] = (h[6] & 0x0f) | 0x80;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = Array.from(h.subarray(0, 16), (b) => b.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/**
 * The host identity for fabrics connections, as nvme-cli picks it: hostnqn
 * from the option, else `<configDir>/hostnqn`, else
 * `nqn.2014-08.org.nvmexpress:uuid:<machine UUID>`; hostid from the option,
 * else `<configDir>/hostid`, else the UUID of a uuid-form host NQN, else the
 * machine UUID. Throws InvalidArgumentError for a malformed NQN or host ID.
 */
export function resolveHostIdentity(o: ResolveHostIdentityOptions = {}): ResolvedHostIdentity {
  const dir = o.configDir ?? "/etc/nvme";
  let machine: string | undefined;
  const gen = () => machine ??= machineUuid(o.machineFiles ?? MACHINE_FILES);
  let hostnqn = o.hostnqn, hostnqnSource: HostIdentitySource = "option";
  if (hostnqn === undefined) {
    hostnqn = readTrimmed(`${dir}/hostnqn`);
    hostnqnSource = "file";
  }
  if (hostnqn === undefined) {
    hostnqn = hostIdentity(gen()).hostnqn;
    hostnqnSource = "generated";
  }
  const bad = checkNqn(hostnqn);
  if (bad) throw new InvalidArgumentError(`bad host NQN "${hostnqn}": ${bad}`);
  let hostid = o.hostid, hostidSource: HostIdentitySource = "option";
  if (hostid === undefined) {
    hostid = readTrimmed(`${dir}/hostid`);
    hostidSource = "file";
  }
  if (hostid === undefined) {
    const m = /:uuid:([0-9a-f-]{36})$/i.exec(hostnqn);
    if (m && UUID.test(m[1])) {
      hostid = m[1];
      hostidSource = "hostnqn";
    } else {
      hostid = gen();
      hostidSource = "generated";
    }
  }
  if (!UUID.test(hostid)) throw new InvalidArgumentError(`bad host ID "${hostid}": expected a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)`);
  return { hostnqn, hostid: hostIdentity(hostid).hostid, hostidText: hostid.toLowerCase(), hostnqnSource, hostidSource };
}
