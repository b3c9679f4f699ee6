/**
 * Go's text/tabwriter, for the column layouts umoci prints through it (stat's history table,
 * urfave/cli's help), with space padding and no flags. Each row is its cells; every cell but the
 * last was tab-terminated, so the last one belongs to no column and is written as it is (no
 * padding, no trimming: a row whose last cell is empty keeps the padding before it).
 *
 * As in Go, a column is formatted per block of consecutive rows that have a cell in it; its width
 * is the widest cell plus `padding`, at least `minWidth`; widths are counted in runes (code
 * points), not bytes and not terminal columns.
 */
export function formatTable(rows: string[][], opts: { minWidth: number; padding: number }): string {
  const widthOf = (s: string): number => {
    let n = 0;
    for (const _ of s) n++;
    return n;
  };
  const cellWidths = rows.map((r) => r.map(widthOf));
  const widths: number[] = [];
  const out: string[] = [];
  const writeRows = (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const r = rows[i]!;
      let line = "";
      for (let j = 0; j < r.length; j++) {
        line += r[j];
        if (j < widths.length) line += " ".repeat(Math.max(0, widths[j]! - cellWidths[i]![j]!));
      }
      out.push(line);
    }
  };
  const format = (line0: number, line1: number) => {
    const column = widths.length;
    for (let cur = line0; cur < line1; cur++) {
      if (column >= rows[cur]!.length - 1) continue;
      // A block of rows with a cell in this column starts here.
      writeRows(line0, cur);
      line0 = cur;
      let width = opts.minWidth;
      for (; cur < line1; cur++) {
        if (column >= rows[cur]!.length - 1) break;
        width = Math.max(width, cellWidths[cur]![column]! + opts.padding);
      }
      widths.push(width);
      format(line0, cur);
      widths.pop();
      line0 = cur;
    }
    writeRows(line0, line1);
  };
  format(0, rows.length);
  return out.map((l) => l + "\n").join("");
}
