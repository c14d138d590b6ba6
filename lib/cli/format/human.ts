/**
 * The `-H` (human-readable) field decodings nvme-cli 2.3 prints under
 * id-ctrl and id-ns fields (nvme-print.c nvme_show_id_ctrl_* and
 * nvme_show_id_ns_*), text for text, quirks included (a few print the whole
 * field where the bits were meant, or test the wrong sense; they are kept so
 * the output matches).
 * @module
 */

/** C's `%#x`: "0x" and hex digits, or "0" for zero. */
const x = (v: number): string => (v === 0 ? "0" : "0x" + (v >>> 0).toString(16));
/** "" when set, else `no` ("Not " by default): nvme-cli's "%sSupported" idiom. */
const not = (v: number, no = "Not "): string => (v ? "" : no);
/** One decoded bit-field line: `  [hi:lo] : %#x\t<text>`. */
const f = (bits: string, v: number, text: string, pad = "  "): string => `${pad}[${bits}] : ${x(v)}\t${text}\n`;
const celsius = (k: number, name: string): string => ` [15:0] : ${k - 273}°C (${k} Kelvin)\t${name}\n\n`;

/** Decoders for Identify Controller fields, by nvme-cli's field name. */
export const ID_CTRL_HUMAN: Record<string, (v: number) => string> = {
  cmic: (v) => {
    const rsvd = (v & 0xf0) >> 4, ana = (v >> 3) & 1, sriov = (v >> 2) & 1, mctl = (v >> 1) & 1, mp = v & 1;
    return (rsvd ? f("7:4", rsvd, "Reserved") : "") + f("3:3", ana, `ANA ${not(ana, "not ")}supported`) +
      f("2:2", sriov, sriov ? "SR-IOV" : "PCI") + f("1:1", mctl, `${mctl ? "Multi" : "Single"} Controller`) +
      f("0:0", mp, `${mp ? "Multi" : "Single"} Port`) + "\n";
  },
  oaes: (v) => {
    const b = (n: number) => (v >>> n) & 1;
    const rsvd0 = (v & 0x70000000) >>> 28, rsvd1 = (v & 0x07ff0000) >>> 16, rsvd3 = v & 0xff;
    return f("31:31", b(31), `Discovery Log Change Notice ${not(b(31))}Supported`) +
      (rsvd0 ? f("30:28", rsvd0, "Reserved") : "") +
      f("27:27", b(27), `Zone Descriptor Changed Notices ${not(b(27))}Supported`) +
      (rsvd1 ? f("26:16", rsvd1, "Reserved") : "") +
      f("15:15", b(15), `Normal NSS Shutdown Event ${not(b(15))}Supported`) +
      f("14:14", b(14), `Endurance Group Event Aggregate Log Page Change Notice ${not(b(14))}Supported`) +
      f("13:13", b(13), `LBA Status Information Notices ${not(b(13))}Supported`) +
      f("12:12", b(12), `Predictable Latency Event Aggregate Log Change Notices ${not(b(12))}Supported`) +
      f("11:11", b(11), `Asymmetric Namespace Access Change Notices ${not(b(11))}Supported`) +
      (b(10) ? f("10:10", 1, "Reserved") : "") +
      f("9:9", b(9), `Firmware Activation Notices ${not(b(9))}Supported`) +
      f("8:8", b(8), `Namespace Attribute Changed Event ${not(b(8))}Supported`) +
      (rsvd3 ? f("7:0", rsvd3, "Reserved") : "") + "\n";
  },
  ctratt: (v) => {
    const b = (n: number) => (v >>> n) & 1;
    const rsvd20 = v >>> 20, rsvd16 = (v >>> 16) & 7;
    const names: [number, string][] = [
      [15, "Extended LBA Formats"], [14, "Delete NVM Set"], [13, "Delete Endurance Group"],
      [12, "Variable Capacity Management"], [11, "Fixed Capacity Management"], [10, "Multi Domain Subsystem"],
      [9, "UUID List"], [8, "SQ Associations"], [7, "Namespace Granularity"], [6, "Traffic Based Keep Alive"],
      [5, "Predictable Latency Mode"], [4, "Endurance Groups"], [3, "Read Recovery Levels"], [2, "NVM Sets"],
      [1, "Non-Operational Power State Permissive"], [0, "128-bit Host Identifier"],
    ];
    return (rsvd20 ? f("31:20", rsvd20, "Reserved", " ") : "") +
      f("19:19", b(19), `Flexible Data Placement ${not(b(19))}Supported`) +
      (rsvd16 ? f("18:16", rsvd16, "Reserved") : "") +
      names.map(([n, t]) => f(`${n}:${n}`, b(n), `${t} ${not(b(n))}Supported`)).join("") + "\n";
  },
  cntrltype: (v) => {
    const type = ["Controller type not reported", "I/O Controller", "Discovery Controller", "Administrative Controller"];
    // nvme-cli prints the whole byte in [1:0] and no blank line after.
    return f("7:2", (v & 0xfc) >> 2, "Reserved") + f("1:0", v, type[v & 3]);
  },
  nvmsr: (v) => {
    const rsvd = (v >> 2) & 0xfc, nvmee = (v >> 1) & 1, nvmesd = v & 1;
    return (rsvd ? f("7:2", rsvd, "Reserved", " ") : "") + f("1:1", nvmee, `NVM subsystem ${not(nvmee)}part of an Enclosure`) +
      f("0:0", nvmesd, `NVM subsystem ${not(nvmesd)}part of an Storage Device`) + "\n";
  },
  vwci: (v) => {
    const vwcrv = (v >> 7) & 1;
    return f("7:7", vwcrv, `VPD Write Cycles Remaining field is ${not(vwcrv)}valid.`) +
      f("6:0", v & 0xfe, "VPD Write Cycles Remaining ") + "\n";
  },
  mec: (v) => {
    const rsvd = (v >> 2) & 0xfc, pcie = (v >> 1) & 1, smbus = v & 1;
    return (rsvd ? f("7:2", rsvd, "Reserved", " ") : "") +
      f("1:1", pcie, `NVM subsystem ${not(pcie)}contains a Management Endpoint on a PCIe port`) +
      f("0:0", smbus, `NVM subsystem ${not(smbus)}contains a Management Endpoint on an SMBus/I2C port`) + "\n";
  },
  oacs: (v) => {
    const b = (n: number) => (v >> n) & 1;
    const names: [number, string][] = [
      [10, "Lockdown Command and Feature"], [9, "Get LBA Status Capability"], [8, "Doorbell Buffer Config"],
      [7, "Virtualization Management"], [6, "NVMe-MI Send and Receive"], [5, "Directives"], [4, "Device Self-test"],
      [3, "NS Management and Attachment"], [2, "FW Commit and Download"], [1, "Format NVM"], [0, "Security Send and Receive"],
    ];
    const rsvd = (v & 0xf800) >> 11;
    return (rsvd ? f("15:11", rsvd, "Reserved", " ") : "") +
      names.map(([n, t]) => f(`${n}:${n}`, b(n), `${t} ${not(b(n))}Supported`)).join("") + "\n";
  },
  frmw: (v) => {
    const rsvd = (v & 0xc0) >> 6, smud = (v >> 5) & 1, fawr = (v >> 4) & 1, nfws = (v & 0xe) >> 1, s1ro = v & 1;
    return (rsvd ? f("7:6", rsvd, "Reserved") : "") + f("5:5", smud, `Multiple FW or Boot Update Detection ${not(smud)}Supported`) +
      f("4:4", fawr, `Firmware Activate Without Reset ${not(fawr)}Supported`) + f("3:1", nfws, "Number of Firmware Slots") +
      f("0:0", s1ro, `Firmware Slot 1 Read${s1ro ? "-Only" : "/Write"}`) + "\n";
  },
  lpa: (v) => {
    const b = (n: number) => (v >> n) & 1;
    return (b(7) ? f("7:7", 1, "Reserved") : "") + f("6:6", b(6), `Telemetry Log Data Area 4 ${not(b(6))}Supported`) +
      f("5:5", b(5), `LID 0x0, Scope of each command in LID 0x5, 0x12, 0x13 ${not(b(5))}Supported`) +
      f("4:4", b(4), `Persistent Event log ${not(b(4))}Supported`) +
      f("3:3", b(3), `Telemetry host/controller initiated log page ${not(b(3))}Supported`) +
      f("2:2", b(2), `Extended data for Get Log Page ${not(b(2))}Supported`) +
      f("1:1", b(1), `Command Effects Log Page ${not(b(1))}Supported`) +
      f("0:0", b(0), `SMART/Health Log Page per NS ${not(b(0))}Supported`) + "\n";
  },
  elpe: (v) => `  [7:0] : ${v} (0's based)\tError Log Page Entries (ELPE)\n\n`,
  npss: (v) => `  [7:0] : ${v} (0's based)\tNumber of Power States Support (NPSS)\n\n`,
  avscc: (v) =>
    ((v & 0xfe) >> 1 ? f("7:1", (v & 0xfe) >> 1, "Reserved") : "") +
    f("0:0", v & 1, `Admin Vendor Specific Commands uses ${v & 1 ? "NVMe" : "Vendor Specific"} Format`) + "\n",
  apsta: (v) =>
    ((v & 0xfe) >> 1 ? f("7:1", (v & 0xfe) >> 1, "Reserved") : "") +
    f("0:0", v & 1, `Autonomous Power State Transitions ${not(v & 1)}Supported`) + "\n",
  wctemp: (v) => celsius(v, "Warning Composite Temperature Threshold (WCTEMP)"),
  cctemp: (v) => celsius(v, "Critical Composite Temperature Threshold (CCTEMP)"),
  rpmbs: (v) => {
    const rsvd = (v & 0xffc0) >> 6;
    return ` [31:24]: ${x(v >>> 24)}\tAccess Size\n [23:16]: ${x((v >>> 16) & 0xff)}\tTotal Size\n` +
      (rsvd ? f("15:6", rsvd, "Reserved", " ") : "") + f("5:3", (v & 0x38) >> 3, "Authentication Method") +
      f("2:0", v & 7, "Number of RPMB Units") + "\n";
  },
  hctma: (v) =>
    ((v & 0xfffe) >> 1 ? f("15:1", (v & 0xfffe) >> 1, "Reserved", " ") : "") +
    f("0:0", v & 1, `Host Controlled Thermal Management ${not(v & 1)}Supported`) + "\n",
  mntmt: (v) => celsius(v, "Minimum Thermal Management Temperature (MNTMT)"),
  mxtmt: (v) => celsius(v, "Maximum Thermal Management Temperature (MXTMT)"),
  sanicap: (v) => {
    const media = [
      "Additional media modification after sanitize operation completes successfully is not defined",
      "Media is not additionally modified after sanitize operation completes successfully",
      "Media is additionally modified after sanitize operation completes successfully",
      "Reserved",
    ];
    const nodmmas = v >>> 30, ndi = (v >>> 29) & 1, rsvd = (v & 0x1ffffff8) >>> 3;
    // nvme-cli: "Not " when NDI is set (sense reversed).
    return f("31:30", nodmmas, media[nodmmas]) +
      f("29:29", ndi, `No-Deallocate After Sanitize bit in Sanitize command ${ndi ? "Not " : ""}Supported`) +
      (rsvd ? f("28:3", rsvd, "Reserved") : "") +
      f("2:2", (v >> 2) & 1, `Overwrite Sanitize Operation ${not((v >> 2) & 1)}Supported`, "    ") +
      f("1:1", (v >> 1) & 1, `Block Erase Sanitize Operation ${not((v >> 1) & 1)}Supported`, "    ") +
      f("0:0", v & 1, `Crypto Erase Sanitize Operation ${not(v & 1)}Supported`, "    ") + "\n";
  },
  anacap: (v) => {
    const b = (n: number) => (v >> n) & 1;
    return f("7:7", b(7), `Non-zero group ID ${not(b(7))}Supported`) + f("6:6", b(6), `Group ID does ${b(6) ? "not " : ""}change`) +
      (b(5) ? f("5:5", 1, "Reserved", " ") : "") + f("4:4", b(4), `ANA Change state ${not(b(4))}Supported`) +
      f("3:3", b(3), `ANA Persistent Loss state ${not(b(3))}Supported`) +
      f("2:2", b(2), `ANA Inaccessible state ${not(b(2))}Supported`) +
      f("1:1", b(1), `ANA Non-optimized state ${not(b(1))}Supported`) +
      f("0:0", b(0), `ANA Optimized state ${not(b(0))}Supported`) + "\n";
  },
  sqes: (v) => f("7:4", v >> 4, `Max SQ Entry Size (${2 ** (v >> 4)})`) + f("3:0", v & 0xf, `Min SQ Entry Size (${2 ** (v & 0xf)})`) + "\n",
  cqes: (v) => f("7:4", v >> 4, `Max CQ Entry Size (${2 ** (v >> 4)})`) + f("3:0", v & 0xf, `Min CQ Entry Size (${2 ** (v & 0xf)})`) + "\n",
  oncs: (v) => {
    const b = (n: number) => (v >> n) & 1;
    const names: [number, string][] = [
      [8, "Copy"], [7, "Verify"], [6, "Timestamp"], [5, "Reservations"], [4, "Save and Select"], [3, "Write Zeroes"],
      [2, "Data Set Management"], [1, "Write Uncorrectable"], [0, "Compare"],
    ];
    const rsvd = (v & 0xfe00) >> 9;
    return (rsvd ? f("15:9", rsvd, "Reserved", " ") : "") +
      names.map(([n, t]) => f(`${n}:${n}`, b(n), `${t} ${not(b(n))}Supported`)).join("") + "\n";
  },
  fuses: (v) =>
    ((v & 0xfe) >> 1 ? f("15:1", (v & 0xfe) >> 1, "Reserved", " ") : "") +
    f("0:0", v & 1, `Fused Compare and Write ${not(v & 1)}Supported`) + "\n",
  fna: (v) => {
    const rsvd = (v & 0xf0) >> 4, bc = (v >> 3) & 1, cese = (v >> 2) & 1, cens = (v >> 1) & 1, fmns = v & 1;
    // nvme-cli: "Not " when the broadcast bit is set (sense reversed).
    return (rsvd ? f("7:4", rsvd, "Reserved") : "") + f("3:3", bc, `Format NVM Broadcast NSID (FFFFFFFFh) ${bc ? "Not " : ""}Supported`) +
      f("2:2", cese, `Crypto Erase ${not(cese)}Supported as part of Secure Erase`) +
      f("1:1", cens, `Crypto Erase Applies to ${cens ? "All" : "Single"} Namespace(s)`) +
      f("0:0", fmns, `Format Applies to ${fmns ? "All" : "Single"} Namespace(s)`) + "\n";
  },
  vwc: (v) => {
    const flush = [
      "Support for the NSID field set to FFFFFFFFh is not indicated",
      "Reserved",
      "The Flush command does not support NSID set to FFFFFFFFh",
      "The Flush command supports NSID set to FFFFFFFFh",
    ];
    const rsvd = (v & 0xf8) >> 3, fl = (v & 6) >> 1;
    return (rsvd ? f("7:3", rsvd, "Reserved") : "") + f("2:1", fl, flush[fl]) +
      f("0:0", v & 1, `Volatile Write Cache ${not(v & 1)}Present`) + "\n";
  },
  icsvscc: (v) =>
    ((v & 0xfe) >> 1 ? f("7:1", (v & 0xfe) >> 1, "Reserved") : "") +
    f("0:0", v & 1, `NVM Vendor Specific Commands uses ${v & 1 ? "NVMe" : "Vendor Specific"} Format`) + "\n",
  nwpc: (v) => {
    const rsvd = (v & 0xf8) >> 3, perm = (v >> 2) & 1, pc = (v >> 1) & 1, wp = v & 1;
    return (rsvd ? f("7:3", rsvd, "Reserved") : "") + f("2:2", perm, `Permanent Write Protect ${not(perm)}Supported`) +
      f("1:1", pc, `Write Protect Until Power Supply ${not(pc)}Supported`) +
      f("0:0", wp, `No Write Protect and Write Protect Namespace ${not(wp)}Supported`) + "\n";
  },
  ocfs: (v) => {
    const rsvd = (v & 0xfffc) >> 2, c1 = (v >> 1) & 1, c0 = v & 1;
    return (rsvd ? f("15:2", rsvd, "Reserved") : "") + f("1:1", c1, `Controller Copy Format 1h ${not(c1)}Supported`) +
      f("0:0", c0, `Controller Copy Format 0h ${not(c0)}Supported`) + "\n";
  },
  sgls: (v) => {
    const b = (n: number) => (v >>> n) & 1;
    const rsvd0 = v >>> 22, sdt = (v >>> 8) & 0xff, rsvd1 = (v & 0xf8) >> 3, sglsp = v & 3;
    // Each capability line shows when SGLs are supported or the bit is set anyway.
    const cap = (n: number, text: string) => (sglsp || b(n) ? ` [${n}:${n}]: ${x(b(n))}\t${text}\n` : "");
    let s = (rsvd0 ? ` [31:22]: ${x(rsvd0)}\tReserved\n` : "") +
      cap(21, `Transport SGL Data Block Descriptor ${not(b(21))}Supported`) +
      cap(20, `Address Offsets ${not(b(20))}Supported`) +
      cap(19, `Metadata Pointer Containing SGL Descriptor is ${not(b(19))}Supported`) +
      cap(18, `SGL Length Larger than Buffer ${not(b(18))}Supported`) +
      cap(17, `Byte-Aligned Contig. MD Buffer ${not(b(17))}Supported`) +
      cap(16, `SGL Bit-Bucket ${not(b(16))}Supported`) +
      ` [15:8] : ${x(sdt)}\tSGL Descriptor Threshold\n` +
      (rsvd1 ? ` [7:3] : ${x(rsvd1)}\tReserved\n` : "") +
      (sglsp || b(2) ? f("2:2", b(2), `Keyed SGL Data Block descriptor ${not(b(2))}Supported`) : "");
    if (sglsp === 3) s += f("1:0", 3, "Reserved");
    else if (sglsp === 2) s += f("1:0", 2, "Scatter-Gather Lists Supported. Dword alignment required.");
    else if (sglsp === 1) s += f("1:0", 1, "Scatter-Gather Lists Supported. No Dword alignment required.");
    else s += ` [1:0]  : ${x(0)}\tScatter-Gather Lists Not Supported\n`;
    return s + "\n";
  },
  fcatt: (v) =>
    ((v & 0xfe) >> 1 ? f("7:1", (v & 0xfe) >> 1, "Reserved") : "") +
    f("0:0", v & 1, `${v & 1 ? "Static" : "Dynamic"} Controller Model`) + "\n",
  ofcs: (v) =>
    ((v & 0xfffe) >> 1 ? f("15:1", (v & 0xfffe) >> 1, "Reserved") : "") +
    f("0:0", v & 1, `Disconnect command ${v & 1 ? "" : "Not"} Supported`) + "\n",
};

