/** Typed tar entries in and out; see README.md. */
export type { EntryType, TarHeader, TarEntry, TarWriterHeader } from "./types";
export { readTar, type ReadTarOptions } from "./reader";
export { createTarWriter, encodeEntryHeader, type TarWriter } from "./writer";
export { parsePaxRecords, formatPaxRecord, formatPaxRecords, MAX_EXTENDED_HEADER_SIZE, type PaxRecords } from "./pax";
export { checkTarStream, tarEntryProblem } from "./check";
