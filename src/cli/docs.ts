/**
 * The long texts of the commands: what each does, what it needs, what it changes, examples. One
 * source for `--help` (after the options) and the man pages (man.ts), kept apart from the command
 * definitions so start-up never parses them for a command that is only run.
 */

export interface CommandDoc {
  /** paragraphs (plain text; `code` in backquotes) */
  details: string[];
  examples?: string[];
}

/** Environment variables boci reads, for boci(1) and each page that they concern. */
export const ENVIRONMENT: Array<{ name: string; desc: string; commands?: string[] }> = [
  { name: "SOURCE_DATE_EPOCH", desc: "seconds since the epoch used instead of the current time for created dates and history (reproducible builds)", commands: ["new", "config", "repack", "insert", "raw add-layer", "attach"] },
  { name: "BOCI_WORKERS", desc: "worker threads for hashing and compression (default: the cores; on two cores streams are hashed inline); below 2, unpack also makes small files on one thread instead of two", commands: ["unpack", "raw unpack", "repack", "insert", "raw add-layer", "copy"] },
  { name: "BOCI_STAT_CACHE", desc: "0 disables the stat cache (.boci-stat) that lets repack skip hashing unchanged files", commands: ["unpack", "repack"] },
  { name: "BOCI_MAX_LAYER_BYTES", desc: "the largest uncompressed size of one layer (default 2048 times its compressed size plus 1 GiB)", commands: ["unpack", "raw unpack", "validate"] },
  { name: "BUN_JSC_useFTLJIT", desc: "JavaScriptCore's top JIT tier; unset, an unpack of 64 MiB of layers or a repack of a bundle with a 4 MiB manifest runs in the binary started again with it at 0 (10-16 MiB less memory); set to any value, never", commands: ["unpack", "raw unpack", "repack"] },
  { name: "BOCI_NO_OPENAT2", desc: "1 resolves rootfs paths in userspace instead of with openat2(RESOLVE_IN_ROOT)", commands: ["unpack", "raw unpack"] },
  { name: "TMPDIR", desc: "where temporary files go when a command needs some outside the layout", commands: ["copy"] },
  { name: "REGISTRY_AUTH_FILE", desc: "the auth file read first for docker:// credentials when --authfile is not given", commands: ["copy", "ls"] },
  { name: "XDG_RUNTIME_DIR", desc: "credentials are read from its containers/auth.json (after $REGISTRY_AUTH_FILE)", commands: ["copy", "ls"] },
  { name: "DOCKER_CONFIG", desc: "the directory of Docker's config.json (default ~/.docker), read last for credentials and credential helpers", commands: ["copy", "ls"] },
  { name: "BOCI_REGISTRY_STALL_MS", desc: "milliseconds without a byte from a registry before the request is retried (default 60000)", commands: ["copy"] },
  { name: "NO_COLOR", desc: "any value keeps warnings and errors plain (colour is used only on a terminal otherwise)" },
];

/** Exit codes (errors.ts ExitCode), for boci(1) and every page. */
export const EXIT_CODES: Array<[number, string]> = [
  [0, "success"],
  [1, "general failure (I/O, permissions, network)"],
  [2, "usage: a missing or unknown flag, a bad tag or reference, the wrong number of arguments"],
  [3, "not found: layout, tag, blob, bundle file"],
  [4, "invalid or corrupt image: digest or size mismatch, bad JSON, media-type confusion, hostile tar or archive"],
  [5, "would clobber an existing file or directory"],
  [6, "unsupported: media type, digest algorithm, OS, transport"],
  [130, "interrupted by SIGINT: what the command was writing is removed, tags are unchanged"],
  [143, "terminated by SIGTERM: as for SIGINT"],
];

const image = "`--image PATH[:TAG]` names an image in an OCI layout; the tag defaults to `latest`.";
const writes = "The new blobs are written first and the tag is moved last, atomically, under the layout's lock: a tag always names a complete image. `--tag` writes a new tag instead of moving the given one.";
const history = "Unless `--no-history` is given, a history entry is added (`--history.author`, `--history.comment`, `--history.created`, `--history.created_by` set its fields).";

