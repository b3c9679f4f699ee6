export * from "./mutator";
