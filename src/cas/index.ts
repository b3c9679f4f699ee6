export * from "./layout";
export * from "./source";
export * from "./refs";
export * from "./gc";
export * from "./lock";
export * from "./walk";
export * from "./referrers";
export { openLayoutFile, readLayoutFile, checkLayoutDir } from "./layout-fs";
export { GoDescriptor, GoImage, GoIndex, GoManifest, type GoType, encodeGoJson, encodeGoValue, goTypeFor } from "./go-json";
