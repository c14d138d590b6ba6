/**
 * nvme-cli 2.3's presentation of namespace lists: `nvme list-ns` and
 * `nvme ns-descs`, as text and as `-o json`.
 * @module
 */
import type { NsDescriptor } from "../../admin/manage.ts";
import { toNvmeCliJson } from "./json.ts";

/** `nvme list-ns <dev> -o json` text. */
export function nsListToJson(ids: number[]): string {
  return toNvmeCliJson({ nsid_list: ids.map((nsid) => ({ nsid })) }, { narrow: "all" });
}

/** `nvme list-ns <dev>` text. */
export function formatNsList(ids: number[]): string {
  return ids.map((id, i) => `[${String(i).padStart(4)}]:0x${id.toString(16)}\n`).join("");
}

/** `nvme ns-descs <dev> -o json` text. */
export function nsDescsToJson(d: NsDescriptor[]): string {
  const o = d.length
    ? { "ns-descs": d.map((e) => ({ loc: e.loc, nidt: e.nidt, nidl: e.nidl, type: e.type, [e.type]: e.value })) }
    : {};
  return toNvmeCliJson(o, { narrow: "all" });
}

/** `nvme ns-descs <dev>` text. */
export function formatNsDescs(d: NsDescriptor[], nsid: number): string {
  return `NVME Namespace Identification Descriptors NS ${nsid}:\n` +
    d.map((e) => `${e.type.padEnd(8)}: ${e.value}\n`).join("");
}
