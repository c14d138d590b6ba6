/**
 * nvme-cli's hex dump (`d()` in nvme-print.c), which admin-passthru,
 * io-passthru and get-log print by default.
 * @module
 */

/**
 * The dump nvme-cli 2.3 prints for `buf`: a column header, then 16 bytes a
 * line as ` %02x` with the offset and the printable characters in quotes. A
 * short last line is padded as nvme-cli pads it. (nvme-cli also prints one
 * stale byte from its scratch buffer there; that is left out.)
 */
export function hexDump(buf: Uint8Array, width = 16): string {
  let s = "     ";
  for (let i = 0; i <= 15; i++) s += i.toString(16).padStart(3);
  let ascii = "";
  let i = 0;
  for (; i < buf.length; i++) {
    if (i % width === 0) s += "\n" + i.toString(16).padStart(4, "0") + ":";
    s += " " + buf[i].toString(16).padStart(2, "0");
    ascii += buf[i] >= 0x21 && buf[i] <= 0x7e ? String.fromCharCode(buf[i]) : ".";
    if ((i + 1) % width === 0) {
      s += ` "${ascii}"`;
      ascii = "";
    }
  }
  if (i % width !== 0 || i === 0) {
    const b = width - (i % width);
    s += " " + " ".repeat(3 * b) + ` "${ascii}"`;
  }
  return s + "\n";
}
