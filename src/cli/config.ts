/** `config`: modify an image's configuration (every umoci flag), with a history entry. */
import { UsageError } from "../errors";
import { resolveTag } from "../cas";
import { Mutator } from "../mutate";
import type { ImageConfigBody } from "../image";
import { log } from "../util/log";
import { yieldToSignals } from "../util/cleanup";
import { nowTimestamp, parseUserTime } from "../util/time";
import type { CommandDef, OptSpec } from "./spec";
import { imageOpt, tagOpt, historyOpts, parseImageRef, openLayout, historyFromOpts, checkTag, jsonOpt, printWriteResult, writePlatformOpt, platformFromOpts } from "./common";

const configOpts: OptSpec[] = [
  { flag: "config.user", value: "<user>", desc: "set the user (name or uid, with optional :group)" },
  { flag: "config.exposedports", value: "<port>", repeat: true, desc: "add an exposed port (repeatable)" },
  { flag: "config.env", value: "<NAME=value>", repeat: true, desc: "set an environment variable, replacing one of the same name (repeatable)" },
  { flag: "config.entrypoint", value: "<arg>", repeat: true, desc: "set the entrypoint, one argument per flag (repeatable)" },
  { flag: "config.cmd", value: "<arg>", repeat: true, desc: "set the default command, one argument per flag (repeatable)" },
  { flag: "config.volume", value: "<path>", repeat: true, desc: "add a volume (repeatable)" },
  { flag: "config.label", value: "<key=value>", repeat: true, desc: "set a label (repeatable)" },
  { flag: "config.workingdir", value: "<dir>", desc: "set the working directory" },
  { flag: "config.stopsignal", value: "<signal>", desc: "set the stop signal" },
  { flag: "created", value: "<date>", desc: "set the creation time (RFC 3339)" },
  { flag: "author", value: "<author>", desc: "set the author" },
  { flag: "platform.os", value: "<os>", aliases: ["os"], desc: "set the operating system" },
  { flag: "platform.arch", value: "<arch>", aliases: ["architecture"], desc: "set the architecture" },
  { flag: "platform.variant", value: "<variant>", desc: "set the architecture variant" },
  { flag: "manifest.annotation", value: "<key=value>", repeat: true, desc: "set a manifest annotation (repeatable)" },
  { flag: "clear", value: "<key>", repeat: true, desc: "clear a field before applying the other flags: config.labels, manifest.annotations, config.exposedports, config.env, config.volume, config.cmd, config.entrypoint (repeatable)", choices: ["config.labels", "manifest.annotations", "config.exposedports", "config.env", "config.volume", "config.cmd", "config.entrypoint"] },
];

const clearable = ["config.labels", "manifest.annotations", "config.exposedports", "config.env", "config.volume", "config.cmd", "config.entrypoint"];

function splitKV(flag: string, s: string): [string, string] {
  const i = s.indexOf("=");
  if (i <= 0) throw new UsageError(`invalid --${flag} ${JSON.stringify(s)}: expected key=value`);
  return [s.slice(0, i), s.slice(i + 1)];
}

export const configCommand: CommandDef = {
  name: "config",
  args: [],
  description: "modify the configuration of an OCI image",
  options: [imageOpt, tagOpt, writePlatformOpt, ...configOpts, ...historyOpts, jsonOpt],
  async run(_args, opts) {
    const ref = parseImageRef(opts.get("image"));
    const tag = opts.get("tag") !== undefined ? checkTag(opts.get("tag")!, "--tag") : ref.tag;
    const clears = opts.all("clear");
    for (const c of clears) {
      if (c === "rootfs.diffids") throw new UsageError("--clear=rootfs.diffids is not safe");
      if (!clearable.includes(c)) throw new UsageError(`--clear: unknown key ${JSON.stringify(c)} (one of ${clearable.join(", ")})`);
    }
    const created = opts.get("created");
    const createdTime = created !== undefined ? parseUserTime("created", created) : undefined;
    const historyReq = historyFromOpts(opts, {});
    const platform = platformFromOpts(opts);

    const layout = openLayout(ref.layout);
    layout.lockGc("sh");
    try {
      const m = new Mutator(layout, resolveTag(layout, layout.readIndex(), ref.tag, { platform, forWrite: true }));
      const cfg = m.config;
      const body: ImageConfigBody = { ...(cfg.config ?? {}) };
      const annotations: Record<string, string> = { ...(m.manifest.annotations ?? {}) };
      for (const c of clears) {
        switch (c) {
          case "config.labels": delete body.Labels; break;
          case "manifest.annotations": for (const k of Object.keys(annotations)) delete annotations[k]; break;
          case "config.exposedports": delete body.ExposedPorts; break;
          case "config.env": delete body.Env; break;
          case "config.volume": delete body.Volumes; break;
          case "config.cmd": delete body.Cmd; break;
          case "config.entrypoint": delete body.Entrypoint; break;
        }
      }
      if (opts.has("config.user")) body.User = opts.get("config.user")!;
      for (const p of opts.all("config.exposedports")) body.ExposedPorts = { ...(body.ExposedPorts ?? {}), [p]: {} };
      // umoci's rule: the first variable of that name is replaced where it stands, a new name is
      // appended (so the order of an image's Env survives a KIWI-style derived build).
      for (const e of opts.all("config.env")) {
        const [name, value] = splitKV("config.env", e);
        const env = [...(body.Env ?? [])];
        const at = env.findIndex((x) => x.startsWith(`${name}=`));
        if (at >= 0) env[at] = `${name}=${value}`;
        else env.push(`${name}=${value}`);
        body.Env = env;
      }
      if (opts.has("config.entrypoint")) body.Entrypoint = opts.all("config.entrypoint");
      if (opts.has("config.cmd")) body.Cmd = opts.all("config.cmd");
      for (const v of opts.all("config.volume")) body.Volumes = { ...(body.Volumes ?? {}), [v]: {} };
      for (const l of opts.all("config.label")) {
        const [k, v] = splitKV("config.label", l);
        body.Labels = { ...(body.Labels ?? {}), [k]: v };
      }
      if (opts.has("config.workingdir")) body.WorkingDir = opts.get("config.workingdir")!;
      if (opts.has("config.stopsignal")) body.StopSignal = opts.get("config.stopsignal")!;
      for (const a of opts.all("manifest.annotation")) {
        const [k, v] = splitKV("manifest.annotation", a);
        annotations[k] = v;
      }
      cfg.config = body;
      if (createdTime !== undefined) cfg.created = createdTime;
      if (opts.has("author")) cfg.author = opts.get("author")!;
      if (opts.has("platform.os")) cfg.os = opts.get("platform.os")!;
      if (opts.has("platform.arch")) cfg.architecture = opts.get("platform.arch")!;
      if (opts.has("platform.variant")) cfg.variant = opts.get("platform.variant")!;
      m.manifest.annotations = Object.keys(annotations).length ? annotations : undefined;
      if (historyReq) {
        m.addHistory({
          created: historyReq.created ?? nowTimestamp(),
          created_by: historyReq.created_by ?? "boci config",
          author: historyReq.author ?? cfg.author,
          comment: historyReq.comment,
          empty_layer: true,
        });
      }
      // (a signal during the edits above is handled here: no tag is written)
      await yieldToSignals();
      const desc = m.commit(tag);
      log.info(`new image manifest created: ${desc.manifest.digest}`);
      printWriteResult(opts, layout, { manifest: desc.manifest, tag });
    } finally { layout.close(); }
  },
};
