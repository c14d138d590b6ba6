/**
 * nvme-cli 2.3's presentation of Identify Controller and Identify Namespace:
 *
 * - {@link idCtrlToJson} / {@link idNsToJson}: the text of
 *   `nvme id-ctrl <dev> -o json` / `nvme id-ns <dev> -o json` (json-c
 *   "pretty" layout, same keys, order and value representation).
 * - {@link formatIdCtrl} / {@link formatIdNs}: the text of `nvme id-ctrl` /
 *   `nvme id-ns`, with `-H` and `-v`.
 *
 * Rules taken from nvme-cli 2.3 (nvme-print.c json_nvme_id_ctrl /
 * json_nvme_id_ns, util/json.c, util/types.c) and checked against the real
 * binary:
 * - sn/mn/fr/subnqn are copied with `%-.*s`: up to the first NUL, never
 *   trimmed (trailing spaces are kept); `subnqn` is only emitted when non-empty.
 * - 128-bit fields (tnvmcap, unvmcap, megcap, maxdna, nvmcap) are JSON
 *   *strings* of decimal digits (`"tnvmcap":"1099511627776"`); digits are
 *   grouped with the locale's thousands separator (none in the C locale).
 * - 64-bit nsze/ncap/nuse are JSON numbers (json-c uint64).
 * - Every other field goes through `json_object_new_int` (int32), so 32-bit
 *   values >= 2^31 print as negative numbers.
 * - `psds` has npss+1 entries, `lbafs` has nlbaf+1 entries (nulbaf ignored);
 *   the vendor-specific area is not part of the JSON.
 *
 * The decoded {@link IdCtrl}/{@link IdNs} objects (lib/nvme/identify.ts) hold
 * the true (unsigned) values in nvme-cli's key order; only these writers
 * apply the int32 narrowing.
 * @module
 */
import { flbasIndex, type IdCtrl, IdCtrlOffset, type IdNs, IdNsOffset, identifyRaw, lbaFormatAt } from "../../nvme/identify.ts";
import { Uint128 } from "../../nvme/wide.ts";
import { hexDump } from "./hexdump.ts";
import { ID_CTRL_HUMAN, ID_CTRL_HUMAN_128, ID_NS_HUMAN, lbafHuman } from "./human.ts";
import { hexAlt, type JsonVal, type NvmeCliFormatOptions, toInt32, uint128ToString, writeJson } from "./json.ts";

/** Id-ctrl JSON keys that nvme-cli passes through int32 although they are 32-bit unsigned. */
const CTRL_NARROW: ReadonlySet<string> = new Set([
  "ver", "rtd3r", "rtd3e", "oaes", "ctratt", "hmpre", "hmmin", "rpmbs", "sanicap",
  "hmminds", "anagrpmax", "nanagrpid", "pels", "nn", "sgls", "mnan", "maxcna",
  "ioccsz", "iorcsz", "entry_lat", "exit_lat",
]);

/**
 * The exact text nvme-cli 2.3 prints for `nvme id-ctrl <dev> -o json`
 * (without the final newline nvme-cli adds).
 */
export function idCtrlToJson(c: IdCtrl, opts: NvmeCliFormatOptions = {}): string {
  return writeJson(c as unknown as JsonVal, 0, "", { sep: opts.thousandsSep ?? "", narrow: CTRL_NARROW });
}

function psPower(power: number, scale: number): string {
  switch (scale & 3) {
    case 0: return "-";
    case 1: return `${Math.floor(power / 10000)}.${String(power % 10000).padStart(4, "0")}W`;
    case 2: return `${Math.floor(power / 100)}.${String(power % 100).padStart(2, "0")}W`;
    default: return "reserved";
  }
}

function psWorkload(apw: number): string {
  switch (apw & 7) {
    case 0: return "-";
    case 1: return "1MiB 32 RW, 30s idle";
    case 2: return "80K 128KiB SW";
    default: return "reserved";
  }
}

