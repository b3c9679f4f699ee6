/**
 * `raw mtree-validate` through the real binary, as umoci 0.6.0 has it: its flags and messages,
 * every keyword go-mtree walks, go-mtree's rules for a keyword the manifest lacks and for `time`
 * vs `tar_time` (umoci 0.6.0's test/raw-mtree-validate.bats, ported), go-mtree's manifest syntax,
 * --rootless, and a cross-check with Debian's umoci 0.4.7 (which has no mtree-validate: the paths
 * its repack puts in a layer must be the ones we report).
 *
 * Manifests are written here in go-mtree's text format, with values from independent sources
 * (coreutils' sums, openssl, cksum(1), getent, getfattr), never from boci's walker.
 */
import { describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import { join } from "node:path";
import { boci, have, isRoot, scratch, sh } from "../helpers/cli";

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function run(cmd: string): string {
  const r = sh(cmd);
  if (r.code !== 0) throw new Error(`${cmd} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** `boci raw mtree-validate ARGS`: exit code, stdout lines (sorted), stderr. */
function validate(args: string[], opts: { asNobody?: boolean } = {}): { code: number; lines: string[]; err: string } {
  const r = opts.asNobody
    ? sh(`setpriv --reuid=65534 --regid=65534 --clear-groups ${[process.env.BOCI_BIN ?? join(import.meta.dir, "../../dist/boci"), "raw", "mtree-validate", ...args].map(q).join(" ")}`)
    : boci(["raw", "mtree-validate", ...args]);
  return { code: r.code, lines: r.stdout.split("\n").filter(Boolean).sort(), err: r.stderr };
}

// ---- an independent go-mtree manifest writer (the format `gomtree -c -k …` writes) ----

const DIGEST_CMD: Record<string, string> = {
  md5digest: "md5sum", sha1digest: "sha1sum", sha256digest: "sha256sum", sha384digest: "sha384sum", sha512digest: "sha512sum",
  ripemd160digest: "openssl dgst -ripemd160 -r", sha512256digest: "openssl dgst -sha512-256 -r",
};

function typeOf(st: fs.BigIntStats): string {
  return st.isDirectory() ? "dir" : st.isSymbolicLink() ? "link" : st.isFIFO() ? "fifo" : st.isCharacterDevice() ? "char" : st.isBlockDevice() ? "block" : st.isSocket() ? "socket" : "file";
}

function values(p: string, st: fs.BigIntStats, kw: string): string[] {
  const t = typeOf(st);
  const sec = st.mtimeNs / 1_000_000_000n;
  switch (kw) {
    case "size": return [`size=${st.size}`];
    case "type": return [`type=${t}`];
    case "uid": return [`uid=${st.uid}`];
    case "gid": return [`gid=${st.gid}`];
    case "nlink": return [`nlink=${st.nlink}`];
    case "mode": { const m = Number(st.mode) & 0o7777; return [`mode=${m ? "0" + m.toString(8) : "0"}`]; }
    case "link": return t === "link" ? [`link=${fs.readlinkSync(p)}`] : [];
    case "time": return [`time=${sec}.${String(st.mtimeNs % 1_000_000_000n).padStart(9, "0")}`];
    case "tar_time": return [`tar_time=${sec}.000000000`];
    case "uname": return [`uname=${run(`getent passwd ${st.uid}`).split(":")[0]}`];
    case "gname": return [`gname=${run(`getent group ${st.gid}`).split(":")[0]}`];
    case "cksum": return t === "file" ? [`cksum=${run(`cksum < ${q(p)}`).split(" ")[0]}`] : [];
    case "flags": return [];
    case "xattr": {
      if (t !== "file" && t !== "dir") return [];
      const out: string[] = [];
      for (const l of run(`getfattr --absolute-names -h -d -m - -e base64 ${q(p)}`).split("\n")) {
        const m = /^([^#=][^=]*)=0s(.*)$/.exec(l);
        if (m) out.push(`xattr.${m[1]}=${m[2]}`);
      }
      return out;
    }
    default:
      if (DIGEST_CMD[kw]) return t === "file" ? [`${kw}=${run(`${DIGEST_CMD[kw]} < ${q(p)}`).split(" ")[0]!.trim()}`] : [];
      throw new Error(`no oracle for ${kw}`);
  }
}

/** The manifest `gomtree -c -k KEYWORDS -p root` would write (names here need no vis escapes). */
function gomtree(root: string, keywords: string[]): string {
  const rootSt = fs.lstatSync(root, { bigint: true });
  const set = ["type=file", "nlink=1", "flags=none", "mode=0664"].filter((kv) => keywords.includes(kv.split("=")[0]!));
  set.push(`uid=${rootSt.uid}`, `gid=${rootSt.gid}`);
  const out = ["#mtree v2.0", `#${"keywords: ".padStart(16)}${keywords.join(",")}`, `/set ${set.join(" ")}`];
  const kvs = (p: string, st: fs.BigIntStats) => keywords.flatMap((k) => values(p, st, k)).filter((kv) => !set.includes(kv));
  const walk = (p: string, rel: string, name: string, st: fs.BigIntStats) => {
    out.push("", `# ${rel}`, `${name} ${kvs(p, st).join(" ")}`);
    const names = fs.readdirSync(p).sort();
    const sts = new Map(names.map((n) => [n, fs.lstatSync(join(p, n), { bigint: true })]));
    for (const n of names) if (!sts.get(n)!.isDirectory()) out.push(`    ${n} ${kvs(join(p, n), sts.get(n)!).join(" ")}`);
    for (const n of names) if (sts.get(n)!.isDirectory()) walk(join(p, n), rel === "." ? n : `${rel}/${n}`, n, sts.get(n)!);
    out.push("..");
  };
  walk(root, ".", ".", rootSt);
  return out.join("\n") + "\n";
}

function writeManifest(dir: string, name: string, text: string): string {
  const f = join(dir, name);
  fs.writeFileSync(f, text);
  return f;
}

const T0 = 1600000000;
/** Give every path of the tree the mtime T0 (symlinks themselves included). */
function touchAll(root: string): void {
  run(`find ${q(root)} -depth -exec touch -h -d @${T0} {} +`);
}

const HAVE_XATTR = have("setfattr") && have("getfattr");
const ALL = ["size", "type", "uid", "gid", "mode", "link", "nlink", "time", "uname", "gname", "cksum", "md5digest", "sha1digest", "sha256digest", "sha384digest", "sha512digest", "ripemd160digest", "flags", ...(HAVE_XATTR ? ["xattr"] : [])];

/** A tree with one path to change for each keyword; all mtimes T0. */
function keywordTree(): { base: string; root: string } {
  const base = scratch("boci-mtv-");
  const root = join(base, "rootfs");
  fs.mkdirSync(join(root, "sub"), { recursive: true });
  fs.writeFileSync(join(root, "data"), "abcd");
  fs.writeFileSync(join(root, "grow"), "abc");
  fs.writeFileSync(join(root, "perm"), "p");
  fs.chmodSync(join(root, "perm"), 0o644);
  fs.writeFileSync(join(root, "own"), "o");
  fs.writeFileSync(join(root, "nl"), "n");
  fs.writeFileSync(join(root, "tm"), "t");
  fs.writeFileSync(join(root, "tt"), "t");
  fs.writeFileSync(join(root, "sub/xa"), "x");
  fs.writeFileSync(join(root, "sub/xb"), "x");
  fs.symlinkSync("data", join(root, "sl"));
  if (HAVE_XATTR) run(`setfattr -n user.a -v 1 ${q(join(root, "sub/xa"))}`);
  touchAll(root);
  return { base, root };
}

/** One change per keyword (mtimes back to T0 except tm and tt). */
function mutate(base: string, root: string): void {
  fs.writeFileSync(join(root, "data"), "abce");
  fs.appendFileSync(join(root, "grow"), "d");
  fs.chmodSync(join(root, "perm"), 0o600);
  if (isRoot) fs.chownSync(join(root, "own"), 1, 1);
  fs.linkSync(join(root, "nl"), join(base, "outside-link")); // nlink 1 → 2 with no new path in the tree
  fs.rmSync(join(root, "sl"));
  fs.symlinkSync("perm", join(root, "sl"));
  if (HAVE_XATTR) run(`setfattr -n user.a -v 2 ${q(join(root, "sub/xa"))} && setfattr -n user.b -v x ${q(join(root, "sub/xb"))}`);
  touchAll(root);
  run(`touch -d @${T0}.5 ${q(join(root, "tm"))} && touch -d @${T0 + 100} ${q(join(root, "tt"))}`);
}

describe("raw mtree-validate: flags and messages (umoci 0.6)", () => {
  test("-f/--file/--manifest and -p/--path; required flags; empty values; a missing manifest", () => {
    const { base, root } = keywordTree();
    const m = writeManifest(base, "m.mtree", gomtree(root, ["size", "type", "uid", "gid", "mode", "link", "nlink", "time"]));
    for (const f of [["-f", m], ["--file", m], ["--manifest", m], [`--manifest=${m}`]]) {
      for (const p of [["-p", root], ["--path", root]]) expect(validate([...f, ...p])).toEqual({ code: 0, lines: [], err: "" });
    }
    const usage = (args: string[], msg: string) => {
      const r = validate(args);
      expect(r.err).toContain(msg);
      expect(r.code).toBe(2);
    };
    usage([], 'Required flags "file, path" not set');
    usage(["-p", root], 'Required flag "file" not set');
    usage(["-f", m], 'Required flag "path" not set');
    usage(["-f", "", "-p", root], "--manifest must be a valid path");
    usage(["-f", m, "-p", ""], "--path must be a valid path");
    const missing = validate(["-f", join(base, "nope.mtree"), "-p", root]);
    expect(missing.err).toContain(`open mtree manifest: open ${join(base, "nope.mtree")}: no such file or directory`);
    expect(missing.code).toBe(3);
    // the root: not a directory, or not there (go-mtree's messages inside umoci's)
    const nd = validate(["-f", m, "-p", join(root, "data")]);
    expect(nd.err).toContain(`check mtree manifest ${JSON.stringify(m)} against root ${JSON.stringify(join(root, "data"))}: data: Not a directory`);
    expect(nd.code).toBe(1);
    const nx = validate(["-f", m, "-p", join(base, "gone")]);
    expect(nx.err).toContain(`lstat ${join(base, "gone")}: no such file or directory`);
    expect(nx.code).not.toBe(0);
  });

  test("an unchanged tree passes silently; a change prints umoci's line and 'validation failed: N differences found' (exit 1)", () => {
    // umoci's bats "[basic manifest]": gomtree -c -K sha256digest, then touch one file
    const { base, root } = keywordTree();
    const m = writeManifest(base, "m.mtree", gomtree(root, ["size", "type", "uid", "gid", "mode", "link", "nlink", "time", "sha256digest"]));
    expect(validate(["-p", root, "-f", m])).toEqual({ code: 0, lines: [], err: "" });
    run(`touch -d @${T0 + 7}.25 ${q(join(root, "data"))}`);
    const r = validate(["-p", root, "-f", m]);
    expect(r.lines).toEqual([`"data": keyword "time": expected ${T0}.000000000; got ${T0 + 7}.250000000`]);
    expect(r.err).toBe("boci: validation failed: 1 differences found\n");
    expect(r.code).toBe(1);
  });
});

describe("raw mtree-validate: every keyword go-mtree walks", () => {
  test("each keyword validates an unchanged tree (-k NAME, its synonyms, and the manifest's own keywords)", () => {
    const { base, root } = keywordTree();
    for (const kw of [...ALL, "tar_time"]) {
      const m = writeManifest(base, `${kw}.mtree`, gomtree(root, ["type", kw]));
      expect({ kw, ...validate(["-f", m, "-p", root]) }).toEqual({ kw, code: 0, lines: [], err: "" });
      expect({ kw, ...validate(["-k", kw, "-f", m, "-p", root]) }).toEqual({ kw, code: 0, lines: [], err: "" });
    }
    const full = writeManifest(base, "full.mtree", gomtree(root, ALL));
    expect(validate(["-f", full, "-p", root])).toEqual({ code: 0, lines: [], err: "" });
    const synonyms = ["md5", "sha1", "sha256", "sha384", "sha512", "rmd160", "rmd160digest", ...(HAVE_XATTR ? ["xattrs"] : [])];
    expect(validate(["-k", synonyms.join(","), "-f", full, "-p", root])).toEqual({ code: 0, lines: [], err: "" });
    expect(validate(["-k", synonyms.join(" "), "-f", full, "-p", root])).toEqual({ code: 0, lines: [], err: "" });
  });

  test("each keyword reports its own change, and -k limits the comparison to the keywords named", () => {
    const { base, root } = keywordTree();
    const full = writeManifest(base, "full.mtree", gomtree(root, ALL));
    const tarTime = writeManifest(base, "tar.mtree", gomtree(root, ["type", "tar_time"]));
    const before = (p: string, kw: string) => values(join(root, p), fs.lstatSync(join(root, p), { bigint: true }), kw)[0]!.split("=").slice(1).join("=");
    const sums = ["cksum", "md5digest", "sha1digest", "sha256digest", "sha384digest", "sha512digest", "ripemd160digest"];
    const old = new Map(sums.flatMap((kw) => ["data", "grow"].map((p) => [`${kw} ${p}`, before(p, kw)] as const)));
    mutate(base, root);
    // content changed in data (same size) and grow (one byte more)
    const digest = (kw: string) => ["data", "grow"].map((p) => `"${p}": keyword "${kw}": expected ${old.get(`${kw} ${p}`)}; got ${before(p, kw)}`);
    const expected: Record<string, string[]> = {
      size: ['"grow": keyword "size": expected 3; got 4'],
      type: [],
      uid: isRoot ? ['"own": keyword "uid": expected 0; got 1'] : [],
      gid: isRoot ? ['"own": keyword "gid": expected 0; got 1'] : [],
      uname: isRoot ? ['"own": keyword "uname": expected root; got daemon'] : [],
      gname: isRoot ? ['"own": keyword "gname": expected root; got daemon'] : [],
      mode: ['"perm": keyword "mode": expected 0644; got 0600'],
      link: ['"sl": keyword "link": expected data; got perm'],
      nlink: ['"nl": keyword "nlink": expected 1; got 2'],
      time: [`"tm": keyword "time": expected ${T0}.000000000; got ${T0}.500000000`, `"tt": keyword "time": expected ${T0}.000000000; got ${T0 + 100}.000000000`],
      flags: [],
      xattr: ['"sub/xa": keyword "xattr.user.a": expected MQ==; got Mg==', '"sub/xb": keyword "xattr.user.b": expected ; got eA=='],
      cksum: digest("cksum"), md5digest: digest("md5digest"), sha1digest: digest("sha1digest"), sha256digest: digest("sha256digest"),
      sha384digest: digest("sha384digest"), sha512digest: digest("sha512digest"), ripemd160digest: digest("ripemd160digest"),
    };
    if (!isRoot) expected.uid = expected.gid = [];
    for (const kw of ALL) {
      const r = validate(["-k", kw, "-f", full, "-p", root]);
      expect({ kw, lines: r.lines, code: r.code }).toEqual({ kw, lines: expected[kw]!.sort(), code: expected[kw]!.length ? 1 : 0 });
      if (expected[kw]!.length) expect(r.err).toBe(`boci: validation failed: ${expected[kw]!.length} differences found\n`);
    }
    // tar_time sees whole seconds only: tt, not tm (and go-mtree's /set always carries uid and
    // gid, so a manifest written for "type,tar_time" compares owners too)
    expect(validate(["-f", tarTime, "-p", root]).lines).toEqual([
      ...(isRoot ? ['"own": keyword "uid": expected 0; got 1'] : []),
      `"tt": keyword "tar_time": expected ${T0}.000000000; got ${T0 + 100}.000000000`,
    ]);
    // several keywords at once (a delta prints one key: the first in keyword order)
    const r = validate(["-k", "size,mode,sha1digest", "-f", full, "-p", root]);
    expect(r.lines).toEqual([
      digest("sha1digest")[0]!, '"grow": keyword "size": expected 3; got 4', '"perm": keyword "mode": expected 0644; got 0600', // grow: size before sha1digest
    ].sort());
    // flags: a manifest value other than the walk's "none"
    const flagged = writeManifest(base, "flags.mtree", fs.readFileSync(full, "utf8").replace(/^(    data .*)$/m, "$1 flags=uchg"));
    expect(validate(["-k", "flags", "-f", flagged, "-p", root]).lines).toEqual(['"data": keyword "flags": expected uchg; got none']);
  });

  test("type: a file replaced by a directory; sha512256 as go-mtree has it (never validates)", () => {
    const { base, root } = keywordTree();
    const m = writeManifest(base, "m.mtree", gomtree(root, ["type", "size"]));
    fs.rmSync(join(root, "data"));
    fs.mkdirSync(join(root, "data"));
    touchAll(root);
    expect(validate(["-k", "type", "-f", m, "-p", root]).lines).toEqual(['"data": keyword "type": expected file; got dir']);
    // go-mtree computes sha512256 but files it as "sha512digest", so a manifest's
    // sha512256digest is always "missing" from the walk
    fs.rmSync(join(root, "data"), { recursive: true });
    fs.writeFileSync(join(root, "data"), "abcd");
    const s = writeManifest(base, "s.mtree", gomtree(root, ["type", "sha512256digest"]));
    const r = validate(["-f", s, "-p", root]);
    const files = ["data", "grow", "nl", "own", "perm", "sub/xa", "sub/xb", "tm", "tt"];
    expect(r.lines).toEqual(files.map((f) => `"${f}": keyword "sha512256digest": expected ${values(join(root, f), fs.lstatSync(join(root, f), { bigint: true }), "sha512256digest")[0]!.split("=")[1]}; got `).sort());
    expect(r.code).toBe(1);
  });
});

describe("raw mtree-validate: keywords the manifest lacks (a key on one side only is a difference)", () => {
  test("-k/-K with a keyword the manifest does not carry report every path the walk gives it to", () => {
    const { base, root } = keywordTree();
    const m = writeManifest(base, "m.mtree", gomtree(root, ["size", "type", "uid", "gid", "mode", "link", "nlink", "time"]));
    const files = ["data", "grow", "nl", "own", "perm", "sub/xa", "sub/xb", "tm", "tt"];
    const all = [".", "sub", "sl", ...files];
    const sha1 = files.map((f) => `"${f}": keyword "sha1digest": expected ; got ${values(join(root, f), fs.lstatSync(join(root, f), { bigint: true }), "sha1digest")[0]!.split("=")[1]}`).sort();
    for (const flag of ["-k", "-K"]) {
      const r = validate([flag, "sha1digest", "-f", m, "-p", root]);
      expect(r.lines).toEqual(sha1);
      expect(r.err).toBe(`boci: validation failed: ${files.length} differences found\n`);
      expect(r.code).toBe(1);
    }
    expect(validate(["-k", "uname", "-f", m, "-p", root]).lines).toEqual(all.map((p) => `"${p}": keyword "uname": expected ; got ${run("id -nu").trim()}`).sort());
    expect(validate(["-k", "flags", "-f", m, "-p", root]).lines).toEqual(all.map((p) => `"${p}": keyword "flags": expected ; got none`).sort());
    if (HAVE_XATTR) expect(validate(["-k", "xattr", "-f", m, "-p", root]).lines).toEqual(['"sub/xa": keyword "xattr.user.a": expected ; got MQ==']);
    // keywords the manifest has, or that give nothing here: nothing to report
    expect(validate(["-k", "link,size", "-f", m, "-p", root]).code).toBe(0);
    expect(validate(["-K", "sha256digest", "-f", writeManifest(base, "s.mtree", gomtree(root, ["type", "sha256digest"])), "-p", root]).code).toBe(0);
    // -k "" compares type alone (umoci puts "type" first when it is missing)
    expect(validate(["-k", "", "-f", m, "-p", root]).code).toBe(0);
    // a manifest keyword the walk does not give this path: "expected X; got " (link on a file)
    const odd = writeManifest(base, "odd.mtree", fs.readFileSync(m, "utf8").replace(/^(    grow .*)$/m, "$1 link=x").replace(/^(    perm) size=1 (.*)$/m, "$1 $2"));
    expect(validate(["-f", odd, "-p", root]).lines).toEqual(['"grow": keyword "link": expected x; got ', '"perm": keyword "size": expected ; got 1']);
    // an unknown keyword in -k fails the walk, as go-mtree does
    const bad = validate(["-k", "size,bogus", "-f", m, "-p", root]);
    expect(bad.err).toContain(`against root ${JSON.stringify(root)}: unknown keyword "bogus" for file ${JSON.stringify(root)}`);
    expect(bad.code).toBe(1);
  });

  test("--umoci-keywords compares umoci's set; -k overrides it", () => {
    const { base, root } = keywordTree();
    const m = writeManifest(base, "m.mtree", gomtree(root, ["size", "type", "uid", "gid", "mode", "link", "nlink", "time"]));
    // umoci's set: tar_time is met by the manifest's time; sha256digest is not in the manifest
    const r = validate(["--umoci-keywords", "-f", m, "-p", root]);
    expect(r.lines.length).toBe(9);
    expect(r.lines.every((l) => l.includes('keyword "sha256digest": expected ; got '))).toBe(true);
    expect(validate(["--umoci-keywords", "-k", "type,size", "-f", m, "-p", root]).code).toBe(0);
  });
});

describe("raw mtree-validate: time and tar_time (umoci's bats [tar_time])", () => {
  test("time vs tar_time manifests, truncated and moved mtimes", () => {
    const base = scratch("boci-mtv-");
    const root = join(base, "rootfs");
    fs.mkdirSync(root);
    const date = T0 + 10;
    run(`cd ${q(root)} && touch -d @${date}.1 lowerhalf && touch -d @${date}.8 upperhalf && touch -d @${date} tartime && touch -d @${date} .`);
    const kws = ["type", "uid", "gid", "nlink", "link", "mode", "flags", ...(HAVE_XATTR ? ["xattr"] : []), "size", "sha256digest"];
    const timeM = writeManifest(base, "time.mtree", gomtree(root, [...kws, "time"]));
    const tarM = writeManifest(base, "tartime.mtree", gomtree(root, [...kws, "tar_time"]));
    for (const f of ["lowerhalf", "upperhalf", "tartime"]) expect(fs.readFileSync(tarM, "utf8")).toMatch(new RegExp(`${f} .*\\btar_time=${date}\\.0{9}\\b`));
    const ok = (args: string[]) => expect(validate(args)).toEqual({ code: 0, lines: [], err: "" });
    const kList = (t: string) => [...kws, t].join(",");
    ok(["-p", root, "-f", timeM]);
    ok(["-p", root, "-f", tarM]);
    ok(["-k", kList("tar_time"), "-p", root, "-f", timeM]);
    ok(["-k", kList("time"), "-p", root, "-f", tarM]);
    // truncate the mtimes: only tar_time still matches
    run(`cd ${q(root)} && touch -d @${date} lowerhalf upperhalf tartime .`);
    const t = validate(["-p", root, "-f", timeM]);
    expect(t.lines).toEqual([
      `"lowerhalf": keyword "time": expected ${date}.100000000; got ${date}.000000000`,
      `"upperhalf": keyword "time": expected ${date}.800000000; got ${date}.000000000`,
    ]);
    expect(t.code).toBe(1);
    ok(["-p", root, "-f", tarM]);
    ok(["-k", kList("tar_time"), "-p", root, "-f", timeM]);
    ok(["-k", kList("time"), "-p", root, "-f", tarM]);
    // move them: every check fails, and a time difference against tar_time prints tar_time
    run(`cd ${q(root)} && touch -d @${T0} lowerhalf upperhalf tartime && touch -d @${date} .`);
    for (const [args, key] of [[["-f", timeM], "time"], [["-f", tarM], "tar_time"], [["-k", kList("tar_time"), "-f", timeM], "tar_time"], [["-k", kList("time"), "-f", tarM], "tar_time"]] as const) {
      const r = validate([...args, "-p", root]);
      expect(r.lines.map((l) => l.split(":")[0])).toEqual(['"lowerhalf"', '"tartime"', '"upperhalf"']);
      expect(r.lines.every((l) => l.includes(`keyword "${key}"`))).toBe(true);
      expect(r.code).toBe(1);
    }
    // a manifest with both: its tar_time wins and its time is ignored
    const both = writeManifest(base, "both.mtree", fs.readFileSync(tarM, "utf8").replace(/tar_time=(\d+)\.0+/g, "tar_time=$1.000000000 time=1.5"));
    expect(validate(["-k", "time", "-p", root, "-f", both]).lines.length).toBe(3);
    // a time that cannot become a tar_time fails the comparison
    const bad = writeManifest(base, "bad.mtree", fs.readFileSync(timeM, "utf8").replace(/(lowerhalf .*)time=\S+/, "$1time=123"));
    const e = validate(["-k", "tar_time", "-p", root, "-f", bad]);
    expect(e.err).toContain(`comparison failed lowerhalf: old entry: failed to parse "time" key: invalid format "123"`);
    expect(e.code).toBe(1);
  });
});

describe("raw mtree-validate: go-mtree's manifest syntax", () => {
  function tree(): { base: string; root: string } {
    const base = scratch("boci-mtv-");
    const root = join(base, "rootfs");
    fs.mkdirSync(join(root, "d"), { recursive: true });
    fs.writeFileSync(join(root, "f"), "x");
    fs.writeFileSync(join(root, "d/g"), "yy");
    fs.chmodSync(join(root, "f"), 0o644);
    fs.chmodSync(join(root, "d/g"), 0o644);
    fs.chmodSync(join(root, "d"), 0o755);
    fs.chmodSync(root, 0o755);
    return { base, root };
  }
  const head = (root: string) => `/set type=file nlink=1 mode=0644 uid=${fs.lstatSync(root).uid} gid=${fs.lstatSync(root).gid}\n. type=dir mode=0755 nlink=3 size=${fs.lstatSync(root).size}\n`;
  const dirD = (root: string) => `d type=dir nlink=2 mode=0755 size=${fs.lstatSync(join(root, "d")).size}\n    g size=2\n..\n`;

  test("/set replaces the previous set; /unset drops it; values are compared as strings", () => {
    const { base, root } = tree();
    const v = (name: string, text: string, args: string[]) => validate([...args, "-f", writeManifest(base, name, text), "-p", root]);
    expect(v("ok", head(root) + "    f size=1\n" + dirD(root), [])).toEqual({ code: 0, lines: [], err: "" });
    // a second /set without mode: the entries under it have no mode (mtree(5) would merge)
    expect(v("replace", head(root) + "/set type=file nlink=1\n    f size=1\n" + dirD(root), ["-k", "mode,size"]).lines).toEqual([
      '"d/g": keyword "mode": expected ; got 0644', '"f": keyword "mode": expected ; got 0644',
    ]);
    // /unset (any keyword) drops the whole set
    expect(v("unset", head(root) + "/unset mode\n    f size=1\n" + dirD(root).replace("g size=2", "g type=file size=2"), ["-k", "type,size"]).lines)
      .toEqual(['"f": keyword "type": expected ; got file']);
    // values are strings: mode=644 is not 0644, tar_time=5 is not 5.000000000
    expect(v("str", head(root) + "    f size=1 mode=644\n" + dirD(root), ["-k", "mode"]).lines).toEqual(['"f": keyword "mode": expected 644; got 0644']);
    const sec = Math.floor(fs.lstatSync(join(root, "f")).mtimeMs / 1000);
    expect(v("tt", head(root) + `    f size=1 tar_time=${sec}\n` + dirD(root), ["-k", "tar_time"]).lines).toEqual([
      '".": keyword "tar_time": expected ; got ' + `${Math.floor(fs.lstatSync(root).mtimeMs / 1000)}.000000000`,
      '"d": keyword "tar_time": expected ; got ' + `${Math.floor(fs.lstatSync(join(root, "d")).mtimeMs / 1000)}.000000000`,
      '"d/g": keyword "tar_time": expected ; got ' + `${Math.floor(fs.lstatSync(join(root, "d/g")).mtimeMs / 1000)}.000000000`,
      `"f": keyword "tar_time": expected ${sec}; got ${sec}.000000000`,
    ]);
    // a synonym as a manifest key is another key: sha256= never matches the walk's sha256digest
    const sum = (f: string) => run(`sha256sum < ${q(join(root, f))}`).split(" ")[0];
    expect(v("syn", head(root) + `    f size=1 sha256=${sum("f")}\n` + dirD(root).replace("g size=2", `g size=2 sha256digest=${sum("d/g")}`), ["-k", "sha256"]).lines)
      .toEqual([`"f": keyword "sha256digest": expected ; got ${sum("f")}`]);
  });

  test("full paths, paths that climb out, continuation lines, CRLF, comments", () => {
    const { base, root } = tree();
    const text = head(root).replace("\n", "\r\n") + "# a comment\n  # another\n    f size=1 \\\n  mode=0644\n" +
      `./d type=dir nlink=2 mode=0755 size=${fs.lstatSync(join(root, "d")).size}\n../../d/g size=2\n`;
    expect(validate(["-f", writeManifest(base, "m", text), "-p", root])).toEqual({ code: 0, lines: [], err: "" });
  });

  test("a bare keyword or one go-mtree cannot walk fails unless -k leaves it out; an over-long line fails the parse", () => {
    const { base, root } = tree();
    const bare = writeManifest(base, "bare", head(root) + "    f size=1 optional\n" + dirD(root));
    expect(validate(["-f", bare, "-p", root]).err).toContain(`unknown keyword "" for file ${JSON.stringify(root)}`);
    expect(validate(["-k", "type,size", "-f", bare, "-p", root]).code).toBe(0);
    const tags = writeManifest(base, "tags", head(root) + "    f size=1 tags=x\n" + dirD(root));
    expect(validate(["-f", tags, "-p", root]).err).toContain('unknown keyword "tags"');
    const long = writeManifest(base, "long", head(root) + `    f size=1 ${"x".repeat(70000)}=1\n`);
    const r = validate(["-f", long, "-p", root]);
    expect(r.err).toContain("parse mtree manifest: bufio.Scanner: token too long");
    expect(r.code).not.toBe(0);
  });
});

describe.skipIf(!isRoot)("raw mtree-validate --rootless (as nobody)", () => {
  test("without --rootless an unreadable file fails the walk; with it the tree validates and modes come back", () => {
    const base = scratch("boci-mtv-");
    fs.chmodSync(base, 0o755);
    const root = join(base, "rootfs");
    fs.mkdirSync(join(root, "locked"), { recursive: true });
    fs.writeFileSync(join(root, "locked/in"), "i");
    fs.writeFileSync(join(root, "secret"), "s");
    run(`chown -R 65534:65534 ${q(root)}`);
    fs.chmodSync(join(root, "secret"), 0);
    fs.chmodSync(join(root, "locked"), 0);
    // written as root, which reads it all
    const m = writeManifest(base, "m.mtree", gomtree(root, ["size", "type", "uid", "gid", "mode", "nlink", "tar_time", "sha256digest"]));
    const plain = validate(["-f", m, "-p", root], { asNobody: true });
    expect(plain.err).toContain(`open ${join(root, "secret")}: permission denied`);
    expect(plain.code).toBe(1);
    expect(validate(["--rootless", "-f", m, "-p", root], { asNobody: true })).toEqual({ code: 0, lines: [], err: "" });
    expect(fs.lstatSync(join(root, "secret")).mode & 0o7777).toBe(0);
    expect(fs.lstatSync(join(root, "locked")).mode & 0o7777).toBe(0);
  });

});

const HAVE_UMOCI = have("umoci") && have("jq");
if (!HAVE_UMOCI) console.log("mtree-validate: umoci or jq not installed; skipping the umoci 0.4.7 cross-check");

describe.skipIf(!HAVE_UMOCI || !isRoot)("raw mtree-validate vs Debian's umoci 0.4.7", () => {
  test("0.4.7 has no raw mtree-validate; the paths its repack puts in the layer are the paths we report", () => {
    const help = sh("umoci raw mtree-validate --help");
    expect(help.stdout + help.stderr).toContain("No help topic for 'mtree-validate'");
    const base = scratch("boci-mtv-");
    const L = join(base, "L");
    run(`cd ${q(base)} && umoci init --layout L && umoci new --image L:base && umoci unpack --image L:base b1`);
    run(`cd ${q(join(base, "b1/rootfs"))} && mkdir -p etc sub/deep keep && echo root > etc/passwd && echo a > sub/a && echo b > sub/deep/b && ln -s etc/passwd sl && echo k > keep/k`);
    run(`cd ${q(base)} && umoci repack --image L:v1 b1 && umoci unpack --image L:v1 b2`);
    const b2 = join(base, "b2");
    const mtree = join(b2, fs.readdirSync(b2).find((n) => n.endsWith(".mtree"))!);
    expect(validate(["-f", mtree, "-p", join(b2, "rootfs")])).toEqual({ code: 0, lines: [], err: "" });
    run(`cd ${q(join(b2, "rootfs"))} && echo changed > etc/passwd && rm -r sub/deep && echo new > newfile && chmod 600 sub/a && ln -sf sub/a sl && setfattr -n user.x -v 1 keep/k`);
    // by default the manifest's keywords are compared: it has no xattr key, so no xattr is seen
    expect(validate(["-f", mtree, "-p", join(b2, "rootfs")]).lines.join("\n")).not.toContain('"keep/k"');
    // --umoci-keywords compares what repack compares
    const r = validate(["--umoci-keywords", "-f", mtree, "-p", join(b2, "rootfs")]);
    expect(r.code).toBe(1);
    const reported = r.lines.map((l) => JSON.parse(l.slice(0, l.indexOf('": ') + 1)) as string);
    // umoci writes one whiteout for a removed directory, none for what was in it
    const missing = new Set(r.lines.filter((l) => l.endsWith(": missing path")).map((l) => JSON.parse(l.slice(0, l.indexOf('": ') + 1)) as string));
    const expected = reported.filter((p) => !(missing.has(p) && missing.has(p.split("/").slice(0, -1).join("/")))).sort();
    run(`cd ${q(base)} && umoci repack --image L:v2 b2`);
    const man = run(`jq -r '.manifests[] | select(.annotations."org.opencontainers.image.ref.name"=="v2") | .digest' ${q(join(L, "index.json"))}`).trim().split(":")[1];
    const layer = run(`jq -r '.layers[-1].digest' ${q(join(L, "blobs/sha256", man!))}`).trim().split(":")[1];
    const names = run(`tar -tzf ${q(join(L, "blobs/sha256", layer!))}`).split("\n").filter(Boolean)
      .map((n) => n.replace(/^\.\//, "").replace(/\/$/, "") || ".")
      .map((n) => n.replace(/(^|\/)\.wh\.([^/]+)$/, "$1$2"))
      .sort();
    expect(names).toEqual(expected);
    expect(expected).toEqual(expect.arrayContaining(["etc/passwd", "newfile", "sub/a", "sub/deep", "sl", "keep/k"]));
  });
});
