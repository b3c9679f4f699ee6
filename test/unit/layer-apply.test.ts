/**
 * Table-driven tests of the layer applier (LayerApplier, src/layer/apply.ts), after the cases of
 * umoci's oci/layer/tar_extract_test.go: each row applies one or more layers of entries built in
 * code (test/helpers/entries.ts) onto a fresh root and states either the error or the tree that
 * results (types, modes, contents, link targets, owners, mtimes, xattrs, absent paths, exact
 * directory listings), the mtree entries recorded for some paths, and the warning codes.
 *
 * Every row also checks, whatever it states:
 *  - nothing outside the root changed: the root is <scratch>/rootfs, and <scratch> holds host
 *    files (HOST_FILES) that must keep their content, with nothing added beside them;
 *  - (rows that succeed) the recorded manifest is the tree on disk: the same paths, and for each
 *    the same type, mode, owner, size, nlink, link, whole-second mtime, sha256 and xattrs (what
 *    umoci's walk of the unpacked rootfs would record).
 *
 * The checks collect problems instead of stopping at the first, so one failing row lists all of
 * them; the "checker" block at the end makes sure each kind of check can fail.
 *
 * Without root only the rootless rows run (the others chown, make device nodes, set trusted.*
 * xattrs or set-id bits).
 */
import { afterAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { LayerApplier } from "../../src/layer/apply";
import type { IdMapping } from "../../src/layer/idmap";
import { bytesToName, hasRawBytes, nameToBytes, type MtreeEntry } from "../../src/mtree";
import { createManifestSpool } from "../../src/mtree/spool";
import { lgetxattr, llistxattr, lsetxattr } from "../../src/sys";
import { removeTreeForce } from "../../src/util/cleanup";
import { DEFAULT_MTIME, type EntrySpec, layerOf, toBuffer } from "../helpers/entries";

const spoolBase = fs.mkdtempSync(join(tmpdir(), "boci-layer-apply-spool-"));
let spoolCount = 0;
afterAll(() => fs.rmSync(spoolBase, { recursive: true, force: true }));

const IS_ROOT = process.geteuid?.() === 0;
const EUID = process.geteuid?.() ?? 0;
const EGID = process.getegid?.() ?? 0;

// ---- row types ---------------------------------------------------------------------------------

type NodeType = "file" | "dir" | "symlink" | "fifo" | "char" | "block";

/** What one path must be after the row's layers (only the fields given are checked). */
interface NodeExpect {
  type: NodeType;
  /** Permission and set-id/sticky bits (& 07777); not checked for symlinks unless given. */
  mode?: number;
  content?: string | Buffer;
  /** Symlink target, byte-exact (a string is converted with nameToBytes). */
  link?: string | Buffer;
  uid?: number;
  gid?: number;
  /** Whole seconds (floor of the on-disk mtime). */
  mtime?: number;
  /** Each xattr's value (a string is UTF-8); null: must not be set. */
  xattrs?: Record<string, string | Buffer | null>;
  nlink?: number;
  /** Same inode as this other path (a hardlink). */
  sameAs?: string;
  /** Device major and minor. */
  rdev?: [number, number];
}

/** A recorded mtree entry: the fields given must be equal; xattrs is the exact set. */
type MtreeExpect = Partial<Omit<MtreeEntry, "path" | "xattrs">> & { xattrs?: Record<string, string | Buffer> };

interface Row {
  name: string;
  /** Why the row fails against the current applier, when it is known to (see the report). */
  deviation?: string;
  layers: EntrySpec[][];
  rootless?: boolean;
  keepDirlinks?: boolean;
  uidMappings?: IdMapping[];
  gidMappings?: IdMapping[];
  /** Needs root even when rootless (rows that are not rootless always do: the applier chowns). */
  needsRoot?: boolean;
  /** Prepare <scratch> (and the empty root in it) before the applier is made. */
  setup?: (ctx: { scratch: string; root: string }) => void;
  /** Files this row's setup wrote outside the root, and the content they must keep. */
  outside?: Record<string, string>;
  /** The applier must fail with a message matching this. */
  error?: RegExp;
  /** Paths relative to the root ("" is the root itself). Checked after an error too. */
  tree?: Record<string, NodeExpect>;
  /** Paths that must not exist. */
  absent?: string[];
  /** Directory ("" = root) → the exact names in it, byte-exact (strings via nameToBytes). */
  listing?: Record<string, Array<string | Buffer>>;
  /** Recorded entries by mtree path ("." = root); null: must not be recorded. */
  mtree?: Record<string, MtreeExpect | null>;
  /** The distinct warning codes reported, in any order (default: none). */
  warnings?: string[];
  /** Test hook: change the disk after the applier is done (the checker tests use it). */
  afterApply?: (ctx: { scratch: string; root: string }) => void;
}

// ---- entry shorthands ----------------------------------------------------------------------------

const file = (name: string, body: string | Buffer = "", o: Partial<EntrySpec> = {}): EntrySpec => ({ name, type: "file", body, ...o });
const dir = (name: string, o: Partial<EntrySpec> = {}): EntrySpec => ({ name, type: "dir", ...o });
const symlink = (name: string, linkname: string, o: Partial<EntrySpec> = {}): EntrySpec => ({ name, type: "symlink", linkname, ...o });
const hardlink = (name: string, linkname: string, o: Partial<EntrySpec> = {}): EntrySpec => ({ name, type: "link", linkname, ...o });
/** A whiteout entry (a regular empty file, as umoci writes them). */
const wh = (name: string): EntrySpec => ({ name, type: "file" });

const sha = (v: string | Buffer) => createHash("sha256").update(toBuffer(v)).digest("hex");
const EMPTY_SHA = sha("");
const hex = (h: string) => Buffer.from(h, "hex");

/** Deterministic pseudo-random bytes. */
function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}
const BIG = bytes(3 << 20, 7);

/** Host files written beside the root in every row; they must survive unchanged. */
const HOST_FILES: Record<string, string> = {
  "file": "host content",
  "secret": "host secret",
  "etc/passwd": "host passwd",
};

// ---- the rows ----------------------------------------------------------------------------------

