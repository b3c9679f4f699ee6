export * from "./digest";
export * from "./media-types";
export * from "./types";
export * from "./validate";
export * from "./convert";
