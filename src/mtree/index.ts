/** go-mtree compatible manifests: vis escaping, walk, format, parse, compare. See README.md. */
export {
  type MtreeEntry,
  type MtreeType,
  MTREE_TYPES,
  UMOCI_KEYWORDS,
  SUPPORTED_KEYWORDS,
  normalizeKeywords,
  keywordValues,
  formatMode,
  cloneEntry,
} from "./entry";
export { visEncode, visDecode, nameToBytes, bytesToName, toFsPath, hasRawBytes, compareBytes } from "./vis";
export { formatMtree, writeMtree, writeMtreeSorted, type FormatMtreeOptions } from "./format";
export { parseMtree, parseMtreeEach } from "./parse";
export { compareMtree, compareEntries, formatDelta, type Delta } from "./compare";
export { walkTree, hashFileSync, type WalkTreeOptions } from "./walk";
export { createMtreeRecorder, createMtreeStore, type MtreeRecorder, type MtreeStore } from "./recorder";
export { goQuote } from "./compare";
export {
  parseSpec,
  walkSpec,
  checkSpec,
  compareSpecs,
  compareKeyVals,
  formatSpecDelta,
  selectKeywords,
  parseKeywordList,
  keywordSynonym,
  createCksum,
  createGoXattrLister,
  WALK_KEYWORDS,
  type Spec,
  type SpecDelta,
  type KeyDelta,
  type KeyVals,
} from "./validate";