/** Lines with nvme-cli's `-H` decoding after each field that has one. */
function withHuman(L: string[], fields: Record<string, unknown>, dec: Record<string, (v: number) => string>, sep: string): string {
  let out = "";
  for (const line of L) {
    out += line + "\n";
    const key = line.slice(0, line.indexOf(":")).trim();
    const v = fields[key];
    if (typeof v === "number" && dec[key]) out += dec[key](v);
    else if (v instanceof Uint128 && ID_CTRL_HUMAN_128[key]) out += ID_CTRL_HUMAN_128[key](uint128ToString(v.value, sep));
  }
  return out;
}

/**
 * nvme-cli 2.3's normal (non `-H`) text for `nvme id-ctrl <dev>`: the
 * `NVME Identify Controller:` block, one `\n`-terminated line per field.
 */
export function formatIdCtrl(c: IdCtrl, opts: NvmeCliFormatOptions = {}): string {
  const sep = opts.thousandsSep ?? "";
  const s = (v: number) => String(toInt32(v)); // printf %d of a 32-bit value
  const ieee = c.ieee.toString(16).padStart(6, "0");
  const L: string[] = [
    "NVME Identify Controller:",
    `vid       : ${hexAlt(c.vid)}`,
    `ssvid     : ${hexAlt(c.ssvid)}`,
    `sn        : ${c.sn}`,
    `mn        : ${c.mn}`,
    `fr        : ${c.fr}`,
    `rab       : ${c.rab}`,
    `ieee      : ${ieee}`,
    `cmic      : ${hexAlt(c.cmic)}`,
    `mdts      : ${c.mdts}`,
    `cntlid    : ${hexAlt(c.cntlid)}`,
    `ver       : ${hexAlt(c.ver)}`,
    `rtd3r     : ${hexAlt(c.rtd3r)}`,
    `rtd3e     : ${hexAlt(c.rtd3e)}`,
    `oaes      : ${hexAlt(c.oaes)}`,
    `ctratt    : ${hexAlt(c.ctratt)}`,
    `rrls      : ${hexAlt(c.rrls)}`,
    `cntrltype : ${c.cntrltype}`,
    `fguid     : ${c.fguid}`,
    `crdt1     : ${c.crdt1}`,
    `crdt2     : ${c.crdt2}`,
    `crdt3     : ${c.crdt3}`,
    `nvmsr     : ${c.nvmsr}`,
    `vwci      : ${c.vwci}`,
    `mec       : ${c.mec}`,
    `oacs      : ${hexAlt(c.oacs)}`,
    `acl       : ${c.acl}`,
    `aerl      : ${c.aerl}`,
    `frmw      : ${hexAlt(c.frmw)}`,
    `lpa       : ${hexAlt(c.lpa)}`,
    `elpe      : ${c.elpe}`,
    `npss      : ${c.npss}`,
    `avscc     : ${hexAlt(c.avscc)}`,
    `apsta     : ${hexAlt(c.apsta)}`,
    `wctemp    : ${c.wctemp}`,
    `cctemp    : ${c.cctemp}`,
    `mtfa      : ${c.mtfa}`,
    `hmpre     : ${s(c.hmpre)}`,
    `hmmin     : ${s(c.hmmin)}`,
    `tnvmcap   : ${uint128ToString(c.tnvmcap.value, sep)}`,
    `unvmcap   : ${uint128ToString(c.unvmcap.value, sep)}`,
    `rpmbs     : ${hexAlt(c.rpmbs)}`,
    `edstt     : ${c.edstt}`,
    `dsto      : ${c.dsto}`,
    `fwug      : ${c.fwug}`,
    `kas       : ${c.kas}`,
    `hctma     : ${hexAlt(c.hctma)}`,
    `mntmt     : ${c.mntmt}`,
    `mxtmt     : ${c.mxtmt}`,
    `sanicap   : ${hexAlt(c.sanicap)}`,
    `hmminds   : ${c.hmminds}`,
    `hmmaxd    : ${c.hmmaxd}`,
    `nsetidmax : ${c.nsetidmax}`,
    `endgidmax : ${c.endgidmax}`,
    `anatt     : ${c.anatt}`,
    `anacap    : ${c.anacap}`,
    `anagrpmax : ${c.anagrpmax}`,
    `nanagrpid : ${c.nanagrpid}`,
    `pels      : ${c.pels}`,
    `domainid  : ${c.domainid}`,
    `megcap    : ${uint128ToString(c.megcap.value, sep)}`,
    `sqes      : ${hexAlt(c.sqes)}`,
    `cqes      : ${hexAlt(c.cqes)}`,
    `maxcmd    : ${c.maxcmd}`,
    `nn        : ${s(c.nn)}`,
    `oncs      : ${hexAlt(c.oncs)}`,
    `fuses     : ${hexAlt(c.fuses)}`,
    `fna       : ${hexAlt(c.fna)}`,
    `vwc       : ${hexAlt(c.vwc)}`,
    `awun      : ${c.awun}`,
    `awupf     : ${c.awupf}`,
    `icsvscc   : ${c.icsvscc}`,
    `nwpc      : ${c.nwpc}`,
    `acwu      : ${c.acwu}`,
    `ocfs      : ${hexAlt(c.ocfs)}`,
    `sgls      : ${hexAlt(c.sgls)}`,
    `mnan      : ${c.mnan}`,
    `maxdna    : ${uint128ToString(c.maxdna.value, sep)}`,
    `maxcna    : ${c.maxcna}`,
    `subnqn    : ${c.subnqn ?? ""}`,
    `ioccsz    : ${c.ioccsz}`,
    `iorcsz    : ${c.iorcsz}`,
    `icdoff    : ${c.icdoff}`,
    `fcatt     : ${hexAlt(c.fcatt)}`,
    `msdbd     : ${c.msdbd}`,
    `ofcs      : ${c.ofcs}`,
  ];
  c.psds.forEach((p, i) => {
    const mp = p.flags & 1
      ? `${Math.floor(p.max_power / 10000)}.${String(p.max_power % 10000).padStart(4, "0")}W`
      : `${Math.floor(p.max_power / 100)}.${String(p.max_power % 100).padStart(2, "0")}W`;
    L.push(
      `ps   ${String(i).padStart(4, " ")} : mp:${mp} ${p.flags & 2 ? "non-" : ""}operational ` +
        `enlat:${s(p.entry_lat)} exlat:${s(p.exit_lat)} rrt:${p.read_tput} rrl:${p.read_lat}`,
      `            rwt:${p.write_tput} rwl:${p.write_lat} idle_power:${psPower(p.idle_power, p.idle_scale)}` +
        ` active_power:${psPower(p.active_power, p.active_scale)}`,
      `            active_power_workload:${psWorkload(p.active_power_work)}`,
    );
  });
  let out = opts.human ? withHuman(L, c as unknown as Record<string, unknown>, ID_CTRL_HUMAN, sep) : L.join("\n") + "\n";
  const raw = identifyRaw(c);
  if (opts.vendorSpecific && raw) out += "vs[]:\n" + hexDump(raw.subarray(IdCtrlOffset.VS, 4096));
  return out;
}