const ROWS: Row[] = [
  // -- entry types --
  {
    name: "regular file: content, mode, owner, mtime",
    needsRoot: true,
    layers: [[file("hello.txt", "hello world\n", { mode: 0o640, uid: 1000, gid: 1001, mtime: 1234567890 })]],
    tree: { "hello.txt": { type: "file", content: "hello world\n", mode: 0o640, uid: 1000, gid: 1001, mtime: 1234567890, nlink: 1 } },
    mtree: { "hello.txt": { type: "file", size: 12, mode: 0o640, uid: 1000, gid: 1001, nlink: 1, tarTime: 1234567890, sha256: sha("hello world\n") } },
  },
  {
    name: "empty file",
    layers: [[file("empty", "", { mode: 0o600 })]],
    tree: { empty: { type: "file", content: "", mode: 0o600 } },
    mtree: { empty: { type: "file", size: 0, sha256: EMPTY_SHA } },
  },
  {
    name: "large file (3 MiB in 64 KiB chunks, hashed off-thread)",
    layers: [[file("big.bin", BIG, { chunk: 64 << 10, mode: 0o755, mtime: 1700000000 })]],
    tree: { "big.bin": { type: "file", content: BIG, mode: 0o755, mtime: 1700000000 } },
    mtree: { "big.bin": { type: "file", size: BIG.length, sha256: sha(BIG) } },
  },
  {
    name: "directory: mode, owner, mtime",
    needsRoot: true,
    layers: [[dir("etc/", { mode: 0o711, uid: 5, gid: 6, mtime: 1111 })]],
    tree: { etc: { type: "dir", mode: 0o711, uid: 5, gid: 6, mtime: 1111 } },
    mtree: { etc: { type: "dir", mode: 0o711, uid: 5, gid: 6, tarTime: 1111 } },
  },
  {
    name: "symlink: target kept verbatim, owner, mtime set with lutimes",
    needsRoot: true,
    layers: [[symlink("lnk", "../does/not/exist", { uid: 7, gid: 8, mtime: 2222 })]],
    tree: { lnk: { type: "symlink", link: "../does/not/exist", uid: 7, gid: 8, mtime: 2222 } },
    absent: ["does"],
    mtree: { lnk: { type: "link", link: "../does/not/exist", mode: 0o777, size: 17, uid: 7, gid: 8, tarTime: 2222 } },
  },
  {
    name: "hardlink shares the target's inode; its own header owner is not applied",
    needsRoot: true,
    layers: [[file("a", "data", { uid: 10, gid: 20 }), hardlink("b", "/a", { uid: 1337, gid: 2020 })]],
    tree: {
      a: { type: "file", content: "data", uid: 10, gid: 20, nlink: 2 },
      b: { type: "file", content: "data", uid: 10, gid: 20, nlink: 2, sameAs: "a" },
    },
    mtree: { a: { type: "file", nlink: 2, uid: 10 }, b: { type: "file", nlink: 2, uid: 10, sha256: sha("data") } },
  },
  {
    name: "hardlink to a symlink links the symlink itself",
    layers: [[file("regular", "x"), symlink("link", "../../../regular"), hardlink("hard", "../../../link")]],
    tree: {
      link: { type: "symlink", link: "../../../regular", nlink: 2 },
      hard: { type: "symlink", link: "../../../regular", sameAs: "link" },
      regular: { type: "file", nlink: 1 },
    },
  },
  {
    name: "fifo: mode and mtime",
    layers: [[{ name: "pipe", type: "fifo", mode: 0o620, mtime: 3333 }]],
    tree: { pipe: { type: "fifo", mode: 0o620, mtime: 3333 } },
    mtree: { pipe: { type: "fifo", mode: 0o620, tarTime: 3333 } },
  },
  {
    name: "char device (root: a real node)",
    needsRoot: true,
    layers: [[{ name: "dev/null", type: "char", devmajor: 1, devminor: 3, mode: 0o666 }]],
    tree: { "dev/null": { type: "char", rdev: [1, 3], mode: 0o666 } },
    mtree: { "dev/null": { type: "char", mode: 0o666 } },
  },
  {
    name: "block device (root: a real node)",
    needsRoot: true,
    layers: [[{ name: "dev/loop0", type: "block", devmajor: 7, devminor: 300, mode: 0o660, uid: 0, gid: 6 }]],
    tree: { "dev/loop0": { type: "block", rdev: [7, 300], mode: 0o660, gid: 6 } },
    mtree: { "dev/loop0": { type: "block", mode: 0o660 } },
  },
  {
    name: "rootless: a char device becomes an empty file with its mode, and a warning",
    rootless: true,
    layers: [[{ name: "dev/null", type: "char", devmajor: 1, devminor: 3, mode: 0o666 }]],
    tree: { "dev/null": { type: "file", content: "", mode: 0o666 } },
    mtree: { "dev/null": { type: "file", size: 0, mode: 0o666, sha256: EMPTY_SHA } },
    warnings: ["rootless-device"],
  },
  {
    name: "rootless: a block device becomes an empty file with its mode, and a warning",
    rootless: true,
    layers: [[{ name: "sda", type: "block", devmajor: 8, devminor: 0, mode: 0o640 }]],
    tree: { sda: { type: "file", content: "", mode: 0o640 } },
    warnings: ["rootless-device"],
  },
  {
    name: "rootless: a fifo is still a fifo (no warning)",
    rootless: true,
    layers: [[{ name: "pipe", type: "fifo", mode: 0o600 }]],
    tree: { pipe: { type: "fifo", mode: 0o600 } },
  },

  // -- implicit parents --
  {
    name: "implicit parent directories: 0755, owned by 0:0",
    needsRoot: true,
    layers: [[file("a/b/c/file", "deep", { uid: 1000, gid: 1000 })]],
    tree: {
      a: { type: "dir", mode: 0o755, uid: 0, gid: 0 },
      "a/b": { type: "dir", mode: 0o755, uid: 0, gid: 0 },
      "a/b/c": { type: "dir", mode: 0o755, uid: 0, gid: 0 },
      "a/b/c/file": { type: "file", content: "deep", uid: 1000, gid: 1000 },
    },
    mtree: { a: { type: "dir", mode: 0o755, uid: 0, gid: 0 }, "a/b/c": { type: "dir", mode: 0o755 } },
  },
  {
    name: "implicit parents under an id map are owned by the mapped root",
    needsRoot: true,
    uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
    gidMappings: [{ containerID: 0, hostID: 200000, size: 65536 }],
    layers: [[file("x/y/file", "z", { uid: 1, gid: 2 })]],
    tree: {
      x: { type: "dir", mode: 0o755, uid: 100000, gid: 200000 },
      "x/y": { type: "dir", uid: 100000, gid: 200000 },
      "x/y/file": { type: "file", uid: 100001, gid: 200002 },
    },
    mtree: { x: { uid: 100000, gid: 200000 }, "x/y/file": { uid: 100001, gid: 200002 } },
  },

  // -- merging and replacing --
  {
    name: "dir over an existing dir keeps its content and takes the new metadata",
    needsRoot: true,
    layers: [
      [dir("d/", { mode: 0o755, mtime: 100 }), file("d/old", "old")],
      [dir("d/", { mode: 0o700, uid: 33, gid: 44, mtime: 200 }), file("d/new", "new")],
    ],
    tree: {
      d: { type: "dir", mode: 0o700, uid: 33, gid: 44, mtime: 200 },
      "d/old": { type: "file", content: "old" },
      "d/new": { type: "file", content: "new" },
    },
    mtree: { d: { type: "dir", mode: 0o700, uid: 33, tarTime: 200 }, "d/old": { type: "file" } },
  },
  {
    name: "dir merge replaces the directory's xattrs",
    layers: [
      [dir("d/", { xattrs: { "user.a": "1" } })],
      [dir("d/", { xattrs: { "user.b": "2" } })],
    ],
    tree: { d: { type: "dir", xattrs: { "user.a": null, "user.b": "2" } } },
    mtree: { d: { type: "dir", xattrs: { "user.b": "2" } } },
  },
  {
    name: "file replaces a directory and everything under it",
    layers: [
      [dir("d/"), file("d/x", "x"), dir("d/sub/"), file("d/sub/y", "y")],
      [file("d", "now a file")],
    ],
    tree: { d: { type: "file", content: "now a file" } },
    absent: ["d/x", "d/sub"],
    mtree: { d: { type: "file", sha256: sha("now a file") }, "d/x": null, "d/sub/y": null },
  },
  {
    name: "directory replaces a file",
    layers: [[file("p", "file")], [dir("p/", { mode: 0o750 }), file("p/child", "c")]],
    tree: { p: { type: "dir", mode: 0o750 }, "p/child": { type: "file", content: "c" } },
    mtree: { p: { type: "dir", mode: 0o750 } },
  },
  {
    name: "file over a hardlinked file: the other name keeps the old inode and content",
    layers: [[file("a", "one"), hardlink("b", "a")], [file("a", "two")]],
    tree: { a: { type: "file", content: "two", nlink: 1 }, b: { type: "file", content: "one", nlink: 1 } },
    mtree: { a: { nlink: 1, sha256: sha("two") }, b: { nlink: 1, sha256: sha("one") } },
  },
  {
    name: "symlink over an existing file",
    layers: [[file("x", "x")], [symlink("x", "y")]],
    tree: { x: { type: "symlink", link: "y" } },
    mtree: { x: { type: "link", link: "y" } },
  },
  {
    name: "symlink replaced by a directory (keepDirlinks off)",
    layers: [
      [dir("real/"), file("real/keep", "k"), symlink("l", "real")],
      [dir("l/", { mode: 0o750 }), file("l/f", "new")],
    ],
    tree: { l: { type: "dir", mode: 0o750 }, "l/f": { type: "file", content: "new" }, "real/keep": { type: "file", content: "k" } },
    absent: ["real/f"],
    listing: { l: ["f"], real: ["keep"] },
    mtree: { l: { type: "dir" } },
  },
  {
    // The directory behind a kept link must keep its mtime when the layer writes into it (umoci
    // restores each entry's parent directory after the entry), also when the link was resolved
    // before without noting "real" for a time restore (as the keepDirlinks check does).
    name: "keepDirlinks: a dir entry over a symlink to a dir keeps the link, children go through it",
    keepDirlinks: true,
    layers: [
      [dir("real/"), symlink("l", "real")],
      [dir("l/"), file("l/f", "through")],
    ],
    tree: { l: { type: "symlink", link: "real" }, real: { type: "dir", mtime: DEFAULT_MTIME }, "real/f": { type: "file", content: "through" } },
    mtree: { l: { type: "link", link: "real" }, "real/f": { type: "file" }, "l/f": null },
  },
  {
    name: "keepDirlinks: a link to a dir by absolute target is kept and resolved inside the root",
    keepDirlinks: true,
    layers: [
      [dir("usr/"), dir("usr/lib/"), symlink("lib", "/usr/lib")],
      [dir("lib/"), file("lib/libc.so", "elf")],
    ],
    tree: { lib: { type: "symlink", link: "/usr/lib" }, "usr/lib": { type: "dir", mtime: DEFAULT_MTIME }, "usr/lib/libc.so": { type: "file", content: "elf" } },
  },
  {
    name: "keepDirlinks: a symlink to a file is still replaced by the directory",
    keepDirlinks: true,
    layers: [[file("target", "x"), symlink("l", "target")], [dir("l/", { mode: 0o700 })]],
    tree: { l: { type: "dir", mode: 0o700 }, target: { type: "file", content: "x" } },
  },
  {
    name: "keepDirlinks: a dangling symlink is replaced by the directory",
    keepDirlinks: true,
    layers: [[symlink("l", "nowhere")], [dir("l/")]],
    tree: { l: { type: "dir" } },
    absent: ["nowhere"],
  },

  // -- whiteouts --
  {
    name: "whiteout removes a lower file",
    layers: [[file("a", "a"), file("keep", "k")], [wh(".wh.a")]],
    tree: { keep: { type: "file", content: "k" } },
    absent: ["a", ".wh.a"],
    mtree: { a: null, keep: { type: "file" } },
  },
  {
    name: "whiteout removes a lower directory and its whole tree",
    layers: [[dir("d/"), file("d/x", "x"), dir("d/.sub/"), file("d/.sub/y", "y")], [wh(".wh.d")]],
    absent: ["d", ".wh.d"],
    listing: { "": [] },
    mtree: { d: null, "d/x": null, "d/.sub/y": null },
  },
  {
    name: "whiteout of a hidden file in a subdirectory leaves the parents' mtimes",
    layers: [
      [dir("some/", { mtime: 123 }), dir("some/path/", { mtime: 456 }), file("some/path/.hidden", "h")],
      [wh("some/path/.wh..hidden")],
    ],
    tree: { some: { type: "dir", mtime: 123 }, "some/path": { type: "dir", mtime: 456 } },
    absent: ["some/path/.hidden"],
    mtree: { "some/path": { tarTime: 456 }, "some/path/.hidden": null },
  },
  {
    name: "whiteout of a name this layer added spares it (before or after the entry)",
    layers: [
      [file("other", "o"), file("c", "lower c")],
      [wh(".wh.b"), file("a", "A"), file("b", "B"), wh(".wh.a"), wh(".wh.c")],
    ],
    tree: { a: { type: "file", content: "A" }, b: { type: "file", content: "B" }, other: { type: "file" } },
    absent: ["c"],
  },
  {
    // umoci (oci/layer/tar_extract.go, UnpackEntry): a whiteout walks the path and removes every
    // subpath not in upperPaths, so below a directory the layer itself touched, lower children
    // still go, and what the layer made stays.
    name: "whiteout of a directory this layer touched removes only its lower children",
    layers: [
      [dir("dir1/"), file("dir1/lower", "l"), dir("dir1/lowerdir/"), file("dir1/lowerdir/f", "f")],
      [dir("dir1/"), file("dir1/new", "n"), wh(".wh.dir1")],
    ],
    tree: { dir1: { type: "dir" }, "dir1/new": { type: "file", content: "n" } },
    absent: ["dir1/lower", "dir1/lowerdir"],
    listing: { dir1: ["new"] },
  },
  {
    name: "whiteout of a missing name, under a missing dir, or under a file is no error",
    layers: [[file("x", "x")], [wh(".wh.nothing"), wh("nodir/.wh.nothing"), wh("x/.wh.y")]],
    tree: { x: { type: "file", content: "x" } },
    absent: ["nodir"],
    listing: { "": ["x"] },
  },
  {
    name: "whiteout through a symlinked parent removes the file the link reaches (inside the root)",
    layers: [[dir("real/"), file("real/f", "f"), file("real/g", "g"), symlink("link", "real")], [wh("link/.wh.f")]],
    tree: { link: { type: "symlink", link: "real" }, "real/g": { type: "file" } },
    absent: ["real/f"],
    mtree: { "real/f": null },
  },
  {
    name: "whiteout through a symlink to / removes the file inside the root, not the host's",
    layers: [[symlink("hostroot", "/"), file("file", "ctr")], [wh("hostroot/.wh.file")]],
    absent: ["file"],
    tree: { hostroot: { type: "symlink", link: "/" } },
  },
  {
    name: "opaque whiteout removes lower content and spares what this layer added",
    layers: [
      [
        dir("d/", { mtime: 4444 }), file("d/lower1", "1"), dir("d/sub/"), file("d/sub/lower2", "2"),
        dir("d/keepdir/"), file("d/keepdir/lower3", "3"), file("outside-d", "o"),
      ],
      [file("d/early", "e"), dir("d/keepdir/"), wh("d/.wh..wh..opq"), file("d/late", "l")],
    ],
    tree: {
      d: { type: "dir", mtime: 4444 },
      "d/early": { type: "file", content: "e" },
      "d/late": { type: "file", content: "l" },
      "d/keepdir": { type: "dir" },
      "outside-d": { type: "file", content: "o" },
    },
    absent: ["d/.wh..wh..opq"],
    listing: { d: ["early", "keepdir", "late"], "d/keepdir": [] },
    mtree: { "d/sub": null, "d/lower1": null, "d/keepdir/lower3": null, "d/early": { type: "file" } },
  },
  {
    name: "opaque whiteout at the top of the root removes all lower content",
    layers: [[file("a", "a"), dir("b/"), file("b/c", "c")], [wh(".wh..wh..opq"), file("new", "n")]],
    listing: { "": ["new"] },
    tree: { new: { type: "file", content: "n" } },
  },
  {
    name: "opaque whiteout in the first layer onto an empty root removes nothing",
    layers: [[dir("d/"), file("d/f", "f"), wh("d/.wh..wh..opq")]],
    tree: { "d/f": { type: "file", content: "f" } },
    listing: { d: ["f"] },
  },
  {
    name: "opaque whiteout of a missing directory is no error",
    layers: [[file("x", "x")], [wh("nope/.wh..wh..opq")]],
    absent: ["nope"],
    listing: { "": ["x"] },
  },
  {
    name: "a root populated before the applier: a first-layer whiteout removes what was there",
    setup: ({ root }) => fs.writeFileSync(join(root, "pre"), "pre"),
    layers: [[wh(".wh.pre"), file("new", "n")]],
    absent: ["pre"],
    listing: { "": ["new"] },
  },
  {
    name: "invalid whiteout: .wh. (empty name)",
    layers: [[dir("d/"), file("d/x", "x")], [wh(".wh.")]],
    error: /invalid whiteout.*empty name/,
    tree: { d: { type: "dir" }, "d/x": { type: "file", content: "x" } },
  },
  {
    name: "invalid whiteout: d/.wh. (empty name, in a subdirectory)",
    layers: [[dir("d/"), file("d/x", "x")], [wh("d/.wh.")]],
    error: /invalid whiteout.*empty name/,
    tree: { "d/x": { type: "file", content: "x" } },
  },
  {
    name: "invalid whiteout: d/.wh.. (names the directory itself)",
    layers: [[dir("d/"), file("d/x", "x")], [wh("d/.wh..")]],
    error: /invalid whiteout/,
    tree: { "d/x": { type: "file", content: "x" } },
  },
  {
    name: "invalid whiteout: d/.wh... (names the parent)",
    layers: [[dir("d/"), file("d/x", "x"), file("y", "y")], [wh("d/.wh...")]],
    error: /invalid whiteout/,
    tree: { "d/x": { type: "file" }, y: { type: "file" } },
  },
  {
    name: "invalid whiteout: .wh.. in the first layer is an error too",
    layers: [[wh(".wh..")]],
    error: /invalid whiteout/,
  },
  {
    name: "AUFS metadata (.wh..wh.plnk, .wh..wh.aufs) is ignored",
    layers: [[file("keep", "k")], [dir(".wh..wh.plnk/"), wh(".wh..wh.aufs"), file("also", "a")]],
    absent: [".wh..wh.plnk", ".wh..wh.aufs"],
    listing: { "": ["also", "keep"] },
  },

  // -- path safety: the root is <scratch>/rootfs; the host files beside it must not change --
  {
    name: "../../etc/passwd lands inside the root",
    layers: [[file("../../etc/passwd", "ctr")]],
    tree: { "etc/passwd": { type: "file", content: "ctr" } },
  },
  {
    name: "/etc/passwd (absolute) lands inside the root",
    layers: [[file("/etc/passwd", "ctr")]],
    tree: { "etc/passwd": { type: "file", content: "ctr" } },
  },
  {
    name: "/../file lands inside the root",
    layers: [[file("/../file", "ctr")]],
    tree: { file: { type: "file", content: "ctr" } },
  },
  ...["/", "/../", "/../../../../../../../../../../../../../../../", "/./.././.././.././.././../", "..", "../../.."].map((prefix): Row => ({
    name: `file through a symlink to ${JSON.stringify(prefix)} lands inside the root`,
    layers: [[symlink("link", prefix)], [file("link/file", "ctr")]],
    tree: { file: { type: "file", content: "ctr" }, link: { type: "symlink", link: prefix } },
  })),
  {
    name: "directory and file through a symlink to ../.. in the same layer land inside the root",
    layers: [[symlink("up", "../.."), dir("up/etc/", { mode: 0o700 }), file("up/etc/passwd", "ctr")]],
    tree: { etc: { type: "dir", mode: 0o700 }, "etc/passwd": { type: "file", content: "ctr" } },
  },
  {
    name: "a chain of symlinks climbing out is clamped at the root",
    layers: [[symlink("a", "../b"), symlink("b", "/../../x"), file("a/f", "f")]],
    tree: { x: { type: "dir", mode: 0o755 }, "x/f": { type: "file", content: "f" } },
  },
  {
    name: "hardlink whose target climbs out with .. links the file inside the root",
    layers: [[file("secret", "inside"), hardlink("h", "../../secret")]],
    tree: { h: { type: "file", content: "inside", sameAs: "secret" } },
  },
  {
    name: "hardlink to /../../file with no such file inside the root is an error (not the host file)",
    layers: [[hardlink("h", "/../../file")]],
    error: /does not exist/,
    absent: ["h"],
  },
  {
    name: "hardlink through a symlink to / links the file inside the root",
    layers: [[symlink("s", "/"), file("f", "inner"), hardlink("h", "s/f")]],
    tree: { h: { type: "file", content: "inner", sameAs: "f" } },
  },
  {
    name: "hardlink to a directory is an error",
    layers: [[dir("dir/"), hardlink("h", "dir")]],
    error: /is a directory/,
    absent: ["h"],
  },
  {
    name: "hardlink to a missing target is an error",
    layers: [[hardlink("h", "missing")]],
    error: /does not exist/,
    absent: ["h"],
  },
  {
    name: "hardlink to the root directory is an error",
    layers: [[hardlink("h", "./")]],
    error: /root directory/,
    absent: ["h"],
  },
  {
    name: "root entry ./ sets the root's metadata (its mtime after its children)",
    needsRoot: true,
    layers: [[dir("./", { mode: 0o750, uid: 12, gid: 34, mtime: 1000 }), file("./a", "a"), dir("./b/")]],
    tree: { "": { type: "dir", mode: 0o750, uid: 12, gid: 34, mtime: 1000 }, a: { type: "file" } },
    mtree: { ".": { type: "dir", mode: 0o750, uid: 12, gid: 34, tarTime: 1000 } },
  },
  {
    name: "root entry named / or . in a later layer sets the root's mode",
    layers: [[file("a", "a")], [dir("/", { mode: 0o700, mtime: 5 }), dir(".", { mode: 0o711, mtime: 6 })]],
    tree: { "": { type: "dir", mode: 0o711, mtime: 6 }, a: { type: "file" } },
    mtree: { ".": { type: "dir", mode: 0o711 } },
  },
  {
    name: "root entry of type file is an error",
    layers: [[file("./", "x")]],
    error: /root directory/,
    tree: { "": { type: "dir" } },
  },
  {
    name: "root entry of type symlink is an error (the root stays a directory)",
    layers: [[symlink(".", "/etc")]],
    error: /root directory/,
    tree: { "": { type: "dir" } },
  },

  // -- modes and times --
  {
    name: "setuid, setgid and sticky bits survive the chown",
    needsRoot: true,
    layers: [[
      dir("bin/"),
      file("bin/su", "x", { mode: 0o4755, uid: 0 }),
      file("bin/wall", "x", { mode: 0o2755, gid: 5 }),
      file("bin/both", "x", { mode: 0o6711, uid: 1000, gid: 1000 }),
      dir("tmp/", { mode: 0o1777 }),
      dir("shared/", { mode: 0o2775, gid: 100 }),
    ]],
    tree: {
      "bin/su": { type: "file", mode: 0o4755, uid: 0 },
      "bin/wall": { type: "file", mode: 0o2755, gid: 5 },
      "bin/both": { type: "file", mode: 0o6711, uid: 1000, gid: 1000 },
      tmp: { type: "dir", mode: 0o1777 },
      shared: { type: "dir", mode: 0o2775, gid: 100 },
    },
    mtree: { "bin/both": { mode: 0o6711 }, tmp: { mode: 0o1777 } },
  },
  {
    name: "a directory's mtime is set after its children are written",
    layers: [[
      dir("d/", { mtime: 1000 }), file("d/a", "a", { mtime: 10 }), dir("d/sub/", { mtime: 2000 }),
      file("d/sub/b", "b"), symlink("d/sub/l", "b", { mtime: 3000 }), file("d/later", "c"),
    ]],
    tree: {
      d: { type: "dir", mtime: 1000 },
      "d/a": { type: "file", mtime: 10 },
      "d/sub": { type: "dir", mtime: 2000 },
      "d/sub/l": { type: "symlink", mtime: 3000 },
    },
    mtree: { d: { tarTime: 1000 }, "d/sub": { tarTime: 2000 }, "d/sub/l": { tarTime: 3000 } },
  },
  {
    name: "a later layer writing into a directory keeps its mtime (and the root's)",
    setup: ({ root }) => fs.utimesSync(root, 42, 42),
    layers: [[dir("d/", { mtime: 777 })], [file("d/new", "n"), file("top", "t"), wh(".wh.nothing")]],
    tree: { "": { type: "dir", mtime: 42 }, d: { type: "dir", mtime: 777 }, "d/new": { type: "file" } },
    mtree: { ".": { tarTime: 42 }, d: { tarTime: 777 } },
  },
  {
    name: "fractional mtimes keep their whole seconds",
    layers: [[file("f", "x", { mtime: 1234.75 }), dir("d/", { mtime: 99.5 })]],
    tree: { f: { type: "file", mtime: 1234 }, d: { type: "dir", mtime: 99 } },
    mtree: { f: { tarTime: 1234 }, d: { tarTime: 99 } },
  },

  // -- id maps --
  {
    name: "uid/gid maps translate every owner",
    needsRoot: true,
    uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
    gidMappings: [{ containerID: 0, hostID: 200000, size: 65536 }],
    layers: [[
      file("f", "x", { uid: 5, gid: 6 }), dir("d/", { uid: 7, gid: 8 }),
      symlink("l", "f", { uid: 9, gid: 10 }), { name: "p", type: "fifo", uid: 11, gid: 12 },
    ]],
    tree: {
      f: { type: "file", uid: 100005, gid: 200006 },
      d: { type: "dir", uid: 100007, gid: 200008 },
      l: { type: "symlink", uid: 100009, gid: 200010 },
      p: { type: "fifo", uid: 100011, gid: 200012 },
    },
    mtree: { f: { uid: 100005, gid: 200006 }, d: { uid: 100007, gid: 200008 }, l: { uid: 100009 } },
  },
  {
    name: "several map ranges: the first covering range wins",
    needsRoot: true,
    uidMappings: [{ containerID: 0, hostID: 1000, size: 10 }, { containerID: 10, hostID: 5000, size: 10 }, { containerID: 5, hostID: 9999, size: 100 }],
    gidMappings: [{ containerID: 0, hostID: 3000, size: 100 }],
    layers: [[file("a", "", { uid: 3, gid: 1 }), file("b", "", { uid: 12, gid: 2 }), file("c", "", { uid: 5, gid: 3 })]],
    tree: { a: { type: "file", uid: 1003, gid: 3001 }, b: { type: "file", uid: 5002, gid: 3002 }, c: { type: "file", uid: 1005, gid: 3003 } },
  },
  {
    name: "an owner outside the map is an error",
    needsRoot: true,
    uidMappings: [{ containerID: 0, hostID: 100000, size: 10 }],
    gidMappings: [{ containerID: 0, hostID: 100000, size: 10 }],
    layers: [[file("f", "x", { uid: 50 })]],
    error: /uid 50 cannot be mapped to host/,
  },

  // -- rootless --
  {
    name: "rootless: owners go into user.rootlesscontainers, not chown",
    rootless: true,
    layers: [[
      file("f", "x", { uid: 992, gid: 123 }), file("rootfile", "x", { uid: 0, gid: 0 }),
      file("half", "x", { uid: 0, gid: 456 }), dir("d/", { uid: 1000, gid: 1000 }), symlink("l", "f", { uid: 5, gid: 5 }),
    ]],
    tree: {
      f: { type: "file", uid: EUID, gid: EGID, xattrs: { "user.rootlesscontainers": hex("08e007107b") } },
      rootfile: { type: "file", uid: EUID, gid: EGID, xattrs: { "user.rootlesscontainers": null } },
      half: { type: "file", xattrs: { "user.rootlesscontainers": hex("08ffffffff0f10c803") } },
      d: { type: "dir", uid: EUID, xattrs: { "user.rootlesscontainers": hex("08e80710e807") } },
      l: { type: "symlink", uid: EUID, xattrs: { "user.rootlesscontainers": null } },
    },
    mtree: {
      f: { uid: EUID, gid: EGID, xattrs: { "user.rootlesscontainers": hex("08e007107b") } },
      rootfile: { uid: EUID, xattrs: {} },
      d: { xattrs: { "user.rootlesscontainers": hex("08e80710e807") } },
    },
  },
  {
    name: "rootless: directories with mode 0000 and 0500 get their header mode after the layer",
    rootless: true,
    needsRoot: true, // (the checks look inside the locked directory)
    layers: [[
      dir("locked/", { mode: 0 }), file("locked/f", "x"),
      dir("ro/", { mode: 0o500 }), dir("ro/sub/", { mode: 0o555 }), file("ro/sub/g", "y"),
    ]],
    tree: {
      locked: { type: "dir", mode: 0 },
      "locked/f": { type: "file", content: "x" },
      ro: { type: "dir", mode: 0o500 },
      "ro/sub": { type: "dir", mode: 0o555 },
      "ro/sub/g": { type: "file", content: "y" },
    },
    mtree: { locked: { type: "dir", mode: 0 }, ro: { mode: 0o500 } },
  },
  {
    name: "rootless: a later layer writes into a 0500 directory and puts its mode back",
    rootless: true,
    layers: [[dir("ro/", { mode: 0o500, mtime: 50 })], [file("ro/new", "n"), wh("ro/.wh.nothing")]],
    tree: { ro: { type: "dir", mode: 0o500, mtime: 50 }, "ro/new": { type: "file", content: "n" } },
    mtree: { ro: { mode: 0o500 } },
  },
  {
    name: "rootless: a layer's own user.rootlesscontainers xattr is ignored, with a warning",
    rootless: true,
    layers: [[file("f", "x", { xattrs: { "user.rootlesscontainers": hex("0801") } })]],
    tree: { f: { type: "file", xattrs: { "user.rootlesscontainers": null } } },
    warnings: ["xattr-rootless"],
  },

  // -- xattrs --
  {
    name: "user.* and trusted.* xattrs on files and directories",
    needsRoot: true,
    layers: [[
      file("f", "x", { xattrs: { "user.mime": "text/plain", "trusted.bin": Buffer.from([0, 1, 2, 255]) } }),
      dir("d/", { xattrs: { "user.dir": "yes" } }),
    ]],
    tree: {
      f: { type: "file", xattrs: { "user.mime": "text/plain", "trusted.bin": Buffer.from([0, 1, 2, 255]) } },
      d: { type: "dir", xattrs: { "user.dir": "yes" } },
    },
    mtree: { f: { xattrs: { "user.mime": "text/plain", "trusted.bin": Buffer.from([0, 1, 2, 255]) } }, d: { xattrs: { "user.dir": "yes" } } },
  },
  {
    name: "security.selinux is never set, with warning xattr-forbidden",
    layers: [[file("f", "x", { xattrs: { "security.selinux": "system_u:object_r:etc_t:s0", "user.ok": "1" } })]],
    tree: { f: { type: "file", xattrs: { "security.selinux": null, "user.ok": "1" } } },
    mtree: { f: { xattrs: { "user.ok": "1" } } },
    warnings: ["xattr-forbidden"],
  },
  {
    name: "user.* xattrs on a symlink are skipped (Linux refuses them), no error",
    layers: [[symlink("l", "x", { xattrs: { "user.a": "1" } })]],
    tree: { l: { type: "symlink", link: "x", xattrs: { "user.a": null } } },
  },

  // -- bodies --
  {
    name: "file body shorter than the header size is an error",
    layers: [[file("f", "abc", { size: 10 })]],
    error: /file body is 3 bytes, header says 10/,
  },
  {
    name: "file body longer than the header size is an error",
    layers: [[file("f", "abcdef", { size: 2 })]],
    error: /file body is 6 bytes, header says 2/,
  },
  {
    name: "large file body shorter than the header size is an error",
    layers: [[file("big", BIG.subarray(0, 2 << 20), { size: 3 << 20, chunk: 256 << 10 })]],
    error: /file body is 2097152 bytes, header says 3145728/,
  },
];

