// Protection presets become plain chains/rules/sets (engine/expand) before compiling, so
// the render shows every rule a preset adds.
export { expandPolicy as expand } from "../../expand/index.ts";
