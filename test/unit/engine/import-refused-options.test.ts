// Options of a match module the policy has no equivalent for are refused, naming the module's
// options it has (one helper, refuseOptions in import/matches-extra.ts, for owner and rt).
import { test } from "node:test";
import assert from "node:assert/strict";
import { importPolicy } from "../../../src/engine/import/index.ts";

test("owner and rt options without a policy equivalent are refused, naming the supported ones", () => {
  const refused = (rule: string, family?: "ipv6") =>
    importPolicy("iptables-save", `*filter\n${rule}\nCOMMIT\n`, family ? { family } : {}).errors.map(
      (e) => `${e.code} ${e.message}`,
    );
  for (const o of ["--socket-exists", "--uid-owner 0 --suppl-groups"])
    assert.deepEqual(refused(`-A OUTPUT -m owner ${o} -j DROP`), [
      `import_unsupported line 2: owner ${o.split(" ").pop()} has no equivalent in the policy schema (--uid-owner and --gid-owner do)`,
    ]);
  for (const o of ["--rt-len 5", "--rt-0-res", "--rt-0-addrs ::1", "--rt-0-not-strict"])
    assert.deepEqual(refused(`-A INPUT -m rt --rt-type 0 ${o} -j DROP`, "ipv6"), [
      `import_unsupported line 2: rt ${o.split(" ")[0]} has no equivalent in the policy schema (--rt-type and --rt-segsleft do)`,
    ]);
});
