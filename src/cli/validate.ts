/**
 * `validate`: check a whole layout (--layout) or one image (--image PATH[:TAG]) and print every
 * problem found (umoci lacks this; its issue #361). Exit 0 when clean, 4 when any problem was
 * found (with a one-line "N problems found" on stderr), 3 when the layout or tag does not exist.
 */
import { InvalidError, UsageError } from "../errors";
import type { ValidationProblem, ValidationReport } from "../validate/validate-layout";
import type * as ValidateModule from "../validate/validate-layout";

// Heavy modules (node:stream, node:zlib, tar, mtree) are required when a command runs, not at
// start-up: a require() inside a function is a chunk of the binary loaded at that call (scripts/build.ts).
const validateModule = () => require("../validate/validate-layout") as typeof ValidateModule;
import { log } from "../util/log";
import type { CommandDef } from "./spec";
import { imageOpt, layoutOpt, parseImageRef, parseLayoutFlag } from "./common";
import { writeOut } from "../util/stdio";
import { escapeText } from "../util/escape";

const line = (p: ValidationProblem): string => `${p.path}: ${p.message}`;
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;

/** The human report: problems, then warnings (prefixed), then the verdict line when clean. */
export function formatValidation(subject: string, r: ValidationReport): string {
  // (findings quote image data: no raw control character reaches the terminal)
  const out: string[] = r.problems.map((p) => escapeText(line(p)));
  out.push(...r.warnings.map((w) => `warning: ${escapeText(line(w))}`));
  if (r.valid) {
    const c = r.checked;
    out.push(`${subject} is valid: ${plural(c.manifests, "manifest")}, ${plural(c.layers, "layer")}, ${plural(c.blobs, "blob")} checked`);
  }
  return out.length ? out.join("\n") + "\n" : "";
}

export const validateCommand: CommandDef = {
  name: "validate",
  longRunning: true,
  args: [],
  description: "check a layout (or one image) for missing or corrupt blobs, bad JSON, media types and layers",
  options: [
    layoutOpt,
    imageOpt,
    { flag: "json", desc: "print the report as JSON: {valid, complete, problems, warnings, checked} (complete: the walk gc marks with read every reachable blob)" },
  ],
  async run(_args, opts) {
    const hasLayout = opts.has("layout");
    const hasImage = opts.has("image");
    if (hasLayout && hasImage) throw new UsageError("--layout and --image may not be specified together");
    if (!hasLayout && !hasImage) throw new UsageError("missing mandatory argument: --layout or --image");
    let dir: string;
    let tag: string | undefined;
    let subject: string;
    if (hasImage) {
      const ref = parseImageRef(opts.get("image"));
      dir = ref.layout;
      tag = ref.tag;
      subject = `image ${ref.layout}:${ref.tag}`;
    } else {
      dir = parseLayoutFlag(opts.get("layout"));
      subject = `layout ${dir}`;
    }
    const report = await validateModule().validateLayout(dir, {
      tag,
      onLayer: (digest, where) => log.debug(`validate: streaming ${digest} (${where})`),
    });
    if (opts.bool("json")) {
      writeOut(JSON.stringify({
        valid: report.valid,
        complete: report.complete,
        problems: report.problems,
        warnings: report.warnings,
        checked: report.checked,
      }) + "\n");
    } else {
      writeOut(formatValidation(subject, report));
    }
    if (!report.valid) {
      const n = report.problems.length;
      throw new InvalidError(`${n} problem${n === 1 ? "" : "s"} found`, { code: "EVALIDATE" });
    }
  },
};
