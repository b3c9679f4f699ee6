export * from "./layout";
export * from "./refs";
export * from "./gc";
export * from "./lock";
