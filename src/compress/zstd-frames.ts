/**
 * Tracks zstd frame boundaries (RFC 8878 §3.1) in the compressed input without decoding it.
 * Bun's node:zlib zstd decoder ends silently on a truncated frame; this makes truncation an
 * InvalidError. Only frame and block headers are parsed; block contents are skipped.
 */
import { InvalidError } from "../errors";

const ZSTD_MAGIC = 0xfd2fb528;

type Step = "magic" | "fhd" | "fh" | "block" | "skipsize";
type After = "magic" | "block" | "checksum";

export class ZstdFrameTracker {
  private step: Step = "magic";
  private need = 4;
  private hdr: number[] = [];
  private skip = 0;
  private after: After = "magic";
  private checksum = false;
  private frames = 0;

  observe(b: Uint8Array): void {
    let i = 0;
    while (i < b.length) {
      if (this.skip > 0) {
        const k = Math.min(this.skip, b.length - i);
        this.skip -= k;
        i += k;
        if (this.skip === 0) this.skipped();
        continue;
      }
      this.hdr.push(b[i++]!);
      if (this.hdr.length === this.need) this.header();
    }
  }

  /** True when the input so far ends exactly after a complete frame. */
  complete(): boolean {
    return this.frames > 0 && this.step === "magic" && this.hdr.length === 0 && this.skip === 0;
  }

  private set(step: Step, need: number): void {
    this.step = step;
    this.need = need;
    this.hdr = [];
  }

  private header(): void {
    const h = this.hdr;
    switch (this.step) {
      case "magic": {
        const v = (h[0]! | (h[1]! << 8) | (h[2]! << 16) | (h[3]! << 24)) >>> 0;
        if (v === ZSTD_MAGIC) this.set("fhd", 1);
        else if ((v & 0xfffffff0) >>> 0 === 0x184d2a50) this.set("skipsize", 4);
        else throw new InvalidError("corrupt zstd stream: bad frame magic");
        return;
      }
      case "fhd": {
        const d = h[0]!;
        if (d & 0x08) throw new InvalidError("corrupt zstd stream: reserved frame header bit set");
        const single = (d >> 5) & 1;
        this.checksum = ((d >> 2) & 1) === 1;
        const rest = (single ? 0 : 1) + [0, 1, 2, 4][d & 3]! + [single, 2, 4, 8][d >> 6]!;
        if (rest === 0) this.set("block", 3);
        else this.set("fh", rest);
        return;
      }
      case "fh":
        this.set("block", 3);
        return;
      case "block": {
        const v = h[0]! | (h[1]! << 8) | (h[2]! << 16);
        const type = (v >> 1) & 3;
        if (type === 3) throw new InvalidError("corrupt zstd stream: reserved block type");
        const size = v >>> 3;
        this.after = v & 1 ? (this.checksum ? "checksum" : "magic") : "block";
        this.hdr = [];
        this.skip = type === 1 ? 1 : size;
        if (this.skip === 0) this.skipped();
        return;
      }
      case "skipsize": {
        const v = (h[0]! | (h[1]! << 8) | (h[2]! << 16) | (h[3]! << 24)) >>> 0;
        this.after = "magic";
        this.hdr = [];
        this.skip = v;
        this.frames--; // a skippable frame is counted below but carries no data of its own
        if (this.skip === 0) this.skipped();
        return;
      }
    }
  }

  private skipped(): void {
    switch (this.after) {
      case "block":
        this.set("block", 3);
        return;
      case "checksum":
        this.after = "magic";
        this.hdr = [];
        this.skip = 4;
        return;
      case "magic":
        this.frames++;
        this.set("magic", 4);
        return;
    }
  }
}