/** Names that are not valid UTF-8: each invalid byte b is the lone surrogate U+DC00+b (src/mtree/vis.ts). */
const BYTE_ROWS: Row[] = [
  {
    name: "caf\\udce9 becomes a file named caf\\xe9",
    layers: [[file("caf\udce9", "latin-1 name")]],
    listing: { "": [Buffer.from("caf\xe9", "latin1")] },
    tree: { "caf\udce9": { type: "file", content: "latin-1 name" } },
    mtree: { "caf\udce9": { type: "file", sha256: sha("latin-1 name") } },
  },
  {
    name: "\\udcff\\udcfe becomes a file named \\xff\\xfe",
    layers: [[file("\udcff\udcfe", "bom")]],
    listing: { "": [Buffer.from([0xff, 0xfe])] },
    tree: { "\udcff\udcfe": { type: "file", content: "bom" } },
  },
  {
    name: "two names differing only in raw bytes stay two files",
    layers: [[file("x\udce9", "one"), file("x\udcea", "two")]],
    listing: { "": [Buffer.from("x\xe9", "latin1"), Buffer.from("x\xea", "latin1")] },
    tree: { "x\udce9": { type: "file", content: "one" }, "x\udcea": { type: "file", content: "two" } },
  },
  {
    name: "a directory with a raw-byte name holds its children",
    layers: [[dir("d\udcff/", { mode: 0o700, mtime: 600 }), file("d\udcff/f", "c")]],
    listing: { "": [Buffer.from("d\xff", "latin1")], "d\udcff": ["f"] },
    tree: { "d\udcff": { type: "dir", mode: 0o700, mtime: 600 }, "d\udcff/f": { type: "file", content: "c" } },
  },
  {
    name: "an implicit parent with a raw-byte name",
    layers: [[file("p\udce9/q/f", "c")]],
    listing: { "": [Buffer.from("p\xe9", "latin1")], "p\udce9": ["q"] },
    tree: { "p\udce9/q/f": { type: "file", content: "c" } },
  },
  {
    name: "a symlink target with raw bytes is written byte-exact",
    layers: [[symlink("l", "t\udce9")]],
    tree: { l: { type: "symlink", link: Buffer.from("t\xe9", "latin1") } },
  },
  {
    name: "a whiteout of a raw-byte name removes only that name",
    layers: [[file("caf\udce9", "1"), file("caf\udcea", "2")], [wh(".wh.caf\udce9")]],
    listing: { "": [Buffer.from("caf\xea", "latin1")] },
    tree: { "caf\udcea": { type: "file", content: "2" } },
  },
  {
    name: "a hardlink between raw-byte names",
    layers: [[file("a\udce9", "x"), hardlink("b\udce9", "a\udce9")]],
    listing: { "": [Buffer.from("a\xe9", "latin1"), Buffer.from("b\xe9", "latin1")] },
    tree: { "b\udce9": { type: "file", content: "x", sameAs: "a\udce9", nlink: 2 } },
  },
  {
    name: "control: valid UTF-8 names are written as their UTF-8 bytes",
    layers: [[file("café", "x"), file("日本", "y")]],
    listing: { "": [Buffer.from("café"), Buffer.from("日本")] },
    tree: { "café": { type: "file", content: "x" } },
  },
];

