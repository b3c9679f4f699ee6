/**
 * consola, behind a module of its own so that the binary keeps it in a chunk of its own (a
 * require() of a CommonJS package stays in the calling chunk; a require() of this ESM file is a
 * chunk loaded at that call): commands that print nothing never load its bytecode.
 */
export { createConsola } from "consola";
