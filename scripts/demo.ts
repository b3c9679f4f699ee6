/**
 * The demo: a full tour of boci on an embedded default, printing each step.
 * init a layout → new image → config → unpack → add a file and delete one → repack →
 * tag → ls → stat (new layer and history) → gc. Runs the built dist/boci in a temp directory.
 */
import { mkdtempSync, writeFileSync, rmSync, mkdirSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const bin = join(import.meta.dir, "../dist/boci");
const work = mkdtempSync(join(tmpdir(), "boci-demo-"));
const layout = join(work, "layout");
const bundle = join(work, "bundle");

function step(title: string, args: string[]): string {
  console.log(`\n$ boci ${args.join(" ")}    # ${title}`);
  const p = Bun.spawnSync([bin, ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, SOURCE_DATE_EPOCH: "1700000000" } });
  const out = p.stdout.toString() + p.stderr.toString();
  if (out.trim()) console.log(out.trimEnd());
  if (p.exitCode !== 0) {
    console.error(`step failed with exit code ${p.exitCode}`);
    process.exit(1);
  }
  return p.stdout.toString();
}

try {
  step("the version", ["--version"]);
  step("create an OCI layout", ["init", "--layout", layout]);
  step("create an empty image", ["new", "--image", `${layout}:demo`]);
  step("set its configuration", ["config", "--image", `${layout}:demo`, "--config.cmd", "/bin/sh", "--config.env", "GREETING=hello",
    "--config.workingdir", "/srv", "--author", "boci demo", "--history.comment", "demo config"]);
  step("unpack it into a runtime bundle", ["unpack", "--image", `${layout}:demo`, bundle]);
  console.log(`  bundle: ${readdirSync(bundle).join(" ")}`);
  console.log("\n# edit the root filesystem: add /srv/hello.txt and /etc/motd, then delete /etc/motd");
  mkdirSync(join(bundle, "rootfs/srv"), { recursive: true });
  mkdirSync(join(bundle, "rootfs/etc"), { recursive: true });
  writeFileSync(join(bundle, "rootfs/srv/hello.txt"), "hello from boci\n");
  writeFileSync(join(bundle, "rootfs/etc/motd"), "temporary\n");
  step("repack the changes as a new layer", ["repack", "--image", `${layout}:demo`, "--history.comment", "add hello.txt", "--refresh-bundle", bundle]);
  rmSync(join(bundle, "rootfs/etc/motd"));
  step("repack a deletion (a whiteout layer)", ["repack", "--image", `${layout}:demo`, "--history.comment", "remove motd", bundle]);
  step("tag the result", ["tag", "--image", `${layout}:demo`, "v1.0"]);
  step("list the tags", ["ls", "--layout", layout]);
  step("show the image: layers and history", ["stat", "--image", `${layout}:v1.0`]);
  step("drop the old tag and collect garbage", ["rm", "--image", `${layout}:demo`]);
  step("garbage-collect", ["--log", "info", "gc", "--layout", layout]);
  step("check the whole layout", ["ls", "--layout", layout]);
  console.log("\ndemo finished");
} finally {
  rmSync(work, { recursive: true, force: true });
}
