export * from "./primitives.ts";
export * from "./match.ts";
export * from "./match-extra.ts";
export * from "./action.ts";
export * from "./objects.ts";
export * from "./protections.ts";
export * from "./forwarding.ts";
export * from "./document.ts";