/** Decoders for the 128-bit capacity fields (value as decimal digits). */
export const ID_CTRL_HUMAN_128: Record<string, (digits: string) => string> = {
  tnvmcap: (d) => `[127:0] : ${d}\n\tTotal NVM Capacity (TNVMCAP)\n\n`,
  unvmcap: (d) => `[127:0] : ${d}\n\tUnallocated NVM Capacity (UNVMCAP)\n\n`,
};

/** Decoders for Identify Namespace fields, by nvme-cli's field name. */
export const ID_NS_HUMAN: Record<string, (v: number) => string> = {
  nsfeat: (v) => {
    const rsvd = (v & 0xe0) >> 5, b = (n: number) => (v >> n) & 1;
    return (rsvd ? f("7:5", rsvd, "Reserved") : "") + f("4:4", b(4), `NPWG, NPWA, NPDG, NPDA, and NOWS are ${not(b(4))}Supported`) +
      f("3:3", b(3), `NGUID and EUI64 fields if non-zero, ${b(3) ? "Never " : ""}Reused`) +
      f("2:2", b(2), `Deallocated or Unwritten Logical Block error ${not(b(2))}Supported`) +
      f("1:1", b(1), `Namespace uses ${b(1) ? "NAWUN, NAWUPF, and NACWU" : "AWUN, AWUPF, and ACWU"}`) +
      f("0:0", b(0), `Thin Provisioning ${not(b(0))}Supported`) + "\n";
  },
  flbas: (v) =>
    (v & 0x80 ? f("7:7", 1, "Reserved") : "") + f("6:5", (v & 0x60) >> 5, "Most significant 2 bits of Current LBA Format Selected") +
    f("4:4", (v >> 4) & 1, `Metadata Transferred ${(v >> 4) & 1 ? "at End of Data LBA" : "in Separate Contiguous Buffer"}`) +
    f("3:0", v & 0xf, "Least significant 4 bits of Current LBA Format Selected") + "\n",
  mc: (v) =>
    ((v & 0xfc) >> 2 ? f("7:2", (v & 0xfc) >> 2, "Reserved") : "") + f("1:1", (v >> 1) & 1, `Metadata Pointer ${not((v >> 1) & 1)}Supported`) +
    f("0:0", v & 1, `Metadata as Part of Extended Data LBA ${not(v & 1)}Supported`) + "\n",
  dpc: (v) => {
    const b = (n: number) => (v >> n) & 1, rsvd = (v & 0xe0) >> 5;
    return (rsvd ? f("7:5", rsvd, "Reserved") : "") +
      f("4:4", b(4), `Protection Information Transferred as Last 8 Bytes of Metadata ${not(b(4))}Supported`) +
      f("3:3", b(3), `Protection Information Transferred as First 8 Bytes of Metadata ${not(b(3))}Supported`) +
      f("2:2", b(2), `Protection Information Type 3 ${not(b(2))}Supported`) +
      f("1:1", b(1), `Protection Information Type 2 ${not(b(1))}Supported`) +
      f("0:0", b(0), `Protection Information Type 1 ${not(b(0))}Supported`) + "\n";
  },
  dps: (v) => {
    const rsvd = (v & 0xf0) >> 4, pif8 = (v >> 3) & 1, pit = v & 7;
    const t = pit === 3 ? "Type 3 Enabled" : pit === 2 ? "Type 2 Enabled" : pit === 1 ? "Type 1 Enabled" : pit === 0 ? "Disabled" : "Reserved Enabled";
    return (rsvd ? f("7:4", rsvd, "Reserved") : "") +
      f("3:3", pif8, `Protection Information is Transferred as ${pif8 ? "First" : "Last"} 8 Bytes of Metadata`) +
      f("2:0", pit, `Protection Information ${t}`) + "\n";
  },
  nmic: (v) =>
    ((v & 0xfe) >> 1 ? f("7:1", (v & 0xfe) >> 1, "Reserved") : "") + f("0:0", v & 1, `Namespace Multipath ${not(v & 1)}Capable`) + "\n",
  rescap: (v) => {
    const b = (n: number) => (v >> n) & 1;
    return f("7:7", b(7), `Ignore Existing Key - Used as defined in revision ${b(7) ? "1.3 or later" : "1.2.1 or earlier"}`) +
      f("6:6", b(6), `Exclusive Access - All Registrants ${not(b(6))}Supported`) +
      f("5:5", b(5), `Write Exclusive - All Registrants ${not(b(5))}Supported`) +
      f("4:4", b(4), `Exclusive Access - Registrants Only ${not(b(4))}Supported`) +
      f("3:3", b(3), `Write Exclusive - Registrants Only ${not(b(3))}Supported`) +
      f("2:2", b(2), `Exclusive Access ${not(b(2))}Supported`) + f("1:1", b(1), `Write Exclusive ${not(b(1))}Supported`) +
      f("0:0", b(0), `Persist Through Power Loss ${not(b(0))}Supported`) + "\n";
  },
  fpi: (v) => {
    const fpis = (v >> 7) & 1, fpii = v & 0x7f;
    return f("7:7", fpis, `Format Progress Indicator ${not(fpis)}Supported`) +
      (fpis || fpii ? f("6:0", fpii, `Format Progress Indicator (Remaining ${fpii}%)`) : "") + "\n";
  },
  dlfeat: (v) => {
    const rsvd = (v & 0xe0) >> 5, guard = (v >> 4) & 1, dwz = (v >> 3) & 1, val = v & 7;
    const r = val === 2 ? "0xFF" : val === 1 ? "0x00" : val === 0 ? "Not Reported" : "Reserved Value";
    return (rsvd ? f("7:5", rsvd, "Reserved") : "") +
      f("4:4", guard, `Guard Field of Deallocated Logical Blocks is set to ${guard ? "CRC of The Value Read" : "0xFFFF"}`) +
      f("3:3", dwz, `Deallocate Bit in the Write Zeroes Command is ${not(dwz)}Supported`) +
      f("2:0", val, `Bytes Read From a Deallocated Logical Block and its Metadata are ${r}`) + "\n";
  },
};

/**
 * nvme-cli's `-H` line for LBA format `i` (`in use` marks the current one).
 * The data size is C's `1 << ds` as an int, which JS's `<<` reproduces
 * (shift count mod 32, signed result) for the LBADS values past 30 that
 * garbage structures hold.
 */
export function lbafHuman(i: number, ms: number, ds: number, rp: number, inUse: boolean): string {
  const perf = rp === 3 ? "Degraded" : rp === 2 ? "Good" : rp === 1 ? "Better" : "Best";
  return `LBA Format ${String(i).padStart(2)} : Metadata Size: ${String(ms).padEnd(3)} bytes - ` +
    `Data Size: ${String(1 << ds).padEnd(2)} bytes - Relative Performance: ${x(rp)} ${perf} ${inUse ? "(in use)" : ""}`;
}