export const DOCS: Record<string, CommandDoc> = {
  init: {
    details: ["Creates a new, empty OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`) at `--layout`. The path must not exist; its parents are created."],
    examples: ["boci init --layout image"],
  },
  new: {
    details: [`Creates a new image with no layers and a config for the host's OS and architecture, created now (or at SOURCE_DATE_EPOCH), and tags it. ${image}`],
    examples: ["boci new --image image:base"],
  },
  ls: {
    details: ["Lists the tags of a layout, one per line, in index order. `--layout` may also be an archive read in place (`oci-archive:FILE`, `docker-archive:FILE`: its RepoTags) or a registry repository (`docker://HOST[:PORT]/REPO`: its tags; `--creds`, `--authfile`, `--tls-verify`, `--cert-dir` as for copy)."],
    examples: ["boci ls --layout image", "boci ls --layout docker://registry.example.com/team/app"],
  },
  tag: {
    details: [`Gives the image another tag (the new tag replaces any image of that name). ${image} Nothing else changes. With \`--platform OS/ARCH[/VARIANT]\` the new tag names only that platform's manifest of a multi-platform index (its descriptor, platform field included); without it, the new tag names what the old one does.`],
    examples: ["boci tag --image image:base v1.0", "boci tag --image image:multi --platform linux/arm64 arm64-only"],
  },
  rm: {
    details: ["Removes a tag from the layout's index. The image's blobs stay until `gc` removes what no tag reaches."],
    examples: ["boci rm --image image:old"],
  },
  stat: {
    details: [
      `Prints an image's manifest and config summary and its history, as umoci does; \`--json\` prints umoci 0.6's JSON shape. ${image} The image may also be in an archive, read in place (\`oci-archive:FILE[:TAG]\`, \`docker-archive:FILE[:NAME:TAG]\`).`,
      "When the tag names an index, an INDEX section comes first: the index's descriptor and annotations, every platform it offers with its manifest's digest, and the one shown (`--platform OS/ARCH[/VARIANT]`, default the host's). `--json` then has an `index` field: `{descriptor, annotations, platforms: [{platform, descriptor}], chosen}`, `chosen` being the position in `platforms`. Nothing changes for a tag that names a manifest.",
      "An OCI 1.1 artifact: umoci 0.6's sections give its Artifact Type, Subject and blobs (as Layers), and no history when its config is not an image config. One stored with an image config (an `artifactType`, or blobs none of which is an image layer, as cosign signatures and buildx attestations are) gets an ARTIFACT section (`--json`: `artifact: {artifactType, subject, blobs}`) instead of an image history.",
    ],
    examples: ["boci stat --image image:v1.0", "boci stat --image image:v1.0 --json | jq .history", "boci stat --image image:multi --platform linux/arm64 --json | jq .index.platforms"],
  },
  gc: {
    details: ["Removes the blobs no tag reaches and stale temporary files of processes that are gone. It removes nothing when any reachable blob is missing or unreadable. `--dry-run` only lists what would go; `--json` prints what was (or would be) removed.", "Every index.json entry is kept with what it reaches, so every referrer (an artifact boci attach listed there, untagged) and its subject stay, also after `rm` of the subject's tag: gc then names each such referrer in a warning instead of deleting it. A subject absent from the layout (image-spec allows a referrer to arrive before its subject) is warned about and skipped, not a reason to refuse; a subject that is there but corrupt is."],
    examples: ["boci gc --layout image --dry-run"],
  },
  config: {
    details: [`Changes the image config (user, environment, entrypoint, command, ports, volumes, labels, working directory, stop signal, platform, author, created) and the manifest's annotations, and writes a new config and manifest. ${writes} ${history} Docker-typed images are refused (convert them with \`boci copy\`).`, "In a multi-platform index, `--platform OS/ARCH[/VARIANT]` names the manifest to change (default: the host's; an index without it is an error that lists its platforms): only that entry is replaced, and every other entry and the index's annotations are kept. When the config's platform changes (`--platform.os`, `--platform.arch`, `--platform.variant`), the index entry's platform changes with it."],
    examples: ["boci config --image image:base --config.cmd /bin/sh --config.env LANG=C.UTF-8 --tag v2", "boci config --image image:multi --platform linux/arm64 --config.env ARCH=arm64"],
  },
  unpack: {
    details: [
      `Unpacks an image into a runtime bundle: \`rootfs/\`, \`config.json\` (an OCI runtime spec), an mtree manifest of the rootfs (\`sha256_<digest>.mtree\`), \`umoci.json\` and the stat cache \`.boci-stat\`. ${image} The bundle may exist as a directory, but not with a rootfs, config.json or mtree in it. The image may also be in an archive, read in place. \`--platform OS/ARCH[/VARIANT]\` chooses the manifest of a multi-platform index (default: the host's; none matching is an error that lists the platforms).`,
      "Every entry of every layer is written inside the rootfs, by the kernel's in-root path resolution: no entry, symlink or hardlink of the image can reach outside it. With `--rootless` nothing is chowned and each file's owner is kept in the `user.rootlesscontainers` xattr; `--uid-map`/`--gid-map` map IDs. A failed or interrupted unpack leaves no bundle.",
    ],
    examples: ["boci unpack --image image:v2 bundle", "boci unpack --rootless --image image:v2 bundle", "boci unpack --image image:multi --platform linux/arm64/v8 bundle"],
  },
  repack: {
    details: [`Compares a bundle's rootfs with the mtree manifest unpack wrote and adds the differences as one new layer (files, deletions as whiteouts, metadata). Nothing changed: no layer. ${writes} ${history} \`--compress\` chooses the layer's compression (auto keeps the image's). \`--layer.annotation KEY=VALUE\` (repeatable) sets annotations on the new layer's descriptor. The layer goes into the manifest the bundle was unpacked from (recorded in umoci.json), in its index if it came from one; \`--platform\` only checks that this is that platform's manifest.`],
    examples: ["boci repack --image image:v3 bundle", "boci repack --image image:v3 --layer.annotation org.opencontainers.image.title=app bundle"],
  },
  insert: {
    details: [`Adds a file or a directory tree at a path in the image as a new layer, or with \`--whiteout\` removes a path; \`--opaque\` replaces a directory. ${writes} ${history} \`--layer.annotation KEY=VALUE\` (repeatable) sets annotations on the new layer's descriptor. In a multi-platform index, \`--platform OS/ARCH[/VARIANT]\` names the manifest to change (default: the host's; an index without it is an error that lists its platforms): only that entry is replaced, and every other entry and the index's annotations are kept.`],
    examples: ["boci insert --image image:v3 ./app /opt/app", "boci insert --image image:v3 --whiteout /etc/motd", "boci insert --image image:multi --platform linux/arm64 --layer.annotation org.example.arch=arm64 ./app-arm64 /opt/app"],
  },
  "raw unpack": {
    details: ["Unpacks only the root filesystem of an image into a directory (which may already exist: then it is extracted in place and a failure leaves what was written). The same safety rules as unpack; no config.json, mtree or umoci.json. `--platform OS/ARCH[/VARIANT]` chooses the manifest of a multi-platform index (default: the host's; none matching is an error that lists the platforms)."],
    examples: ["boci raw unpack --image image:v3 rootfs"],
  },
  "raw runtime-config": {
    details: ["Writes only the OCI runtime config.json unpack would write for an image; `--rootfs` names a root filesystem whose /etc/passwd and /etc/group resolve the image's user (read inside that directory only). `--platform OS/ARCH[/VARIANT]` chooses the manifest of a multi-platform index (default: the host's; none matching is an error that lists the platforms)."],
    examples: ["boci raw runtime-config --image image:v3 --rootfs rootfs config.json"],
  },
  "raw add-layer": {
    details: [`Appends an uncompressed tar as a layer of the image (compressed as \`--compress\` says; entries checked as unpack checks them). ${writes} ${history} \`--layer.annotation KEY=VALUE\` (repeatable) sets annotations on the new layer's descriptor. In a multi-platform index, \`--platform OS/ARCH[/VARIANT]\` names the manifest to change (default: the host's; an index without it is an error that lists its platforms): only that entry is replaced, and every other entry and the index's annotations are kept.`],
    examples: ["boci raw add-layer --image image:v3 layer.tar", "boci raw add-layer --image image:multi --platform linux/amd64 --layer.annotation org.opencontainers.image.title=layer.tar layer.tar"],
  },
  validate: {
    details: ["Checks a whole layout (or with `--image` one image) and reports every problem, not only the first: the layout files, every reachable blob's presence, size and digest, the JSON of indexes, manifests and configs, each layer's decompression, diffID and tar entries, stray and stale files. `--json` for machines. Exits 0 when there is nothing wrong, 4 otherwise.", "A referrer whose subject is absent from the layout is a warning, not a problem (image-spec allows a referrer before its subject); a subject that is present must be a valid manifest or index."],
    examples: ["boci validate --layout image", "boci validate --image image:v3 --json"],
  },
  "raw mtree-validate": {
    details: ["Compares a directory tree with an mtree manifest and prints one line per difference (missing, extra, modified, with the keywords that differ); exit 1 when there is any."],
    examples: ["boci raw mtree-validate -f bundle/sha256_1234.mtree -p bundle/rootfs"],
  },
  copy: {
    details: [
      "Copies an image between an OCI layout (`oci:DIR[:TAG]`), a tar of a layout (`oci-archive:FILE[:TAG]`), a `docker save` tar (`docker-archive:FILE[:NAME:TAG]`, or `FILE:@N` to read the Nth image) and a registry repository (`docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`), in skopeo's reference syntax. Archives are read in place; every blob is checked against its digest on the way through.",
      "Registries: credentials from `--creds` (`--src-creds`/`--dest-creds`), `--authfile` or the usual auth files and credential helpers, never printed; TLS with the system CAs plus `--cert-dir`, `--tls-verify=false` for plain HTTP; retries with backoff (`--retry-times`); an interrupted pull resumes from what is already downloaded; a push sends only the blobs the registry lacks, the tag last.",
      "A layout destination gets its blobs first and its tag last; an archive is written to a temporary file and renamed into place: a failed or interrupted copy leaves no tag and no archive. Importing a docker-archive writes OCI media types and compresses its layers with `--compress` (default gzip); exporting one writes uncompressed layers with their diffIDs checked.",
    ],
    examples: [
      "boci copy oci-archive:base.tar:1.0 oci:layout:base",
      "boci copy oci:layout:latest docker-archive:out.tar:myimage:1.2 --additional-tag myimage:latest",
      "boci copy docker-archive:in.tar oci:layout:latest",
      "boci copy oci:layout:1.0 docker://registry.example.com/team/app:1.0 --dest-creds user:token",
    ],
  },
  "index create": {
    details: [
      "Creates an image index (`application/vnd.oci.image.index.v1+json`) and tags it `--image PATH[:TAG]`; an existing tag is replaced, as `new` does. Each `--from PATH[:TAG]` names an image of the same layout and becomes one entry, in the order given. An entry's platform is its image config's (os, architecture, variant, os.version, os.features); `--platform os/arch[/variant]`, given once per `--from` in order, replaces it whole. `--annotation K=V` sets the index's annotations.",
      "No two entries may offer the same platform (exit 2): image-index.md allows it, but a reader choosing by platform takes the first and never reaches the other, and boci reports such a tag as ambiguous. One image under two platforms is fine. A `--from` naming an index is refused unless `--nested` asks for it as one entry (with a platform only if `--platform` gives one). An OCI 1.1 artifact (a manifest whose config is not an image config) becomes an entry with its artifactType, without a platform unless given one. Docker-typed images are refused (exit 6): an OCI index naming a Docker manifest mixes the two typings; `boci copy` converts them.",
      "The index blob is written first, encoded as umoci encodes an index, and the tag is moved last, under the layout's lock. `--json` prints the result as the other writing commands do (the index's descriptor under `manifest`).",
    ],
    examples: [
      "boci index create --image layout:app --from layout:app-amd64 --from layout:app-arm64",
      "boci index create --image layout:app --from layout:a --platform linux/arm/v7 --from layout:b --platform linux/arm64/v8 --annotation org.opencontainers.image.version=1.0",
    ],
  },
  "index add": {
    details: ["Adds the image `--from` names to the index `--image` names: the entry for the same platform is replaced where it stands, else the new entry is appended. `--platform`, `--nested` and `--annotation` (merged into the index's annotations) as for `index create`. A new index blob is written and the tag moved; the old index stays until `gc`. The tag must name an OCI index (an image manifest is exit 2; a Docker manifest list is refused, exit 6)."],
    examples: ["boci index add --image layout:app --from layout:app-s390x"],
  },
  "index remove": {
    details: ["Removes one entry of the index `--image` names: with `--platform os/arch[/variant]` the entry for that platform (without a variant, the one entry for that os and architecture: several are a usage error), with `--digest` the entry with that digest (for entries without a platform). None is exit 3; the last entry is refused (exit 2): `boci rm` removes the tag. A new index blob is written and the tag moved; the removed image stays while a tag reaches it."],
    examples: ["boci index remove --image layout:app --platform linux/s390x"],
  },
  "index ls": {
    details: ["Lists the entries of the index a tag names, one per line in index order: platform (`-` for none), digest, size in bytes and media type, and the artifact type when an entry has one; the entries of a nested index follow it, indented. `--json` prints one object: `tag`, `index` (the index's descriptor), `annotations`, `manifests` (its entries, as descriptors) and `nested` (the entries of each nested index, by digest). The index may also be in an archive, read in place (`oci-archive:FILE[:TAG]`)."],
    examples: ["boci index ls --image layout:app", "boci index ls --image layout:app --json | jq -r .manifests[].digest"],
  },
  attach: {
    details: [
      "Attaches files to an image as an OCI 1.1 artifact: a new image manifest with `artifactType` set to `--artifact-type`, the empty config (`application/vnd.oci.empty.v1+json`, the two bytes `{}`, embedded as `data`), one layer per FILE in the order given (any number; none gives the one empty layer image-spec asks for) titled with its base name (`org.opencontainers.image.title`), and `subject` the image's manifest. `--annotation K=V` (repeatable) sets the manifest's annotations; `org.opencontainers.image.created` is the current time, or SOURCE_DATE_EPOCH, unless given.",
      "A file's media type is `--media-type` (one for every file) or comes from its name: .json application/json, .txt text/plain, .md text/markdown, .yaml/.yml application/yaml, .spdx.json application/spdx+json, .cdx.json application/vnd.cyclonedx+json, .intoto.jsonl application/vnd.in-toto+json, .tar/.tar.gz/.tgz/.tar.zst the OCI layer types, and a few more; anything else is application/octet-stream.",
      "The subject is what the tag names: a manifest, or for a multi-platform index the host's manifest (`--platform OS/ARCH[/VARIANT]` another one, `--index` the index itself). The tag may name an artifact: a referrer of a referrer. The files are streamed into the layout, every blob is synced, and the artifact is added last to index.json, untagged (`--tag` names it), under the layout's lock. `boci referrers` lists it; gc keeps it, with its subject, as long as index.json lists it. `--json` prints `{manifest, subject, tag, layersAdded, blobsWritten, bytesWritten}`.",
    ],
    examples: [
      "boci attach --image image:v1.0 --artifact-type application/spdx+json sbom.spdx.json",
      "boci attach --image image:multi --index --artifact-type application/vnd.example.signature --annotation org.example.signer=ci sig.bin",
    ],
  },
  referrers: {
    details: ["Lists the artifacts (and any other manifests) whose `subject` is the image a tag names, as attach chose it (a manifest; the host's or `--platform`'s manifest of an index; `--index` the index itself): one line each with its digest, artifact type, size and creation time. The referrers are the index.json entries that name it. `--artifact-type` keeps only those of one type; `--json` prints an image index of their descriptors (with artifactType and annotations), exactly what a registry's referrers API (GET /v2/NAME/referrers/DIGEST) answers. The image may also be in an archive, read in place (`oci-archive:FILE[:TAG]`)."],
    examples: ["boci referrers --image image:v1.0", "boci referrers --image image:v1.0 --artifact-type application/spdx+json --json | jq -r .manifests[].digest"],
  },
};
