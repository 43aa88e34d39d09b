// Entry of the standalone agent bundle (`npm run build` -> dist/agent/palisade-agent.cjs,
// shipped by `npm run pack:agent`): the agent's command line and nothing else of
// Palisade, so the bundle holds the engine, grpc-js and the protocol but no API, queue,
// database or CLI code (test/unit/build/agent-bundle.test.ts checks its inputs).
import { agentCli } from "./cli.ts";

// No top-level await: the bundle is a CommonJS script (scripts/build.mjs).
agentCli(process.argv.slice(2), "palisade-agent").catch((err: unknown) => {
  const e = err as Error;
  process.stderr.write(`palisade-agent: ${e.name === "Error" ? "" : `${e.name}: `}${e.message}\n`);
  process.exitCode = 1;
});