// ---- running and checking a row ----------------------------------------------------------------

type Stat = fs.BigIntStats;

function fsPath(root: string, rel: string): string | Buffer {
  if (rel === "") return root;
  return hasRawBytes(rel) ? Buffer.concat([Buffer.from(`${root}/`), nameToBytes(rel)]) : `${root}/${rel}`;
}

function lstatOrNull(p: string | Buffer): Stat | null {
  try {
    return fs.lstatSync(p, { bigint: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return null;
    throw e;
  }
}

function typeOf(st: Stat): NodeType | "socket" {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isFIFO()) return "fifo";
  if (st.isCharacterDevice()) return "char";
  if (st.isBlockDevice()) return "block";
  return "socket";
}

const MTREE_TYPE: Record<string, MtreeEntry["type"]> = { file: "file", dir: "dir", symlink: "link", fifo: "fifo", char: "char", block: "block", socket: "socket" };

const show = (v: unknown): string =>
  Buffer.isBuffer(v) ? (v.length > 48 ? `<${v.length} bytes sha256 ${sha(v).slice(0, 12)}>` : `<${v.toString("hex")}>`) : JSON.stringify(v);
const oct = (n: number) => "0" + n.toString(8);
const seconds = (st: Stat) => Number(st.mtimeNs / 1_000_000_000n);
const major = (rdev: bigint) => Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
const minor = (rdev: bigint) => Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
const hexOf = (v: string | Buffer) => (Buffer.isBuffer(v) ? v : nameToBytes(v)).toString("hex");

function checkNode(root: string, rel: string, want: NodeExpect, out: string[]): void {
  const where = rel === "" ? "root" : JSON.stringify(rel);
  const p = fsPath(root, rel);
  const st = lstatOrNull(p);
  if (!st) { out.push(`${where}: missing (want ${want.type})`); return; }
  const type = typeOf(st);
  if (type !== want.type) { out.push(`${where}: type ${type}, want ${want.type}`); return; }
  const mode = Number(st.mode & 0o7777n);
  if (want.mode !== undefined && mode !== want.mode) out.push(`${where}: mode ${oct(mode)}, want ${oct(want.mode)}`);
  if (want.content !== undefined) {
    const got = fs.readFileSync(p);
    const exp = toBuffer(want.content);
    if (!got.equals(exp)) out.push(`${where}: content ${show(got.length > 48 ? got : got.toString())}, want ${show(exp.length > 48 ? exp : exp.toString())}`);
  }
  if (want.link !== undefined) {
    const got = fs.readlinkSync(p, { encoding: "buffer" });
    const exp = Buffer.isBuffer(want.link) ? want.link : nameToBytes(want.link);
    if (!got.equals(exp)) out.push(`${where}: link <${got.toString("hex")}> ${JSON.stringify(bytesToName(got))}, want <${exp.toString("hex")}>`);
  }
  if (want.uid !== undefined && Number(st.uid) !== want.uid) out.push(`${where}: uid ${st.uid}, want ${want.uid}`);
  if (want.gid !== undefined && Number(st.gid) !== want.gid) out.push(`${where}: gid ${st.gid}, want ${want.gid}`);
  if (want.mtime !== undefined && seconds(st) !== want.mtime) out.push(`${where}: mtime ${seconds(st)}, want ${want.mtime}`);
  if (want.nlink !== undefined && Number(st.nlink) !== want.nlink) out.push(`${where}: nlink ${st.nlink}, want ${want.nlink}`);
  if (want.sameAs !== undefined) {
    const other = lstatOrNull(fsPath(root, want.sameAs));
    if (!other || other.ino !== st.ino || other.dev !== st.dev) out.push(`${where}: not the same inode as ${JSON.stringify(want.sameAs)}`);
  }
  if (want.rdev !== undefined) {
    const got: [number, number] = [major(st.rdev), minor(st.rdev)];
    if (got[0] !== want.rdev[0] || got[1] !== want.rdev[1]) out.push(`${where}: device ${got.join(":")}, want ${want.rdev.join(":")}`);
  }
  if (want.xattrs !== undefined) {
    if (typeof p !== "string") { out.push(`${where}: xattrs cannot be checked on a raw-byte path`); return; }
    for (const [name, value] of Object.entries(want.xattrs)) {
      const got = lgetxattr(p, name);
      if (value === null) {
        if (got !== null) out.push(`${where}: xattr ${name} is set (${show(got)}), want unset`);
      } else if (got === null) out.push(`${where}: xattr ${name} unset, want ${show(toBuffer(value))}`);
      else if (!got.equals(toBuffer(value))) out.push(`${where}: xattr ${name} ${show(got)}, want ${show(toBuffer(value))}`);
    }
  }
}

function checkListing(root: string, rel: string, want: Array<string | Buffer>, out: string[]): void {
  let names: Buffer[];
  try {
    names = fs.readdirSync(fsPath(root, rel), { encoding: "buffer" });
  } catch (e) {
    out.push(`listing of ${JSON.stringify(rel)}: ${(e as Error).message}`);
    return;
  }
  const got = names.map((b) => b.toString("hex")).sort();
  const exp = want.map(hexOf).sort();
  if (got.join(",") !== exp.join(",")) {
    const fmt = (hs: string[]) => hs.map((h) => JSON.stringify(bytesToName(Buffer.from(h, "hex")))).join(", ");
    out.push(`listing of ${JSON.stringify(rel)}: [${fmt(got)}], want [${fmt(exp)}]`);
  }
}

/** Every path under `dir` (name bytes decoded with bytesToName), with its lstat. */
function walkDisk(dir: string | Buffer, rel: string, acc: Map<string, { p: string | Buffer; st: Stat }>): void {
  for (const nb of fs.readdirSync(dir, { encoding: "buffer" })) {
    const name = bytesToName(nb);
    const r = rel === "" ? name : `${rel}/${name}`;
    const p = Buffer.concat([Buffer.isBuffer(dir) ? dir : Buffer.from(dir), Buffer.from("/"), nb]);
    const st = fs.lstatSync(p, { bigint: true });
    acc.set(r, { p: hasRawBytes(r) ? p : p.toString(), st });
    if (st.isDirectory()) walkDisk(p, r, acc);
  }
}

const FORBIDDEN = new Set(["security.selinux", "system.nfs4_acl"]);

/** The recorder against the tree: same paths, and each recorded value as on disk. */
function checkRecorderAgainstDisk(root: string, recorded: Map<string, MtreeEntry>, out: string[]): void {
  const disk = new Map<string, { p: string | Buffer; st: Stat }>([[".", { p: root, st: fs.lstatSync(root, { bigint: true }) }]]);
  walkDisk(root, "", disk);
  for (const path of disk.keys()) if (!recorded.has(path)) out.push(`manifest: ${JSON.stringify(path)} is on disk but not recorded`);
  for (const [path, e] of recorded) {
    const d = disk.get(path);
    if (!d) { out.push(`manifest: ${JSON.stringify(path)} is recorded but not on disk`); continue; }
    const { p, st } = d;
    const bad = (k: string, rec: unknown, got: unknown) => out.push(`manifest: ${JSON.stringify(path)} ${k} recorded ${show(rec)}, on disk ${show(got)}`);
    const type = MTREE_TYPE[typeOf(st)]!;
    if (e.type !== type) { bad("type", e.type, type); continue; }
    const mode = Number(st.mode & 0o7777n);
    if (e.mode !== undefined && e.mode !== mode) bad("mode", oct(e.mode), oct(mode));
    if (e.uid !== undefined && e.uid !== Number(st.uid)) bad("uid", e.uid, Number(st.uid));
    if (e.gid !== undefined && e.gid !== Number(st.gid)) bad("gid", e.gid, Number(st.gid));
    if (e.size !== undefined && e.size !== Number(st.size)) bad("size", e.size, Number(st.size));
    if (e.nlink !== undefined && e.nlink !== Number(st.nlink)) bad("nlink", e.nlink, Number(st.nlink));
    if (e.tarTime !== undefined && e.tarTime !== seconds(st)) bad("tar_time", e.tarTime, seconds(st));
    if (type === "link") {
      const target = bytesToName(fs.readlinkSync(p, { encoding: "buffer" }));
      if (e.link !== target) bad("link", e.link, target);
    }
    if (type === "file") {
      const digest = sha(fs.readFileSync(p));
      if (e.sha256 !== digest) bad("sha256", e.sha256, digest);
    }
    if ((type === "file" || type === "dir") && typeof p === "string") {
      const onDisk = new Map<string, string>();
      for (const n of llistxattr(p)) {
        const v = lgetxattr(p, n);
        if (!FORBIDDEN.has(n) && v && v.length) onDisk.set(n, v.toString("hex"));
      }
      const rec = new Map([...(e.xattrs ?? new Map<string, Buffer>())].map(([k, v]) => [k, v.toString("hex")]));
      const fmt = (m: Map<string, string>) => [...m].map(([k, v]) => `${k}=${v}`).sort().join(" ");
      if (fmt(rec) !== fmt(onDisk)) bad("xattrs", fmt(rec), fmt(onDisk));
    }
  }
}

function checkMtree(recorded: Map<string, MtreeEntry>, want: Record<string, MtreeExpect | null>, out: string[]): void {
  for (const [path, exp] of Object.entries(want)) {
    const got = recorded.get(path);
    if (exp === null) {
      if (got) out.push(`mtree ${JSON.stringify(path)}: recorded (type ${got.type}), want no entry`);
      continue;
    }
    if (!got) { out.push(`mtree ${JSON.stringify(path)}: not recorded`); continue; }
    for (const [k, v] of Object.entries(exp)) {
      if (k === "xattrs") {
        const fmt = (m: Iterable<[string, string | Buffer]>) => [...m].map(([n, b]) => `${n}=${toBuffer(b).toString("hex")}`).sort().join(" ");
        const g = fmt(got.xattrs ?? []), w = fmt(Object.entries(v as Record<string, string | Buffer>));
        if (g !== w) out.push(`mtree ${JSON.stringify(path)}: xattrs {${g}}, want {${w}}`);
        continue;
      }
      const g = (got as unknown as Record<string, unknown>)[k];
      if (g !== v) out.push(`mtree ${JSON.stringify(path)}: ${k} ${show(k === "mode" && typeof g === "number" ? oct(g) : g)}, want ${show(k === "mode" ? oct(v as number) : v)}`);
    }
  }
}

/** The files under <scratch> outside the root (paths relative to scratch, dirs end in "/"). */
function outsideState(scratch: string): Map<string, string> {
  const acc = new Map<string, string>();
  const walk = (dir: string, rel: string) => {
    for (const name of fs.readdirSync(dir)) {
      if (rel === "" && name === "rootfs") continue;
      const p = join(dir, name);
      const r = rel === "" ? name : `${rel}/${name}`;
      const st = fs.lstatSync(p);
      if (st.isDirectory()) { acc.set(`${r}/`, ""); walk(p, r); }
      else if (st.isFile()) acc.set(r, fs.readFileSync(p, "utf8"));
      else acc.set(r, `<${typeOf(fs.lstatSync(p, { bigint: true }))}>`);
    }
  };
  walk(scratch, "");
  return acc;
}

/** Apply the row's layers on a fresh root and return every way the result differs from the row. */
async function problemsOf(row: Row): Promise<string[]> {
  const scratch = fs.mkdtempSync(join(tmpdir(), "boci-layer-apply-"));
  try {
    const root = join(scratch, "rootfs");
    fs.mkdirSync(root);
    fs.chmodSync(root, 0o755);
    const outside: Record<string, string> = { ...HOST_FILES, ...row.outside };
    for (const [rel, content] of Object.entries(HOST_FILES)) {
      fs.mkdirSync(join(scratch, rel, ".."), { recursive: true });
      fs.writeFileSync(join(scratch, rel), content);
    }
    row.setup?.({ scratch, root });

    const warnings = new Set<string>();
    // (the manifest spool lives apart from the scratch dir, which is checked for changes)
    const recorder = createManifestSpool(join(spoolBase, `spool-${spoolCount++}`));
    const applier = new LayerApplier(root, {
      mapOptions: { uidMappings: row.uidMappings ?? [], gidMappings: row.gidMappings ?? [], rootless: row.rootless ?? false },
      keepDirlinks: row.keepDirlinks,
      recorder,
      onWarning: (code) => warnings.add(code),
    });
    let err: unknown;
    let manifest: MtreeEntry[] | undefined;
    let manifestError: unknown;
    try {
      applier.recordRoot();
      for (const layer of row.layers) await applier.applyLayer(layerOf(layer));
      await applier.finish();
      // (read as unpack does, right after the layers: what only settles at the end is read from disk now)
      try { manifest = [...applier.manifest()]; } catch (e) { manifestError = e; }
    } catch (e) {
      err = e;
      applier.close();
    }
    recorder.close();
    row.afterApply?.({ scratch, root });

    const out: string[] = [];
    const message = err instanceof Error ? err.message : String(err);
    if (row.error) {
      if (err === undefined) out.push(`no error, want one matching ${row.error}`);
      else if (!row.error.test(message)) out.push(`error ${JSON.stringify(message)}, want one matching ${row.error}`);
    } else if (err !== undefined) {
      out.push(`unexpected error: ${message}`);
    }

    // Nothing outside the root changed, and the root is still a directory.
    const want = new Map<string, string>();
    for (const [rel, content] of Object.entries(outside)) {
      want.set(rel, content);
      for (let d = rel; d.includes("/");) { d = d.slice(0, d.lastIndexOf("/")); want.set(`${d}/`, ""); }
    }
    const got = outsideState(scratch);
    for (const [rel, content] of got) {
      if (!want.has(rel)) out.push(`OUTSIDE THE ROOT: ${JSON.stringify(rel)} was created`);
      else if (want.get(rel) !== content) out.push(`OUTSIDE THE ROOT: ${JSON.stringify(rel)} changed to ${JSON.stringify(content)}`);
    }
    for (const rel of want.keys()) if (!got.has(rel)) out.push(`OUTSIDE THE ROOT: ${JSON.stringify(rel)} was removed`);
    if (!lstatOrNull(root)?.isDirectory()) out.push("the root is no longer a directory");

    for (const [rel, exp] of Object.entries(row.tree ?? {})) checkNode(root, rel, exp, out);
    for (const rel of row.absent ?? []) if (lstatOrNull(fsPath(root, rel))) out.push(`${JSON.stringify(rel)}: exists, want absent`);
    for (const [rel, names] of Object.entries(row.listing ?? {})) checkListing(root, rel, names, out);

    if (err === undefined) {
      let recorded: Map<string, MtreeEntry> | undefined;
      try {
        if (manifestError) throw manifestError;
        recorded = new Map(manifest!.map((e) => [e.path, e]));
      } catch (e) {
        out.push(`manifest: ${(e as Error).message}`);
      }
      if (recorded) {
        checkMtree(recorded, row.mtree ?? {}, out);
        checkRecorderAgainstDisk(root, recorded, out);
      }
    }

    const codes = [...warnings].sort().join(",");
    const wantCodes = [...new Set(row.warnings ?? [])].sort().join(",");
    if (codes !== wantCodes) out.push(`warnings [${codes}], want [${wantCodes}]`);
    return out;
  } finally {
    removeTreeForce(scratch);
  }
}

function rowTest(row: Row): void {
  // Without root only rootless rows can run (the applier chowns otherwise).
  const run = !IS_ROOT && (row.needsRoot || !row.rootless) ? test.skip : test;
  run(row.deviation ? `${row.name} (known deviation)` : row.name, async () => {
    const problems = await problemsOf(row);
    expect(problems.length && row.deviation ? [`known deviation: ${row.deviation}`, ...problems] : problems).toEqual([]);
  });
}

describe("LayerApplier", () => {
  for (const row of ROWS) rowTest(row);
});

// Expected to fail until the applier handles names that are not valid UTF-8 (the rewrite into
// src/rootfs/ does): today such a name goes to the kernel as UTF-8 with U+FFFD for each raw byte.
describe("byte names", () => {
  for (const row of BYTE_ROWS) rowTest(row);
});

// ---- the checker itself ------------------------------------------------------------------------

/** A row that passes, stating every kind of expectation; each mutation below must make it fail. */
const BASE: Row = {
  name: "base",
  rootless: true, // (runs without root too)
  layers: [
    [
      dir("d/", { mode: 0o750, mtime: 1000, xattrs: { "user.x": "1" } }), file("d/f", "content", { mode: 0o640, mtime: 2000 }),
      symlink("d/l", "f"), hardlink("d/h", "d/f"), file("gone", "g"),
    ],
    [wh(".wh.gone"), file("new", "n")],
  ],
  tree: {
    d: { type: "dir", mode: 0o750, mtime: 1000, xattrs: { "user.x": "1", "user.y": null } },
    "d/f": { type: "file", content: "content", mode: 0o640, uid: EUID, gid: EGID, mtime: 2000, nlink: 2 },
    "d/h": { type: "file", sameAs: "d/f" },
    "d/l": { type: "symlink", link: "f" },
  },
  absent: ["nothing", "gone"],
  listing: { d: ["f", "h", "l"], "": ["d", "new"] },
  mtree: { d: { type: "dir", mode: 0o750 }, "d/f": { sha256: sha("content"), xattrs: {} }, nothing: null, gone: null },
};

const MUTATIONS: Array<[string, (r: Row) => Row]> = [
  ["type", (r) => ({ ...r, tree: { ...r.tree, "d/l": { type: "file" } } })],
  ["mode", (r) => ({ ...r, tree: { ...r.tree, d: { type: "dir", mode: 0o755 } } })],
  ["content", (r) => ({ ...r, tree: { ...r.tree, "d/f": { type: "file", content: "contenT" } } })],
  ["link", (r) => ({ ...r, tree: { ...r.tree, "d/l": { type: "symlink", link: "g" } } })],
  ["uid", (r) => ({ ...r, tree: { ...r.tree, "d/f": { type: "file", uid: EUID + 1 } } })],
  ["gid", (r) => ({ ...r, tree: { ...r.tree, "d/f": { type: "file", gid: EGID + 1 } } })],
  ["mtime", (r) => ({ ...r, tree: { ...r.tree, d: { type: "dir", mtime: 1001 } } })],
  ["xattr value", (r) => ({ ...r, tree: { ...r.tree, d: { type: "dir", xattrs: { "user.x": "2" } } } })],
  ["xattr wanted unset", (r) => ({ ...r, tree: { ...r.tree, d: { type: "dir", xattrs: { "user.x": null } } } })],
  ["xattr wanted set", (r) => ({ ...r, tree: { ...r.tree, d: { type: "dir", xattrs: { "user.y": "1" } } } })],
  ["nlink", (r) => ({ ...r, tree: { ...r.tree, "d/f": { type: "file", nlink: 1 } } })],
  ["same inode", (r) => ({ ...r, tree: { ...r.tree, "d/h": { type: "file", sameAs: "d" } } })],
  ["missing path", (r) => ({ ...r, tree: { ...r.tree, "d/nope": { type: "file" } } })],
  ["absent", (r) => ({ ...r, absent: ["d/f"] })],
  ["listing", (r) => ({ ...r, listing: { d: ["f", "h"] } })],
  ["mtree field", (r) => ({ ...r, mtree: { d: { mode: 0o755 } } })],
  ["mtree xattrs", (r) => ({ ...r, mtree: { d: { xattrs: {} } } })],
  ["mtree wanted absent", (r) => ({ ...r, mtree: { "d/f": null } })],
  ["mtree wanted present", (r) => ({ ...r, mtree: { gone: { type: "file" } } })],
  ["warnings", (r) => ({ ...r, warnings: ["xattr-forbidden"] })],
  ["error wanted", (r) => ({ ...r, error: /./ })],
  ["unexpected error", (r) => ({ ...r, layers: [...r.layers, [hardlink("x", "missing")]] })],
  ["error text", (r) => ({ ...r, layers: [...r.layers, [hardlink("x", "missing")]], error: /is a directory/ })],
  ["written outside the root", (r) => ({ ...r, afterApply: ({ scratch }) => fs.writeFileSync(join(scratch, "escaped"), "x") })],
  ["host file changed", (r) => ({ ...r, afterApply: ({ scratch }) => fs.writeFileSync(join(scratch, "file"), "changed") })],
  ["host file removed", (r) => ({ ...r, afterApply: ({ scratch }) => fs.rmSync(join(scratch, "etc/passwd")) })],
  ["disk differs from manifest (mode)", (r) => ({ ...r, tree: {}, afterApply: ({ root }) => fs.chmodSync(join(root, "d/f"), 0o600) })],
  ["disk differs from manifest (content)", (r) => ({ ...r, tree: {}, afterApply: ({ root }) => fs.writeFileSync(join(root, "d/f"), "content") })],
  ["disk differs from manifest (extra path)", (r) => ({ ...r, afterApply: ({ root }) => fs.writeFileSync(join(root, "extra"), "") })],
  ["disk differs from manifest (path removed)", (r) => ({ ...r, tree: {}, listing: {}, afterApply: ({ root }) => fs.rmSync(join(root, "d/l")) })],
  ["disk differs from manifest (xattr)", (r) => ({ ...r, afterApply: ({ root }) => lsetxattr(join(root, "d/f"), "user.z", Buffer.from("1")) })],
];

describe("the checker catches a wrong expectation", () => {
  test("the base row passes", async () => {
    expect(await problemsOf(BASE)).toEqual([]);
  });
  for (const [what, mutate] of MUTATIONS) {
    test(what, async () => {
      expect((await problemsOf(mutate(BASE))).length).toBeGreaterThan(0);
    });
  }
  test.skipIf(!IS_ROOT)("device numbers", async () => {
    const row: Row = { name: "dev", layers: [[{ name: "c", type: "char", devmajor: 1, devminor: 3 }]], tree: { c: { type: "char", rdev: [1, 3] } } };
    expect(await problemsOf(row)).toEqual([]);
    expect((await problemsOf({ ...row, tree: { c: { type: "char", rdev: [1, 5] } } })).length).toBeGreaterThan(0);
    expect((await problemsOf({ ...row, tree: { c: { type: "char", rdev: [4, 3] } } })).length).toBeGreaterThan(0);
  });
});

describe("DirTable (rootfs/deferred.ts)", () => {
  test("behaves as a Map of path -> pending values through sets, re-sets, deletes and growth", async () => {
    const { DirTable } = await import("../../src/rootfs/deferred");
    const t = new DirTable();
    const model = new Map<string, { mtime: number; mtimeNsec?: number; mode?: number; dev: number; ino: number }>();
    let x = 1;
    const rnd = (n: number) => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return x % n; };
    for (let step = 0; step < 20000; step++) {
      const key = step % 7 === 0 ? "" : `d${rnd(3000)}/${rnd(5) ? "s" : "é"}${rnd(40)}`;
      const op = rnd(10);
      if (op < 6) {
        const p = { mtime: rnd(1e6), dev: 2049, ino: rnd(1e9), ...(rnd(2) ? { mtimeNsec: rnd(1e9) } : {}), ...(rnd(3) === 0 ? { mode: rnd(0o7777) } : {}) };
        t.set(key, p);
        model.set(key, p);
      } else if (op < 8) {
        t.delete(key);
        model.delete(key);
      } else {
        expect(t.has(key)).toBe(model.has(key));
        expect(t.get(key)).toEqual(model.get(key));
      }
    }
    expect(t.size).toBe(model.size);
    const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
    expect([...t.sorted(cmp)]).toEqual([...model].sort(([a], [b]) => cmp(a, b)));
    t.clear();
    expect(t.size).toBe(0);
    expect(t.has("")).toBe(false);
  });
});
