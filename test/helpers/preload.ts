/**
 * Loaded by bunfig.toml before every test file: a global afterAll that removes every scratch
 * directory the helpers made (bun test loads test/helpers/cli.ts once for all files, so its own
 * afterAll belongs to the first file only).
 */
import { afterAll } from "bun:test";
import { removeScratch } from "./cli";

afterAll(removeScratch);