const NS_NARROW: ReadonlySet<string> = new Set(["mcl", "anagrpid"]);

/**
 * The exact text nvme-cli 2.3 prints for `nvme id-ns <dev> -o json`
 * (without the final newline nvme-cli adds).
 */
export function idNsToJson(n: IdNs, opts: NvmeCliFormatOptions = {}): string {
  return writeJson(n as unknown as JsonVal, 0, "", { sep: opts.thousandsSep ?? "", narrow: NS_NARROW });
}

/**
 * nvme-cli 2.3's normal (non `-H`) text for `nvme id-ns <dev> -n <nsid>`,
 * one `\n`-terminated line per field; the `lbaf` lines cover nlbaf + nulbaf
 * (read from the structure `n` was parsed from; for a copied object only the
 * `lbafs` it holds are known).
 */
export function formatIdNs(n: IdNs, nsid: number, opts: NvmeCliFormatOptions = {}): string {
  const sep = opts.thousandsSep ?? "";
  const L: string[] = [
    `NVME Identify Namespace ${toInt32(nsid)}:`,
    `nsze    : ${hexAlt(n.nsze.value)}`,
    `ncap    : ${hexAlt(n.ncap.value)}`,
    `nuse    : ${hexAlt(n.nuse.value)}`,
    `nsfeat  : ${hexAlt(n.nsfeat)}`,
    `nlbaf   : ${n.nlbaf}`,
    `flbas   : ${hexAlt(n.flbas)}`,
    `mc      : ${hexAlt(n.mc)}`,
    `dpc     : ${hexAlt(n.dpc)}`,
    `dps     : ${hexAlt(n.dps)}`,
    `nmic    : ${hexAlt(n.nmic)}`,
    `rescap  : ${hexAlt(n.rescap)}`,
    `fpi     : ${hexAlt(n.fpi)}`,
    `dlfeat  : ${n.dlfeat}`,
    `nawun   : ${n.nawun}`,
    `nawupf  : ${n.nawupf}`,
    `nacwu   : ${n.nacwu}`,
    `nabsn   : ${n.nabsn}`,
    `nabo    : ${n.nabo}`,
    `nabspf  : ${n.nabspf}`,
    `noiob   : ${n.noiob}`,
    `nvmcap  : ${uint128ToString(n.nvmcap.value, sep)}`,
  ];
  if (n.nsfeat & 0x10) {
    L.push(
      `npwg    : ${n.npwg ?? 0}`,
      `npwa    : ${n.npwa ?? 0}`,
      `npdg    : ${n.npdg ?? 0}`,
      `npda    : ${n.npda ?? 0}`,
      `nows    : ${n.nows ?? 0}`,
    );
  }
  L.push(
    `mssrl   : ${n.mssrl}`,
    `mcl     : ${n.mcl}`,
    `msrc    : ${n.msrc}`,
    `nulbaf  : ${n.nulbaf}`,
    `anagrpid: ${n.anagrpid}`,
    `nsattr\t: ${n.nsattr}`,
    `nvmsetid: ${n.nvmsetid}`,
    `endgid  : ${n.endgid}`,
    `nguid   : ${n.nguid}`,
    `eui64   : ${n.eui64}`,
  );
  const raw = identifyRaw(n);
  const inUse = flbasIndex(n.flbas);
  const count = n.nlbaf + n.nulbaf + 1;
  const lbafs: string[] = [];
  for (let i = 0; i < count; i++) {
    const f = raw ? lbaFormatAt(raw, i) : n.lbafs[i] ?? { ms: 0, ds: 0, rp: 0 };
    lbafs.push(
      opts.human ? lbafHuman(i, f.ms, f.ds, f.rp, i === inUse) : `lbaf ${String(i).padStart(2, " ")} : ms:${String(f.ms).padEnd(3, " ")} ` +
        `lbads:${String(f.ds).padEnd(2, " ")} rp:${hexAlt(f.rp)} ${i === inUse ? "(in use)" : ""}`,
    );
  }
  let out = (opts.human ? withHuman(L, n as unknown as Record<string, unknown>, ID_NS_HUMAN, sep) : L.join("\n") + "\n") +
    lbafs.map((l) => l + "\n").join("");
  if (opts.vendorSpecific && raw) out += "vs[]:\n" + hexDump(raw.subarray(IdNsOffset.VS, 4096));
  return out;
}

