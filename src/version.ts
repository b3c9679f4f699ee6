export const VERSION = "0.1.0";
export const IMAGE_SPEC_VERSION = "1.1.1";
export const RUNTIME_SPEC_VERSION = "1.2.1";
