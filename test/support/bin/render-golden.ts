// Render one golden policy by hand: `node --import tsx test/support/bin/render-golden.ts FILE [CTX_JSON]`.
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { Policy } from "../../../src/engine/policy/index.ts";
import { renderNft } from "../../../src/engine/compile/nft/index.ts";

const p = Policy.parse(parse(readFileSync(process.argv[2]!, "utf8")));
const r = renderNft(p, process.argv[3] ? JSON.parse(process.argv[3]) : {});
if (r.ok) process.stdout.write(r.text);
else {
  console.error(JSON.stringify(r.errors, null, 1));
  process.exit(1);
}
