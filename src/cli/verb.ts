// What a verb module is and how the verb table (program.ts) names it; its own file so a
// verb about verbs (completion) can take the table without importing program.ts.
import type { Command } from "commander";

export interface CommandModule {
  /** `verbs` is the table itself, for verbs about verbs (completion); loaders must run from program.ts (see scripts/build.mjs). */
  register(program: Command, verbs?: Record<string, CommandEntry>): void;
}

export interface CommandEntry {
  /** What `--help` shows after the name (commander's own term for the loaded verb). */
  args: string;
  summary: string;
  load(): Promise<CommandModule>;
}
