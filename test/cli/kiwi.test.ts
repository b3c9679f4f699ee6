/**
 * The calls KIWI 9.24 makes to umoci for a container build (umoci-behaviour.md §9), run in order
 * against boci through a symlink named `umoci`, then skopeo copies the result (when installed).
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { mkdirSync, writeFileSync, symlinkSync } from "node:fs";
import { BIN, scratch, sh, have } from "../helpers/cli";

test("KIWI's umoci call sequence works against boci", () => {
  const s = scratch("boci-kiwi-");
  const umoci = join(s, "umoci");
  symlinkSync(BIN, umoci);
  const run = (args: string) => {
    const r = sh(`${umoci} ${args}`);
    if (r.code !== 0) throw new Error(`umoci ${args} exited ${r.code}: ${r.stderr}`);
    return r;
  };
  // 1. version: the first dotted number on stdout must be >= 0.1.0
  const v = run("--version").stdout;
  const m = /(\d+)\.(\d+)\.(\d+)/.exec(v);
  expect(m).not.toBeNull();
  expect(Number(m![1]) * 1e6 + Number(m![2]) * 1e3 + Number(m![3])).toBeGreaterThanOrEqual(1000);
  // 2. config --help mentions --no-history (stdout or stderr)
  const h = run("config --help");
  expect(h.stdout + h.stderr).toContain("--no-history");
  // 3. init and new
  const L = join(s, "oci-layout");
  run(`init --layout ${L}`);
  run(`new --image ${L}:base_layer`);
  // 4. unpack into an existing empty directory, then fill rootfs as rsync --delete would
  const B = join(s, "bundle");
  mkdirSync(B);
  run(`unpack --image ${L}:base_layer ${B}`);
  mkdirSync(join(B, "rootfs/etc"), { recursive: true });
  mkdirSync(join(B, "rootfs/usr/bin"), { recursive: true });
  writeFileSync(join(B, "rootfs/etc/os-release"), "NAME=kiwi-test\n");
  writeFileSync(join(B, "rootfs/usr/bin/app"), "#!/bin/sh\necho app\n", { mode: 0o755 });
  // 5. repack with mixed --flag=value and --flag value forms
  run(`repack --history.comment="built by kiwi" --history.created_by="KIWI 9.24" --history.author=kiwi@example.org --history.created 2024-05-01T10:00:00+00:00 --image ${L}:base_layer ${B}`);
  // 6. config, both ways of setting entrypoint/cmd
  run(`config --author=kiwi --config.user=root --config.workingdir=/ --config.entrypoint=/usr/bin/app --config.entrypoint=--flag --clear=config.cmd --config.volume=/data --config.exposedports=80 --config.env=PATH=/usr/bin:/bin --config.label=org.example=1 --no-history --image ${L}:base_layer --tag 1.0 --created 2024-05-01T10:00:00+00:00`);
  run(`config --clear=config.entrypoint --config.cmd=/bin/sh --config.cmd=-c --image ${L}:base_layer --tag 2.0 --created 2024-05-01T10:00:00+00:00`);
  // 7. gc
  run(`gc --layout ${L}`);
  const st = JSON.parse(run(`stat --json --image ${L}:1.0`).stdout);
  const c = st.config.blob;
  expect(c.author).toBe("kiwi");
  expect(c.created).toBe("2024-05-01T10:00:00Z"); // Go writes a zero offset as Z, as umoci does
  expect(c.config.Entrypoint).toEqual(["/usr/bin/app", "--flag"]);
  expect(c.config.Cmd).toBeUndefined();
  expect(c.config.ExposedPorts).toEqual({ "80": {} });
  expect(st.history).toEqual([{ layer: st.manifest.blob.layers[0], diff_id: c.rootfs.diff_ids[0], created: "2024-05-01T10:00:00Z", created_by: "KIWI 9.24", author: "kiwi@example.org", comment: "built by kiwi" }]);
  const st2 = JSON.parse(run(`stat --json --image ${L}:2.0`).stdout);
  expect(st2.config.blob.config.Cmd).toEqual(["/bin/sh", "-c"]);
  expect(st2.config.blob.config.Entrypoint).toBeUndefined();
  if (have("skopeo")) {
    const out = join(s, "image.tar");
    const r = sh(`skopeo copy oci:${L}:1.0 oci-archive:${out}`);
    expect(r.code).toBe(0);
    const r2 = sh(`skopeo copy oci:${L}:1.0 docker-archive:${join(s, "docker.tar")}:kiwi/test:1.0`);
    expect(r2.code).toBe(0);
  } else console.log("kiwi: skopeo not installed; skipping the copy step");
});

test.skipIf(!have("umoci"))("a KIWI-style derived build: the same config commands give umoci 0.4.7's config blob byte for byte", () => {
  // One base image (made by boci, copied), then the same `config` sequence by each tool with
  // fixed times and created_by: a replaced variable stays where it stood, new ones are appended.
  const s = scratch("boci-kiwi-derived-");
  const L = join(s, "boci"), U = join(s, "umoci");
  const b = (args: string) => { const r = sh(`${BIN} ${args}`); if (r.code !== 0) throw new Error(`boci ${args}: ${r.stderr}`); return r; };
  const u = (args: string) => { const r = sh(`umoci ${args}`); if (r.code !== 0) throw new Error(`umoci ${args}: ${r.stderr}`); return r; };
  b(`init --layout ${L}`);
  b(`new --image ${L}:base`);
  b(`config --image ${L}:base --created 2024-01-01T00:00:00Z --history.created 2024-01-01T00:00:00Z --history.created_by base --config.env PATH=/usr/sbin:/usr/bin --config.env LANG=C --config.env TERM=xterm --config.label a=1`);
  sh(`cp -a ${L} ${U}`);
  const steps = [
    `--config.env LANG=en_US.UTF-8 --config.env NEW=1 --config.env PATH=/opt/bin:/usr/bin --history.comment derived`,
    `--config.user app --config.workingdir /srv --config.entrypoint /bin/app --config.cmd --serve --config.volume /data --config.exposedports 8080/tcp --config.label b=2 --author 'KIWI <kiwi@example.org>'`,
    `--clear config.cmd --config.cmd run --config.env TERM=vt100 --config.stopsignal SIGTERM`,
  ];
  for (const [i, st] of steps.entries()) {
    const t = `--created 2024-02-0${i + 1}T00:00:00Z --history.created 2024-02-0${i + 1}T00:00:00Z --history.created_by step${i}`;
    b(`config --image ${L}:base ${st} ${t}`);
    u(`config --image ${U}:base ${st} ${t}`);
  }
  const configOf = (layout: string) => {
    const ix = JSON.parse(require("node:fs").readFileSync(join(layout, "index.json"), "utf8"));
    const m = ix.manifests.find((d: any) => d.annotations?.["org.opencontainers.image.ref.name"] === "base");
    const blob = (d: string) => require("node:fs").readFileSync(join(layout, "blobs", ...d.split(":")));
    return blob(JSON.parse(blob(m.digest).toString()).config.digest).toString();
  };
  const ours = configOf(L), theirs = configOf(U);
  expect(JSON.parse(ours).config.Env).toEqual(["PATH=/opt/bin:/usr/bin", "LANG=en_US.UTF-8", "TERM=vt100", "NEW=1"]);
  // umoci 0.4.7's Encoder ends the blob with a newline as 0.6's does
  expect(ours).toBe(theirs);
});
