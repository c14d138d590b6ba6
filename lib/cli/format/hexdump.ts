/**
 * nvme-cli's hex dump (`d()` in nvme-print.c), which admin-passthru,
 * io-passthru, get-log and the `vs[]` of id-ctrl/id-ns print.
 * @module
 */

/**
 * The dump nvme-cli 2.3 prints for `buf` (`d(buf, len, 16, 1)`): a column
 * header, then 16 bytes a line as ` %02x` with the offset and the printable
 * characters in quotes. A short last line is padded as nvme-cli pads it, and
 * shows nvme-cli's stale character: its ASCII scratch buffer is cut one past
 * the last byte, so the character left there by the previous line appears too.
 */
export function hexDump(buf: Uint8Array): string {
  let o = "     ";
  for (let i = 0; i <= 15; i++) o += i.toString(16).padStart(3, " ");
  const ascii: string[] = new Array(17).fill("");
  let i = 0;
  let lineDone = false;
  for (; i < buf.length; i++) {
    lineDone = false;
    if (i % 16 === 0) o += "\n" + i.toString(16).padStart(4, "0") + ":";
    o += " " + buf[i].toString(16).padStart(2, "0");
    ascii[i % 16] = buf[i] >= 0x21 && buf[i] <= 0x7e ? String.fromCharCode(buf[i]) : ".";
    if ((i + 1) % 16 === 0) {
      o += ` "${ascii.slice(0, 16).join("")}"`;
      lineDone = true;
    }
  }
  if (!lineDone) {
    const b = 16 - (i % 16);
    o += " " + " ".repeat(3 * b) + ` "${ascii.slice(0, (i % 16) + 1).join("")}"`;
  }
  return o + "\n";
}
